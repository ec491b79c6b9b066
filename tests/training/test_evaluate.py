"""Evaluation: the scores are right for known answers, and a run writes every report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eotd.engines import StudentChoice
from eotd.student import ThoughtResult, combine
from eotd.verifier import Selector, choose
from tests.training.support import PROBLEMS
from training.evaluate import main, score
from training.rescore import RescoreConfig, rescore


def _solution(question: str, cot, pot, eot, eot_status: str = "solved"):
    return combine(
        question,
        [
            ThoughtResult("cot", "", cot, "answered" if cot is not None else "no_answer"),
            ThoughtResult("pot", "", pot, "ok" if pot is not None else "runtime_error"),
            ThoughtResult("eot", "", eot, eot_status if eot is None else "solved"),
        ],
    )


def test_scores_per_thought_vote_and_oracle() -> None:
    problems = [{"answer": 7}, {"answer": 30}, {"answer": 5}]
    solutions = [
        _solution("a", 7.0, 7.0, None, "parse_error"),
        _solution("b", 30.0, 12.0, 12.0),
        _solution("c", None, None, None, "underdetermined"),
    ]
    r = score(problems, solutions, seconds=2.0)
    acc = r["accuracy"]
    assert (acc["cot"], acc["pot"], acc["eot"]) == (66.67, 33.33, 0.0)
    assert acc["majority"] == 33.33  # problem b: PoT and EoT outvote the right CoT
    assert acc["fallback_pot_cot"] == 33.33
    assert acc["oracle"] == 66.67
    assert r["answered"]["eot"] == 33.33
    assert r["status"]["eot"] == {"parse_error": 33.33, "solved": 33.33, "underdetermined": 33.33}
    assert r["problems_per_second"] == 1.5
    # "verified" is the shipped selector's choice, reported beside the vote.
    want = [choose(s.question, s.thoughts, "verified").answer for s in solutions]
    right = sum(a == p["answer"] for a, p in zip(want, problems, strict=True))
    assert acc["verified"] == round(100 * right / 3, 2)


def test_a_selector_file_decides_the_verified_column(tmp_path: Path) -> None:
    problems = [{"answer": 30}]
    solutions = [_solution("b 6 x 5", 30.0, 12.0, 12.0)]  # majority: 12; the CoT alone: 30
    cot_only = Selector(["cot", "share"], [[0.5], [0.5]], [[0.0, 5.0], [0.0, -1.0]], 0.0)
    assert score(problems, solutions, 1.0, cot_only)["accuracy"]["verified"] == 100.0
    assert score(problems, solutions, 1.0, cot_only)["accuracy"]["majority"] == 0.0


@pytest.mark.parametrize("engine", ["torch", "ct2"])
def test_run_writes_metrics_table_and_predictions(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path / "cache"))  # where ct2 converts
    data = tmp_path / "mini.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": i, "question": q, "answer": a, "source": "mini"}) + "\n"
            for i, q, a, _, _ in PROBLEMS
        )
    )
    out = tmp_path / "eval"
    main([
        "--model", str(trained), "--adapter", "none", "--datasets", str(data),
        "--output_dir", str(out), "--max_new_tokens", "24", "--device", "cpu", "--engine", engine,
        "--precision", "float32",
    ])  # fmt: skip
    report = json.loads((out / "metrics.json").read_text())
    ran = report["engine"]
    assert (ran["engine"], ran["precision"], ran["device"]) == (engine, "float32", "cpu")
    assert ran["threads"] >= 1 and ran["describe"].startswith(f"{engine} float32 (cpu")
    assert ("[ct2 float32 (cpu" in report["label"]) == (engine == "ct2")
    result = report["datasets"]["mini"]
    assert result["problems"] == 2
    assert result["accuracy"]["pot"] == 100.0 and result["accuracy"]["majority"] == 100.0
    predictions = [json.loads(x) for x in (out / "predictions_mini.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["t-0", "t-1"]
    assert all(p["correct"]["majority"] for p in predictions)
    assert all(p["correct"]["verified"] for p in predictions)
    table = (out / "results.md").read_text()
    assert "| verified | majority |" in table and "| mini | 2 |" in table


def test_rescore_gives_old_predictions_the_log_probabilities_of_the_run(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Predictions saved before thoughts had ``mean_logprob`` are scored without generating: each
    gets what the run reported, and the original file is left as it was."""
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "mini.jsonl"
    data.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n"
                            for i, q, a, _, _ in PROBLEMS))  # fmt: skip
    run = tmp_path / "eval"
    main([
        "--model", str(trained), "--adapter", "none", "--datasets", str(data),
        "--output_dir", str(run), "--max_new_tokens", "24", "--engine", "ct2",
    ])  # fmt: skip
    saved = run / "predictions_mini.jsonl"
    rows = [json.loads(x) for x in saved.read_text().splitlines()]
    reported = [t.pop("mean_logprob") for r in rows for t in r["thoughts"]]
    old = "".join(json.dumps(r) + "\n" for r in rows)
    saved.write_text(old)
    rescore(RescoreConfig(predictions=str(run), output_dir=str(tmp_path / "scored"),
                          logprobs=True, student=StudentChoice(str(trained), "none")))  # fmt: skip
    scored = (tmp_path / "scored" / "predictions_mini.jsonl").read_text().splitlines()
    got = [t["mean_logprob"] for x in scored for t in json.loads(x)["thoughts"]]
    assert all(v is not None and v <= 0 for v in reported)
    assert got == pytest.approx(reported, abs=1e-3)
    assert saved.read_text() == old


def test_unknown_dataset_fails_before_loading_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        main(["--datasets", "nosuchset", "--output_dir", str(tmp_path)])
