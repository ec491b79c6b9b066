"""Exports of approved corrections: files, columns, provenance, and import round trips."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import datasets
import pytest

from db import transfer
from db.connection import sqlite_path
from db.export import CARD, DATASET_DIR, JSONL, PARQUET, read_export
from db.local_postgres import LocalPostgres
from db.store import Store, StoreError
from tests.db.support import EOT_18, sqlite_url

TRAINING_COLUMNS = ["id", "question", "thought", "target", "answer", "source", "origin_id"]


@pytest.fixture
def approved(store: Store, problem_id: int) -> list[int]:
    """Three approved corrections (eot, pot, cot), one pending, one rejected."""
    typed = store.add_problem("A typed-in question: what is 6 * 7?").id
    gen = store.record_generation(problem_id, None, "eot", "ans = 16 * 2\n", "solved", 32.0)
    ids = [
        store.add_correction("eot", EOT_18, "alice", generation_id=gen.id).id,
        store.add_correction("pot", "ans = (16 - 3 - 4) * 2\n", "bob", problem_id).id,
        store.add_correction("cot", "6 * 7 = 42. The answer is 42.", "alice", typed).id,
    ]
    for cid in ids:
        store.review(cid, "carol" if cid != ids[1] else "alice", "approved")
    store.add_correction("cot", "The answer is 18.", "dan", problem_id)
    rejected = store.add_correction("cot", "The answer is 19.", "dan", problem_id).id
    store.review(rejected, "carol", "rejected")
    return ids


def rows_without_store_ids(rows: list[dict]) -> list[dict]:
    return sorted(
        ({k: v for k, v in r.items() if k != "correction_id"} for r in rows), key=lambda r: r["id"]
    )


def test_export_writes_dataset_jsonl_parquet_and_card(
    store: Store, approved: list[int], tmp_path: Path
):
    record = store.export(tmp_path / "out", by="carol")
    out = Path(record.path)
    assert (record.created_by, record.count, record.correction_ids) == ("carol", 3, approved)
    assert [e.id for e in store.exports()] == [record.id]

    on_disk = datasets.load_from_disk(str(out / DATASET_DIR))
    parquet = datasets.Dataset.from_parquet(str(out / PARQUET)).to_list()
    jsonl = [json.loads(line) for line in (out / JSONL).read_text().splitlines()]
    assert on_disk.to_list() == parquet == jsonl
    assert on_disk.column_names[:7] == TRAINING_COLUMNS
    assert {r["source"] for r in jsonl} == {"human"}

    eot = next(r for r in jsonl if r["thought"] == "eot")
    assert (eot["target"], eot["answer"], eot["gold_answer"]) == (EOT_18, 18.0, 18.0)
    assert (eot["origin_id"], eot["dataset"], eot["original_text"]) == (
        "gsm8k-test-0",
        "gsm8k",
        "ans = 16 * 2\n",
    )
    assert (eot["annotator"], eot["reviewer"], eot["correction_id"]) == (
        "alice",
        "carol",
        approved[0],
    )
    assert eot["reviewed_at"] >= eot["created_at"]
    typed = next(r for r in jsonl if r["thought"] == "cot")
    assert typed["dataset"] is None and typed["origin_id"].startswith("problem-")

    card = (out / CARD).read_text()
    assert "3 approved corrections" in card
    assert "| eot | 1 |" in card and "Annotators: alice, bob" in card


def test_identical_corrections_export_once(store: Store, approved: list[int], tmp_path: Path):
    pid = store.get_correction(approved[1]).problem_id
    twin = store.add_correction("pot", "ans = (16 - 3 - 4) * 2\n", "bob", pid)
    store.review(twin.id, "carol", "approved")
    record = store.export(tmp_path / "out", by="carol")
    assert record.correction_ids == approved  # the twin is the same training row
    assert len(read_export(Path(record.path))) == 3


def test_export_never_overwrites(store: Store, approved: list[int], tmp_path: Path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        store.export(busy, by="carol")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert store.exports() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".busy")]  # no staging left


def test_export_of_chosen_ids_must_all_be_approved(
    store: Store, approved: list[int], tmp_path: Path
):
    assert store.export(tmp_path / "one", by="x", correction_ids=approved[:1]).count == 1
    with pytest.raises(StoreError, match=r"not approved, or not there: corrections \[4, 99\]"):
        store.export(tmp_path / "bad", by="x", correction_ids=[approved[0], 4, 99])
    assert not (tmp_path / "bad").exists()


def test_empty_export_keeps_the_columns(store: Store, tmp_path: Path):
    out = Path(store.export(tmp_path / "empty", by="x").path)
    assert datasets.load_from_disk(str(out / DATASET_DIR)).column_names[:7] == TRAINING_COLUMNS
    assert read_export(out) == []


def test_import_round_trips(store: Store, approved: list[int], tmp_path: Path):
    first = store.export(tmp_path / "a", by="carol")
    other = Store(sqlite_url(tmp_path / "other.sqlite3"))
    report = other.import_export(first.path)
    assert (len(report.added), report.skipped) == (3, 0)
    again = other.export(tmp_path / "b", by="carol")
    original = read_export(Path(first.path))
    assert rows_without_store_ids(read_export(Path(again.path))) == rows_without_store_ids(original)
    for path in (Path(first.path) / JSONL, Path(first.path) / PARQUET):
        assert other.import_export(path).skipped == 3  # importing twice adds nothing
    assert other.stats().by_status["approved"] == 3
    assert [r.note for r in other.reviews(report.added[0])] == [
        f"imported from export row {original[0]['id']}"
    ]


def test_the_cli_moves_approved_corrections_to_the_other_backend(
    store: Store,
    approved: list[int],
    tmp_path: Path,
    postgres: LocalPostgres,
    capsys: pytest.CaptureFixture,
):
    """A Space's SQLite store into a team's PostgreSQL server, and back."""
    cli = transfer.main
    assert cli(["--db_url", store.url, "export", str(tmp_path / "out"), "--by", "ops"]) == 0
    assert "exported 3 approved corrections" in capsys.readouterr().out
    assert cli(["--db_url", store.url, "list"]) == 0
    assert capsys.readouterr().out.split("\t")[2:4] == ["ops", "3"]

    if sqlite_path(store.url):
        other = postgres.create_database(f"team_{uuid.uuid4().hex[:8]}")
    else:
        other = sqlite_url(tmp_path / "space.sqlite3")
    assert cli(["--db_url", other, "import", str(tmp_path / "out")]) == 0
    assert cli(["--db_url", other, "import", str(tmp_path / "out" / JSONL)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["imported 3 corrections, skipped 0 already here",
                   "imported 0 corrections, skipped 3 already here"]  # fmt: skip
    moved = Store(other)
    assert moved.stats().by_status["approved"] == 3
    moved.close()

    assert cli(["--db_url", other, "import", str(tmp_path / "missing")]) == 1
    assert "error:" in capsys.readouterr().err
