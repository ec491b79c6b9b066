"""Paired comparison of two evaluations: discordant pairs, sign test, shared ids only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eotd.verifier import Selector
from training.compare import main, pair, sign_test


def _row(pid: str, gold: float, cot, pot, eot) -> dict:
    thoughts = [
        {"thought": name, "text": "...", "answer": answer, "status": "answered"}
        for name, answer in (("cot", cot), ("pot", pot), ("eot", eot))
    ]
    return {"id": pid, "question": f"q {pid}", "gold": gold, "thoughts": thoughts}


def _write(folder: Path, rows: list[dict], name: str = "gsm8k") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"predictions_{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sign_test_is_exact_and_two_sided() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 5) == sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(1, 9) == pytest.approx(2 * 11 / 1024)
    assert sign_test(5, 5) == 1.0


def test_pair_counts_who_is_right_on_shared_problems(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", [
        _row("1", 7, 7, 7, 1),      # A: cot, pot right
        _row("2", 5, 5, 2, None),   # A: cot right
        _row("3", 9, 1, 9, 9),      # only in A: ignored
    ])  # fmt: skip
    b = _write(tmp_path / "b", [
        _row("2", 5, 4, 5, None),   # B: pot right
        _row("1", 7, 7, 3, 7),      # B: cot, eot right
        _row("4", 1, 1, 1, 1),      # only in B: ignored
    ])  # fmt: skip
    rows = {r.name: r for r in pair(a, b)}
    assert all(r.problems == 2 for r in rows.values())
    cot, pot, eot = rows["cot"], rows["pot"], rows["eot"]
    assert (cot.accuracy_a, cot.accuracy_b, cot.only_a, cot.only_b) == (100.0, 50.0, 1, 0)
    assert (pot.accuracy_a, pot.accuracy_b, pot.only_a, pot.only_b) == (50.0, 50.0, 1, 1)
    assert (eot.only_a, eot.only_b) == (0, 1)
    assert eot.same_answer == 50.0  # problem 2: neither answered, which counts as the same
    # ties break PoT first: A's problem 2 (CoT 5, PoT 2) is wrong, B's (CoT 4, PoT 5) right
    assert (rows["majority"].accuracy_a, rows["majority"].accuracy_b) == (50.0, 100.0)


def test_main_writes_reports_and_refuses_what_cannot_be_paired(tmp_path: Path) -> None:
    _write(tmp_path / "a", [_row("1", 7, 7, 7, 7)])
    _write(tmp_path / "b", [_row("1", 7, 7, 7, 1)])
    main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")])
    report = json.loads((tmp_path / "b" / "comparison.json").read_text())
    eot = next(r for r in report["sets"]["gsm8k"] if r["name"] == "eot")
    assert (eot["only_a"], eot["only_b"]) == (1, 0)
    assert (
        "| gsm8k | 1 | eot | 100.0 | 0.0 | 1 | 0 |"
        in (tmp_path / "b" / "comparison.md").read_text()
    )
    _write(tmp_path / "c", [_row("1", 7, 7, 7, 7)], name="svamp")
    with pytest.raises(FileNotFoundError, match="no predictions file of the same set"):
        main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "c")])
    _write(tmp_path / "d", [_row("9", 7, 7, 7, 7)])
    with pytest.raises(ValueError, match="share no problem ids"):
        main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "d")])
    with pytest.raises(ValueError, match="unknown vote"):
        main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--vote", "best"])


def test_with_k_samples_a_thought_answers_by_its_own_vote(tmp_path: Path) -> None:
    sampled = _row("1", 9, 9, 5, 9)
    sampled["thoughts"] += [
        {"thought": "pot", "text": "...", "answer": 9, "status": "ok", "sample": s} for s in (1, 2)
    ]  # PoT samples 5, 9, 9: its vote is 9 although the first sample says 5
    a = _write(tmp_path / "a", [_row("1", 9, 9, 5, 9)])
    b = _write(tmp_path / "b", [sampled])
    pot = next(r for r in pair(a, b) if r.name == "pot")
    assert (pot.accuracy_a, pot.accuracy_b, pot.only_b) == (0.0, 100.0, 1)


def test_two_ways_of_choosing_pair_on_the_same_predictions(tmp_path: Path) -> None:
    question = "Ann has 3 bags with 4 apples each. She eats 2 apples. How many apples are left?"
    row = _row("1", 10, 4, 4, 10)  # CoT and PoT copy a given number; the EoT works it out
    row["question"] = question
    row["thoughts"][1]["text"] = "ans = 4"
    row["thoughts"][2]["text"] = "total = 3 * 4\nleft = total - 2\nans = left"
    path = _write(tmp_path / "a", [row])
    selector = Selector(["in_question", "numbers_used"], [[0.5]] * 2, [[0, -3.0], [0, 2.0]], 0.0)
    rows = {r.name: r for r in pair(path, path, "majority", "verified", selector)}
    chosen = rows["majority / verified"]
    assert (chosen.accuracy_a, chosen.accuracy_b, chosen.only_a, chosen.only_b) == (0, 100, 0, 1)
    assert rows["cot"].same_answer == 100.0  # the thoughts themselves are the same
