"""Rescoring: saved predictions give the same scores as the run that wrote them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eotd.student import ThoughtResult, combine
from training.evaluate import prediction_row, score
from training.rescore import RescoreConfig, main, rescore

PROBLEMS = [
    {"id": "p1", "question": "a", "answer": 7},
    {"id": "p2", "question": "b", "answer": 30},
    {"id": "p3", "question": "c", "answer": 5},
]


def _thoughts(cot, pot, eot) -> list[ThoughtResult]:
    return [
        ThoughtResult("cot", "The answer is.", cot, "answered" if cot is not None else "no_answer"),
        ThoughtResult("pot", "ans = 1", pot, "ok" if pot is not None else "runtime_error"),
        ThoughtResult("eot", "ans = x", eot, "solved" if eot is not None else "parse_error"),
    ]


def _solutions() -> list:
    return [
        combine("a", _thoughts(7.0, 7.0, None)),
        combine("b", _thoughts(30.0, 12.0, 12.0)),
        combine("c", _thoughts(None, 5.0, None)),
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with (tmp_path / "predictions_toy.jsonl").open("w") as f:
        for problem, solution in zip(PROBLEMS, _solutions(), strict=True):
            f.write(json.dumps(prediction_row(problem, solution)) + "\n")
    return tmp_path


def test_rescore_reproduces_the_scores_of_the_run(folder: Path, tmp_path: Path) -> None:
    expected = score(PROBLEMS, _solutions(), 1.0)["accuracy"]
    results = rescore(RescoreConfig(predictions=str(folder), output_dir=str(tmp_path / "out")))
    assert results["toy"]["accuracy"] == expected
    assert results["toy"]["accuracy"]["pot"] == 66.67
    assert results["toy"]["status"]["eot"]["parse_error"] == 66.67
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["datasets"]["toy"]["problems"] == 3
    assert "| toy | 3 |" in (tmp_path / "out" / "results.md").read_text()


def test_rescore_names_the_bad_line(folder: Path) -> None:
    with (folder / "predictions_toy.jsonl").open("a") as f:
        f.write('{"id": "p4", "question": "d"}\n')
    with pytest.raises(ValueError, match=r"predictions_toy.jsonl:4 is not a prediction row"):
        main(["--predictions", str(folder)])


def test_a_folder_without_predictions_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no predictions_"):
        main(["--predictions", str(tmp_path)])


def test_rescoring_in_place_keeps_the_runs_own_report(folder: Path) -> None:
    run_report = {"label": "run", "engine": {"engine": "ct2"}, "datasets": {"toy": {"seconds": 9}}}
    (folder / "metrics.json").write_text(json.dumps(run_report))
    main(["--predictions", str(folder)])
    assert json.loads((folder / "run_metrics.json").read_text()) == run_report
    assert json.loads((folder / "metrics.json").read_text())["predictions"] == str(folder)
    main(["--predictions", str(folder)])  # a rescore's own report is simply replaced
    assert json.loads((folder / "run_metrics.json").read_text()) == run_report


def test_thoughts_without_log_probabilities_are_flagged(folder: Path) -> None:
    with pytest.warns(UserWarning, match="9 thoughts have no log-probability"):
        results = rescore(RescoreConfig(predictions=str(folder)))
    assert results["toy"]["thoughts_without_logprob"] == 9
    assert "toy: 9 thoughts have no log-probability" in (folder / "results.md").read_text()
    path = folder / "predictions_toy.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        for t in row["thoughts"]:
            t["mean_logprob"] = -0.2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = rescore(RescoreConfig(predictions=str(folder)))
    assert "thoughts_without_logprob" not in results["toy"]
    assert "log-probability" not in (folder / "results.md").read_text()
