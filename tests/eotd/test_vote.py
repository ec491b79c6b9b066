"""The ensemble vote: strategies, tie-breaks, failed thoughts, explanations."""

from __future__ import annotations

import pytest

from eotd import vote


def test_majority_picks_the_agreeing_pair():
    v = vote({"cot": 5.0, "pot": 18.0, "eot": 18.0000001})
    assert v.answer == 18 and v.supporters == ["pot", "eot"]
    assert v.strategy == "majority" and "most votes" in v.explanation


def test_tie_goes_to_pot_then_eot():
    assert vote({"cot": 1.0, "pot": 2.0, "eot": 3.0}).answer == 2
    assert vote({"cot": 1.0, "pot": None, "eot": 3.0}).answer == 3
    v = vote({"cot": 1.0, "pot": 2.0, "eot": 3.0}, order=("eot", "pot", "cot"))
    assert v.answer == 3 and "Tie" in v.explanation


def test_failed_thoughts_never_vote():
    v = vote({"cot": None, "pot": None, "eot": 7.0})
    assert v.answer == 7 and v.supporters == ["eot"]
    empty = vote({"cot": None, "pot": None, "eot": None})
    assert empty.answer is None and empty.supporters == [] and "No thought" in empty.explanation


def test_fallback_chain_and_single_thought():
    answers = {"cot": 1.0, "pot": None, "eot": 2.0}
    v = vote(answers, strategy="fallback")
    assert v.answer == 2 and v.supporters == ["eot"] and "POT gave no answer" in v.explanation
    assert vote(answers, strategy="cot").answer == 1
    assert vote(answers, strategy="pot").answer is None


def test_self_consistency_over_samples():
    v = vote({"cot": [4.0, 4.0, 4.0], "pot": [4.0, None], "eot": [3.0, 3.0]})
    assert v.answer == 4 and v.supporters == ["cot", "pot"]
    assert [(c.answer, c.score) for c in v.candidates] == [(4, 4), (3, 2)]
    # A tie between samples goes to the answer backed by the best-ranked thought (PoT here).
    tie = vote({"cot": [3.0, 4.0, 4.0], "pot": [4.0, None], "eot": [3.0, 3.0]})
    assert tie.answer == 4 and tie.supporters == ["cot", "pot"]
    tie = vote({"cot": [3.0, 4.0, 4.0], "pot": [4.0], "eot": [3.0, 3.0]}, order=("eot", "pot"))
    assert tie.answer == 3 and tie.supporters == ["cot", "eot"]


def test_weighted_vote():
    answers = {"cot": 5.0, "pot": 5.0, "eot": 9.0}
    assert (
        vote(answers, strategy="weighted", weights={"cot": 0.1, "pot": 0.1, "eot": 0.5}).answer == 9
    )
    with pytest.raises(ValueError, match="needs weights"):
        vote(answers, strategy="weighted")


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown vote strategy"):
        vote({"cot": 1.0}, strategy="best")
    with pytest.raises(ValueError, match="unknown thought"):
        vote({"pal": 1.0})


def test_result_serialises():
    d = vote({"cot": 1.0, "pot": 1.0}).to_dict()
    assert d["answer"] == 1 and d["candidates"][0]["thoughts"] == ["cot", "pot"]
