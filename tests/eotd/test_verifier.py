"""The answer selector: signals per candidate answer, the step-function selector, and choosing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eotd.student import ThoughtResult, execute
from eotd.verifier import (
    DEFAULT_SELECTOR,
    SIGNALS,
    Selector,
    candidates,
    choose,
    load_selector,
    numbers_in,
    select,
)
from eotd.vote import vote

QUESTION = "Ann has 3 bags with 4 apples each. She eats 2 apples. How many apples are left?"


def _thoughts(cot: str, pot: str, eot: str) -> list[ThoughtResult]:
    return [execute("cot", cot), execute("pot", pot), execute("eot", eot)]


RIGHT_POT = "bags = 3\napples = bags * 4\nans = apples - 2"
RIGHT_EOT = "% 3 bags of 4\ntotal = 3 * 4\nleft = total - 2\nans = left"
COPYING_COT = "She has 4 apples. The answer is 4."


def _by_answer(found):
    return {e.answer: e for e in found}


def test_numbers_are_read_as_people_write_them() -> None:
    assert numbers_in("It costs $1,234.50 for 3 boxes, x_2 = 7") == [1234.5, 3.0, 7.0]
    assert numbers_in("twice a dozen and half", words=True) == [2.0, 12.0, 0.5]


def test_signals_measure_agreement_numbers_kind_and_steps() -> None:
    thoughts = _thoughts(COPYING_COT, RIGHT_POT, RIGHT_EOT)
    found = _by_answer(candidates(QUESTION, thoughts))
    assert set(found) == {4.0, 10.0}
    right, copied = found[10.0].signals, found[4.0].signals
    assert found[10.0].thoughts == ["pot", "eot"] and found[4.0].thoughts == ["cot"]
    assert right["share"] == pytest.approx(2 / 3) and right["thoughts"] == pytest.approx(2 / 3)
    assert (right["cot"], right["pot"], right["eot"]) == (0.0, 1.0, 1.0)
    assert right["numbers_used"] == 1.0 and right["all_numbers"] == 1.0
    assert copied["numbers_used"] == pytest.approx(1 / 3)  # the CoT writes only the 4
    assert right["integer"] == 1.0 and right["negative"] == 0.0
    assert copied["in_question"] == 1.0 and right["in_question"] == 0.0
    # The program's 12 and the equations' 12 agree; the copied 4 is a given, no step at all.
    assert right["agreement"] == 1.0 and copied["agreement"] == 0.0
    assert right["magnitude"] == pytest.approx(math.log10(11 / 5))
    assert "logprob" not in right  # texts written by hand carry no log-probability


def test_log_probabilities_and_unfinished_samples_are_averaged_over_backing_samples() -> None:
    a, b, c = _thoughts("3 * 4 - 2 = 10. The answer is 10.", RIGHT_POT, RIGHT_EOT)
    a.mean_logprob, b.mean_logprob, c.mean_logprob = -0.1, -0.3, None
    b.finished = False
    (only,) = candidates(QUESTION, [a, b, c])
    assert only.signals["logprob"] == pytest.approx(-0.2)
    assert only.signals["finished"] == pytest.approx(2 / 3)
    assert only.signals["share"] == 1.0


def test_arithmetic_is_the_share_of_backing_samples_whose_calculations_check_out() -> None:
    wrong_cot = "3 x 4 = 12, 12 - 2 = 9. The answer is 10."
    found = _by_answer(candidates(QUESTION, _thoughts(wrong_cot, RIGHT_POT, "ans = 4")))
    assert found[10.0].signals["arithmetic"] == pytest.approx(1 / 2)  # the CoT slipped
    assert found[4.0].signals["arithmetic"] == 1.0


def test_a_cot_backs_the_answer_its_arithmetic_redone_reaches() -> None:
    slipped = "3 x 4 = 12, 12 - 2 = 9. The answer is 9."
    thoughts = _thoughts(slipped, RIGHT_POT, "ans = 4")
    found = _by_answer(candidates(QUESTION, thoughts))
    assert set(found) == {10.0, 4.0}  # no candidate 9: the CoT backs 10 once redone
    assert found[10.0].thoughts == ["cot", "pot"]
    assert found[10.0].signals["redone"] == pytest.approx(1 / 2)
    assert found[10.0].signals["arithmetic"] == pytest.approx(1 / 2)
    assert found[4.0].signals["redone"] == 0.0
    assert thoughts[0].answer == 9.0  # the thought itself still says what it stated
    verdict = select(QUESTION, thoughts, _selector({"share": 1.0}))
    assert verdict.answer == 10.0 and "the CoT's arithmetic redone" in verdict.explanation


def test_failed_thoughts_give_no_candidate() -> None:
    thoughts = _thoughts("no idea", "ans = 1 / 0", "x = = 2")
    assert candidates(QUESTION, thoughts) == []
    verdict = select(QUESTION, thoughts, _selector({"share": 1.0}))
    assert verdict.answer is None and verdict.confidence == 0.0


def _selector(rises: dict[str, float], bias: float = 0.0) -> Selector:
    """Each signal adds its number to the logit when above one half."""
    names = list(rises)
    return Selector(names, [[0.5]] * len(names), [[0.0, w] for w in rises.values()], bias)


def test_the_selector_can_overrule_the_majority_and_says_why() -> None:
    # Two samples of a program that copies a given number against one right EoT.
    thoughts = [*_thoughts("The answer is 4.", "ans = 4", RIGHT_EOT)]
    assert vote({"cot": [4.0], "pot": [4.0], "eot": [10.0]}).answer == 4.0
    selector = _selector({"share": 1.0, "in_question": -3.0, "numbers_used": 2.0})
    verdict = select(QUESTION, thoughts, selector)
    assert verdict.answer == 10.0 and verdict.supporters == ["eot"]
    assert verdict.strategy == "verified"
    assert 0.5 < verdict.confidence < 1.0
    assert verdict.candidates[0].answer == 10.0 and verdict.candidates[1].answer == 4.0
    assert "10 is likeliest right" in verdict.explanation
    assert "it is not just a number restated" in verdict.explanation
    assert "Against it: more of the samples give it" not in verdict.explanation
    assert "Against it: fewer of the samples give it" in verdict.explanation


def test_equal_scores_fall_back_to_the_vote_order() -> None:
    thoughts = _thoughts("The answer is 7.", "ans = 8", "x = 9\nans = x")
    verdict = select(QUESTION, thoughts, _selector({"share": 1.0}))
    assert verdict.answer == 8.0  # PoT first, as the majority vote breaks ties


def test_a_missing_signal_contributes_nothing() -> None:
    selector = Selector(["logprob"], [[-0.5]], [[-5.0, 5.0]], 0.0)
    (only,) = candidates(QUESTION, _thoughts("The answer is 10.", RIGHT_POT, RIGHT_EOT))
    assert selector.probability(only) == pytest.approx(0.5)
    only.signals["logprob"] = -0.4
    assert selector.probability(only) == pytest.approx(1 / (1 + math.exp(-5.0)))


def test_selectors_round_trip_and_bad_files_are_refused(tmp_path: Path) -> None:
    selector = _selector({"share": 0.5, "integer": 1.5}, bias=-1.0)
    path = selector.save(tmp_path / "s.json")
    assert load_selector(path) == selector
    (tmp_path / "bad.json").write_text(json.dumps({**selector.to_dict(), "signals": ["luck"]}))
    with pytest.raises(ValueError, match="unknown signals"):
        load_selector(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a selector file"):
        load_selector(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="fit one"):
        load_selector(tmp_path / "none.json")
    with pytest.raises(ValueError, match="one value more than thresholds"):
        Selector(["share"], [[0.5]], [[1.0]], 0.0)
    with pytest.raises(ValueError, match="ascend"):
        Selector(["share"], [[0.5, 0.2]], [[0.0, 1.0, 2.0]], 0.0)
    with pytest.raises(ValueError, match="each signal"):
        Selector(["share", "integer"], [[0.5]], [[0.0, 1.0]], 0.0)


def test_the_shipped_selector_uses_known_signals_and_was_fitted_on_held_out_problems() -> None:
    shipped = load_selector()
    assert shipped == load_selector(DEFAULT_SELECTOR)
    assert set(shipped.signals) <= set(SIGNALS)
    assert all("test" not in p for p in shipped.fitted_on["predictions"])


def test_choose_runs_every_strategy_and_vote_points_to_it_for_verified() -> None:
    thoughts = _thoughts(COPYING_COT, RIGHT_POT, RIGHT_EOT)
    assert choose(QUESTION, thoughts, "majority").answer == 10.0
    assert choose(QUESTION, thoughts, "cot").answer == 4.0
    assert choose(QUESTION, thoughts, "verified", selector=_selector({"share": 1.0})).answer == 10
    with pytest.raises(ValueError, match=r"eotd\.verifier\.choose"):
        vote({"cot": [1.0]}, strategy="verified")


def test_a_value_on_a_threshold_takes_the_lower_step() -> None:
    selector = Selector(["share"], [[0.5]], [[-1.0, 1.0]], 0.0)
    (only,) = candidates(QUESTION, _thoughts("The answer is 10.", RIGHT_POT, RIGHT_EOT))
    for share, contribution in [(0.5, -1.0), (0.51, 1.0), (0.2, -1.0)]:
        only.signals["share"] = share
        assert selector.contributions(only) == {"share": contribution}
    with pytest.raises(ValueError, match="finite"):
        Selector(["share"], [[math.nan]], [[0.0, 1.0]], 0.0)


def test_a_thought_the_selector_trusts_less_is_named_as_such() -> None:
    thoughts = _thoughts(COPYING_COT, RIGHT_POT, RIGHT_EOT)
    verdict = select(QUESTION, thoughts, Selector(["cot"], [[0.5]], [[0.5, -0.5]], 0.0))
    assert verdict.answer == 10.0
    assert "the CoT does not back it (the selector trusts the CoT less)" in verdict.explanation
