"""Loading the vendored sets, the fixed validation slice and the leak check."""

import json

import pytest

from training.datasets import (
    DataError,
    evaluation_sets,
    leak_check,
    load_problems,
    normalize_question,
    to_uniform,
    train_validation,
)

EXPECTED_ROWS = {"gsm8k": 1319, "svamp": 1000, "asdiv": 2084, "multiarith": 600}


def test_vendored_sets_load_with_uniform_columns():
    train = load_problems("gsm8k", "train")
    assert len(train) == 7473
    assert {"id", "question", "answer", "source", "solution"} <= set(train.column_names)
    assert "<<48/2=24>>" in train[0]["solution"]
    sets = evaluation_sets()
    assert {name: len(ds) for name, ds in sets.items()} == EXPECTED_ROWS
    for ds in sets.values():
        assert all(isinstance(a, int | float) for a in ds["answer"])


def test_validation_slice_is_fixed_disjoint_and_seeded():
    train, val = train_validation()
    _, val2 = train_validation()
    assert len(val) == 200 and len(train) == 7473 - 200
    assert val["id"] == val2["id"]
    assert not set(val["id"]) & set(train["id"])
    _, other = train_validation(seed=1)
    assert set(other["id"]) != set(val["id"])
    with pytest.raises(DataError, match="validation size"):
        train_validation(size=10_000)


def test_vendored_training_data_does_not_leak_into_evaluation_sets():
    train, val = train_validation()
    report = leak_check(list(train["question"]) + list(val["question"]))
    assert report.clean, report.summary()
    assert report.sizes == EXPECTED_ROWS


def test_leak_check_catches_a_reformatted_evaluation_question():
    svamp = load_problems("svamp")
    question = svamp[3]["question"]
    disguised = "  " + question.upper().replace(" ", "   ") + "  "
    report = leak_check(["An unrelated question about 3 apples?", disguised])
    assert report.overlaps["svamp"] == [svamp[3]["id"]]
    assert not report.clean
    assert "LEAK" in report.summary()


def test_normalize_question_ignores_case_spacing_punctuation_and_commas_in_numbers():
    a = normalize_question("Tom has $1,200 and\n2.5 apples!")
    assert a == normalize_question("tom has 1200 and 2.5 apples")
    assert a != normalize_question("Tom has 1200 and 25 apples")


def test_jsonl_file_and_bad_specs(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "m-1", "question": "What is 2 + 3?", "answer": 5, "source": "mine"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_problems(str(path))
    assert ds[0]["answer"] == 5
    with pytest.raises(DataError, match="unknown dataset"):
        load_problems("no-such-set")
    with pytest.raises(DataError, match="no split"):
        load_problems("svamp", "train")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no id or answer"}\n')
    with pytest.raises(DataError, match="lacks the column"):
        load_problems(str(bad))


def test_hub_rows_are_mapped_to_the_uniform_schema():
    gsm = to_uniform({"question": " Q? ", "answer": "Some work.\n#### 1,234"}, "gsm8k", "g-0")
    assert gsm == {
        "id": "g-0",
        "question": "Q?",
        "answer": 1234,
        "source": "gsm8k",
        "solution": "Some work.\n#### 1,234",
    }
    svamp = to_uniform({"Body": "A has 3.", "Question": "How many?", "Answer": 3.0}, "svamp", "s")
    assert svamp["question"] == "A has 3. How many?" and svamp["answer"] == 3
    with pytest.raises(DataError, match="numeric answer"):
        to_uniform({"question": "Q", "answer": "purple"}, "x", "x-0")
