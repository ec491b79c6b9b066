"""Augmentation: new numbers, re-solved exactly, all three thoughts rewritten and verified."""

import random
import re
from fractions import Fraction

import pytest

from training.augment import AugmentError, augment_problems, plan, variants
from training.teachers.rule import convert
from training.teachers.steps import read_steps
from training.teachers.verify import check

NATALIA = {
    "id": "gsm8k-train-0",
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?",
    "answer": 72,
    "source": "gsm8k",
    "solution": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
}
STICKERS = {
    "id": "s-1",
    "question": "Sam has 48 stickers and shares them equally among 6 friends. Then each friend "
    "buys 5 more. How many stickers does each friend have?",
    "answer": 13,
    "source": "mine",
    "solution": "Each friend gets 48/6 = <<48/6=8>>8 stickers.\n"
    "Then each has 8+5 = <<8+5=13>>13 stickers.\n#### 13",
}
MONEY = {
    "id": "m-1",
    "question": "A used car costs $1,250 and Ana has saved $875. How much more does she need?",
    "answer": 375,
    "source": "mine",
    "solution": "She needs $1,250 - $875 = $<<1250-875=375>>375 more.\n#### 375",
}


def numbers(text):
    return [Fraction(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


@pytest.mark.parametrize("problem", [NATALIA, STICKERS, MONEY])
def test_every_variant_is_verified_in_all_three_thoughts(problem):
    made = variants(problem, 3, random.Random(0))
    assert len(made) == 3
    for variant in made:
        assert variant["origin_id"] == problem["id"]
        assert variant["question"] != problem["question"]
        assert variant["answer"] != problem["answer"]
        targets = convert(variant["question"], variant["solution"], variant["answer"]).targets()
        assert set(targets) == {"cot", "pot", "eot"}
        for thought, target in targets.items():
            assert check(thought, target, variant["answer"]).ok, (thought, target)


def test_the_answer_is_recomputed_from_the_new_numbers():
    for variant in variants(NATALIA, 4, random.Random(1)):
        april = numbers(variant["question"])[0]
        assert variant["answer"] == april + april / 2
        assert "half as many" in variant["question"]


def test_integers_stay_integers_and_results_stay_non_negative():
    for variant in variants(STICKERS, 5, random.Random(2)):
        _, steps = read_steps(variant["solution"], variant["question"])
        assert all(s.value.denominator == 1 and s.value >= 0 for s in steps)
    for variant in variants(MONEY, 5, random.Random(3)):
        price, saved = numbers(variant["question"])
        assert price - saved == variant["answer"] >= 0
        if price >= 1000:  # written with a thousands separator like the original
            assert f"${int(price):,}" in variant["question"]


def test_only_numbers_that_map_unambiguously_are_changed():
    problem = {
        "id": "r-1",
        "question": "Tom has 5 red and 5 blue marbles and buys 8 more. How many does he have?",
        "answer": 18,
        "solution": "He has 5+5 = <<5+5=10>>10.\nThen 10+8 = <<10+8=18>>18.\n#### 18",
    }
    assert set(plan(problem["question"], problem["solution"], 18).mentions) == {8}
    for variant in variants(problem, 3, random.Random(4)):
        assert variant["question"].startswith("Tom has 5 red and 5 blue marbles and buys ")
        assert variant["answer"] == 10 + numbers(variant["question"])[2]


@pytest.mark.parametrize(
    ("question", "solution", "answer", "reason"),
    [
        ("Ann is 2 years older than twice x.", "Let x be her age. 2x + 2 = 20\n#### 9", 9,
         "equation_or_percent"),
        ("A dozen eggs cost 12 cents.", "That is 12/12 = <<12/12=1>>1 cent each.\n#### 1", 1,
         "no_changeable_number"),
    ],
)  # fmt: skip
def test_problems_that_cannot_be_varied_say_why(question, solution, answer, reason):
    with pytest.raises(AugmentError) as err:
        plan(question, solution, answer)
    assert err.value.reason == reason


def test_augment_problems_is_seeded_and_counts_what_it_skipped():
    problems = [NATALIA, STICKERS, {"id": "x", "question": "q", "answer": 1}]
    first, stats = augment_problems(problems, 2, seed=7)
    again, _ = augment_problems(problems, 2, seed=7)
    assert first == again
    assert stats == {
        "problems": 3,
        "varied_problems": 2,
        "variants": 4,
        "skipped": {"no_solution": 1},
    }


def test_a_problems_variants_depend_on_the_seed_and_the_problem_alone():
    alone, _ = augment_problems([STICKERS], 2, seed=7)
    among, _ = augment_problems([NATALIA, MONEY, STICKERS], 2, seed=7, num_proc=2)
    assert [v for v in among if v["origin_id"] == STICKERS["id"]] == alone
    assert [v["origin_id"] for v in among] == ["gsm8k-train-0"] * 2 + ["m-1"] * 2 + ["s-1"] * 2
    assert augment_problems([STICKERS], 2, seed=8)[0] != alone
