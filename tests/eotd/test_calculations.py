"""The calculator for written arithmetic: calculations found, checked and redone."""

from __future__ import annotations

import pytest

from eotd.calculations import calculations, calculations_check, redo


@pytest.mark.parametrize(
    ("text", "checks"),
    [
        ("3 x 4 = 12 apples, 12 - 2 = 10 left. The answer is 10.", True),
        ("She pays $2 * 192 = $384, then $384 x 2 = $668.", False),  # a slip in the last step
        ("48/2 = 24 and 48 + 24 = 72; 1,000 - 250 = 750", True),
        ("20% x 50 = 10 and 10 / 3 = 3.33 and 10/3 = 3.3", True),  # rounded as written
        ("10 / 3 = 3.5", False),
        ("5 + 6 * 2 = 17 (products first)", True),
        ("5 + 6 * 2 = 22", False),
        ("3 / 0 = 5", True),  # nothing to check, not a failure
        ("No calculation at all. The answer is 4.", True),
        ("% She sells 16 - 4 = 13 eggs\neggs = 16 - 4\nans = eggs", False),  # an EoT's comment
        ("-3 + 5 = 2 and 3 - 5 = -2", True),  # negative operands and results
        ("5 / 2 = 3 and 2.5 x 0.25 = 0.63", True),  # rounded to the decimals written
        ("100 - 20 = 80% and 0.2 x 100 = 20%", True),  # a result written in percent
        ("x1 + 2 = 5, at 11:30 - 2 = 9, 1e3 + 1 = 1001, 1,2 + 3 = 6", True),  # not calculations
        (" + ".join(["1"] * 20) + " = 20", True),  # too long a chain to check: not half of it
        (" x ".join(["2"] * 13) + " = 8192", True),  # the same with x
        ("100% - 8% = 80%", False),  # percent results to the percent written
        ("100% - 8% = 92% and 1/4 = 25%", True),
        ("It takes 90 hours x 1/3 = 30 hours", True),  # "1/3 = 30" is not a calculation here
        ("25 / 2 = 12,5 and at 2 + 10 = 12:30", True),  # nor are "= 1" of "12,5" or "12:30"
    ],
)
def test_written_calculations_are_checked(text: str, checks: bool) -> None:
    assert calculations_check(text) is checks


def test_calculations_are_read_with_their_written_precision() -> None:
    (c,) = calculations("The sheers cost $1,200.50 x 3 = $3,601.50 in all")
    assert (c.operands, c.operators, c.written, c.decimals) == ((1200.5, 3.0), ("x",), 3601.5, 2)
    assert calculations("x = 3 * 4\nans = x") == []  # equations name their results


def test_a_slip_is_redone_and_carried_to_the_answer() -> None:
    # 20 + 300 is 320, not 300; the answer repeats the slip.
    text = "Sydney has 300/15 = 20.\nIn total, they have 20+300 = 300.\nThe answer is 300."
    assert redo(text, 300.0) == 320.0
    # A wrong step early is carried into the steps that used its result.
    text = "Five weigh 800*5 = 3000. Barney weighs 1500+3000 = 4500. Together 4500+3000 = 7500."
    assert redo(text, 7500.0) == 9500.0


def test_only_numbers_that_repeat_a_slip_are_redone() -> None:
    # 13 is computed right again, so the answer that repeats it stays.
    assert redo("3 x 4 = 13. 10 + 3 = 13. The answer is 13.", 13.0) == 13.0
    # A slip that writes a number of the question as its result is redone all the same.
    assert redo("Sydney has 300/15 = 20. Together 20+300 = 300. The answer is 300.", 300) == 320
    # A percentage's slip is not carried on: its unit (0.7 or 70) is ambiguous.
    assert redo("100 - 20 = 70%. 70% x 50 = 35. The answer is 35.", 35.0) == 35.0
    # A negative slip is carried on.
    assert redo("3 - 5 = -3. Then -3 + 10 = 7.", 7.0) == 8.0


def test_right_arithmetic_and_unused_slips_leave_the_answer_alone() -> None:
    assert redo("3 x 4 = 12, 12 - 2 = 10. The answer is 10.", 10.0) == 10.0
    assert redo("3 x 4 = 13 but she has 2 left. The answer is 2.", 2.0) == 2.0
    assert redo("No calculation at all. The answer is 4.", 4.0) == 4.0
    assert redo("3 x 4 = 13", None) is None
