"""extract_answer and same_answer on the forms students and datasets write."""

from __future__ import annotations

import pytest

from eotd import extract_answer, same_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So she sold 72 clips. The answer is 72.", 72),
        ("The answer is 1,234.5.", 1234.5),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", 72),
        ("It costs $18 in total.", 18),
        ("The final answer is $1,000,000", 1_000_000),
        ("A rise of 18%", 18),
        ("She ate 3/4 of the pie", 0.75),
        ("The answer is 2 1/2 cups", 2.5),
        ("The answer is -3.", -3),
        ("Answer: .5", 0.5),
        ("\\boxed{42}", 42),
        ("He had 5 apples, then 7. The answer is 12 apples, not 5.", 12),
        ("First 5, then 7", 7),  # the last number is the fallback
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", None, "no numbers here", "The answer is unknown."])
def test_no_answer(text):
    assert extract_answer(text) is None


def test_same_answer_tolerance():
    assert same_answer(0.6666666667, 2 / 3)  # rounded to 10 places (MAWPS) still matches
    assert same_answer(18, 18.0)
    assert not same_answer(10_000, 10_001)  # large integers must match exactly
    assert not same_answer(0.5, 0.51)
    assert not same_answer(None, 3) and not same_answer(3, None) and not same_answer(None, None)
