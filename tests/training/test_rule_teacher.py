"""The offline teacher: GSM8K rationales to CoT, PoT and EoT, checked with the real engine."""

import json
import random

import pytest

from training.datasets import DATA_DIR
from training.teachers.rule import ConversionError, convert
from training.teachers.verify import check, check_many


def assert_all_reach(conversion, gold):
    """Every target the teacher wrote reaches `gold` through the engine."""
    for thought, target in conversion.targets().items():
        result = check(thought, target, gold)
        assert result.ok, f"{thought} failed ({result.reason}, got {result.answer}):\n{target}"


NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    72,
)


def test_natalia_eot_names_steps_and_reuses_them():
    conv = convert(
        *NATALIA,
    )
    assert conv.eot == (
        "% Natalia sold 48/2 = 24 clips in May.\n"
        "clips_may = 48 / 2\n"
        "% Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "clips_altogether_april = 48 + clips_may\n"
        "ans = clips_altogether_april"
    )
    assert conv.pot == (
        "clips_may = 48 / 2\nclips_altogether_april = 48 + clips_may\nans = clips_altogether_april"
    )
    assert conv.cot.endswith("April and May.\nThe answer is 72.")
    assert "<<" not in conv.cot
    assert_all_reach(conv, 72)


@pytest.mark.parametrize(
    ("case", "question", "solution", "gold", "expected_lines"),
    [
        (
            "thousands separators and money",
            "He earns $1,200 a month.",
            "A year is 12 * $1,200 = $<<12*1200=14400>>14,400 in pay.\n#### 14,400",
            14400,
            ["pay = 12 * 1200"],
        ),
        (
            "percentages written as percent",
            "Three foods are good 80%, 40% and 75% of the time.",
            "First: 100% - 20% = 80%\nAll three good: 75% * 80% * 40% = 24%\n#### 24",
            24,
            ["ans = "],
        ),
        (
            "fractions and leading-dot decimals",
            "A pizza has 8 slices; 3/4 of it is eaten. Tea costs $12 and milk half as much.",
            "Eaten: 3/4 * 8 = <<3/4*8=6>>6 slices.\nLeft: 8 - 6 = <<8-6=2>>2 slices.\n"
            "Milk is .5*12 = <<.5*12=6>>6 dollars.\nSo 2 + 6 = <<2+6=8>>8 things.\n#### 8",
            8,
            ["slices = 3 / 4 * 8", "left = 8 - slices", "dollars = 0.5 * 12"],
        ),
        (
            "repeated numbers",
            "Tom has 5 red and 5 blue marbles and 2 bags.",
            "He has 5+5=<<5+5=10>>10 marbles.\nDoubled, 10*2=<<10*2=20>>20 marbles.\n"
            "Then 20+20 = <<20+20=40>>40 in all.\n#### 40",
            40,
            ["marbles = 5 + 5", "marbles_2 = marbles * 2", "ans"],
        ),
        (
            "steps without annotations",
            "A jug holds 16 tbs of water and 4 evaporate.",
            "Water left: 16 tbs - 4 tbs = 12 tbs\nThen 12 tbs * 4 = <<12*4=48>>48 tbs\n"
            "There are t=48/2 cups.\n#### 24",
            24,
            ["tbs = 16 - 4", "tbs_2 = tbs * 4", "cups = tbs_2 / 2"],
        ),
        (
            "an equation with an unknown",
            "Ann is 6 years older than twice her son; she is 20.",
            "Let x be the son's age. We know 2x + 6 = 20.\nSo x = <<7=7>>7.\n#### 7",
            7,
            ["2 * x + 6 = 20", "ans = x"],
        ),
    ],
)
def test_converter_edge_cases_reach_the_gold_answer(case, question, solution, gold, expected_lines):
    conv = convert(question, solution, gold)
    for line in expected_lines:
        assert line in conv.eot, f"{case}: {line!r} not in\n{conv.eot}"
    assert conv.eot.splitlines()[-1].startswith("ans = ")
    assert conv.pot is not None and conv.pot.splitlines()[-1].startswith("ans = ")
    assert conv.cot.endswith(f"The answer is {gold}.")
    assert_all_reach(conv, gold)


def test_intermediate_results_are_referenced_not_retyped():
    conv = convert(
        "A farm has 7 cows and 3 pigs.",
        "Animals: 7 + 3 = <<7+3=10>>10 animals.\nLegs: 10 * 4 = <<10*4=40>>40 legs.\n#### 40",
        40,
    )
    assert "legs = animals * 4" in conv.eot
    assert "10" not in conv.eot.split("\n", 2)[-1].replace("% Legs: 10", "")


def test_steps_the_answer_does_not_use_are_left_out_of_eot_and_pot():
    conv = convert(
        "Bo has 3 boxes of 5 pens and a cat.",
        "The cat has 2 * 2 = <<2*2=4>>4 legs.\nPens: 3 * 5 = <<3*5=15>>15 pens.\n#### 15",
        15,
    )
    assert "legs" not in conv.eot and "legs" not in conv.pot
    assert "The cat has" in conv.cot


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        ("She needs four bottles, one for each week.\n#### 4", "no_calculation"),
        ("He has 2 + 3 = <<2+3=5>>5 pens.\n#### 6", "no_step_reaches_gold"),
    ],
)
def test_rationales_without_a_way_to_the_gold_are_refused_with_a_reason(solution, reason):
    with pytest.raises(ConversionError) as err:
        convert("q", solution, 6 if "6" in solution else 4)
    assert err.value.reason == reason


def test_verify_names_the_failure():
    assert check("pot", "ans = 2 + 2", 5).reason == "pot:wrong_answer"
    assert check("pot", "ans = 1 / 0", 5).reason == "pot:runtime_error"
    assert check("eot", "a = (2 +\nans = a", 5).reason == "eot:parse_error"
    assert check("cot", "No idea.", 5).reason == "cot:no_answer"
    assert check("cot", "So 2 + 3 = 5. The answer is 5.", 5).ok
    (looping,) = check_many([("pot", "while True:\n    pass\nans = 1", 1)], timeout=0.3)
    assert looping.reason == "pot:timeout"


def test_gsm8k_gold_annotations_as_eot_and_pot_solve_to_gold_on_a_sample():
    """A seeded sample of GSM8K train (the build command reports the full-set figure)."""
    rows = [json.loads(line) for line in (DATA_DIR / "gsm8k" / "train.jsonl").open()]
    sample = random.Random(3).sample(rows, 120)
    items, converted = [], 0
    for row in sample:
        try:
            conv = convert(row["question"], row["solution"], row["answer"])
        except ConversionError:
            continue
        converted += 1
        targets = conv.targets()
        items += [(t, targets[t], row["answer"]) for t in ("eot", "pot") if t in targets]
    results = check_many(items)
    verified = {"eot": 0, "pot": 0}
    for (thought, _, _), result in zip(items, results, strict=True):
        verified[thought] += result.ok
    assert converted >= 0.95 * len(sample)
    assert verified["eot"] >= 0.95 * len(sample), verified
    assert verified["pot"] >= 0.95 * len(sample), verified


def test_short_comments_keep_the_words_and_drop_the_arithmetic():
    conv = convert(
        *NATALIA,
        comments="short",
    )
    assert conv.eot.splitlines()[0::2] == [
        "% Natalia sold clips in May",
        "% Natalia sold clips altogether in April and May",
        "ans = clips_altogether_april",
    ]
    assert_all_reach(conv, 72)
