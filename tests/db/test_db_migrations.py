"""Alembic migrations on SQLite and PostgreSQL: the first schema upgrades to head keeping every
row; head matches the ORM; processes starting together upgrade once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, make_url, text

from db.connection import make_engine
from db.migrate import current_revision, upgrade
from db.models import Base
from db.store import Store
from tests.db.support import integrity

NOW = "2026-01-02 03:04:05.000000"
HEAD = "0005"


def fill_first_schema(url: str, n: int) -> None:
    """Rows in every table of revision 0001, written with plain SQL as an old app would."""
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO model_versions (id, name, base_model, training_summary, metrics, "
                "promoted, created_at) VALUES (1, 'v0', 'base', '{}', :m, :yes, :t)"
            ),
            {"m": json.dumps({"gsm8k": 0.1}), "t": NOW, "yes": True},
        )
        for i in range(1, n + 1):
            c.execute(
                text(
                    "INSERT INTO problems (id, question, question_hash, gold_answer, source, "
                    "source_id, created_at) VALUES (:i, :q, :h, :i, 'gsm8k', :sid, :t)"
                ),
                {"i": i, "q": f"Question {i}?", "h": f"{i:064d}", "sid": f"gsm8k-{i}", "t": NOW},
            )
            c.execute(
                text(
                    "INSERT INTO generations (id, problem_id, model_version_id, thought, raw_text, "
                    "status, answer, created_at) VALUES (:i, :i, 1, 'cot', 'x', 'no_answer', "
                    "NULL, :t)"
                ),
                {"i": i, "t": NOW},
            )
            c.execute(
                text(
                    "INSERT INTO corrections (id, problem_id, generation_id, thought, "
                    "original_text, corrected_text, before_status, after_status, after_answer, "
                    "matches_gold, unsolved, annotator, status, created_at) VALUES (:i, :i, :i, "
                    "'cot', 'x', :fix, 'no_answer', 'ok', :i, :yes, :no, 'ann', :st, :t)"
                ),
                {
                    "i": i,
                    "fix": f"The answer is {i}.",
                    "st": "approved" if i % 2 else "pending",
                    "t": NOW,
                    "yes": True,
                    "no": False,
                },
            )
            if i % 2:
                c.execute(
                    text(
                        "INSERT INTO reviews (correction_id, reviewer, decision, created_at) "
                        "VALUES (:i, 'rev', 'approved', :t)"
                    ),
                    {"i": i, "t": NOW},
                )
        c.execute(
            text(
                "INSERT INTO exports (created_by, path, count, correction_ids, created_at) "
                "VALUES ('rev', '/tmp/x', 1, '[1]', :t)"
            ),
            {"t": NOW},
        )
        if c.dialect.name == "postgresql":  # rows were given ids: move the sequences past them
            for table in ("model_versions", "problems", "generations", "corrections"):
                c.execute(text(f"SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table}))"))
    engine.dispose()


def test_upgrade_from_first_schema_keeps_every_row(new_url: Callable[..., str], backend: str):
    url = new_url()
    upgrade(url, "0001")
    n = 40
    fill_first_schema(url, n)
    engine = make_engine(url)
    assert current_revision(engine) == "0001"
    assert "correction_uses" not in inspect(engine).get_table_names()

    store = Store(url)  # upgrades to head, as the app does at start
    assert current_revision(store.engine) == HEAD
    stats = store.stats()
    assert (stats.problems, stats.generations, stats.corrections, stats.exports) == (n, n, n, 1)
    assert stats.by_status["approved"] == stats.by_status["pending"] == n // 2
    assert (stats.promoted, stats.approved_unused) == ("v0", n // 2)
    queue = store.corrections(limit=100)
    assert [c.id for c in queue] == list(range(2, n + 1, 2))
    assert queue[0].created_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert store.get_correction(1).problem.question == "Question 1?"
    assert [r.reviewer for r in store.reviews(1)] == ["rev"]
    # one word for an answered chain of thought, as the engine says it now (0004)
    corrections = [store.get_correction(i) for i in range(1, n + 1)]
    assert {(c.before_status, c.after_status) for c in corrections} == {("no_answer", "answered")}
    assert [c.after_answer for c in corrections] == list(range(1, n + 1))
    # the new table works on the old rows
    assert store.mark_used(range(1, n + 1, 2), 1) == n // 2
    assert store.unused_approved() == []
    new = store.add_problem("Typed in after the upgrade?")  # ids continue after the old rows
    assert new.id == n + 1
    if backend == "sqlite":
        assert integrity(Path(make_url(url).database)) == "ok"


def test_head_schema_matches_the_models(new_url: Callable[..., str]):
    url = new_url()
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    upgrade(url)  # a second upgrade is a no-op
    assert current_revision(engine) == HEAD


@pytest.mark.stress
def test_processes_starting_together_upgrade_once(new_url: Callable[..., str]):
    url = new_url()
    code = "import sys; from db.store import Store; Store(sys.argv[1]).add_problem('Same?')"
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], cwd=root, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    store = Store(url)
    assert (current_revision(store.engine), store.stats().problems) == (HEAD, 1)


def test_typed_in_duplicates_are_merged_before_the_unique_index(new_url: Callable[..., str]):
    url = new_url()
    upgrade(url, "0004")
    engine = make_engine(url)
    with engine.begin() as c:  # what two PostgreSQL writers could leave before 0005
        for pid, source_id in ((1, None), (2, None), (3, "gsm8k-1"), (4, None)):
            c.execute(
                text(
                    "INSERT INTO problems (id, question, question_hash, source, source_id, "
                    "created_at) VALUES (:i, 'Same?', 'h', :src, :sid, :t)"
                ),
                {"i": pid, "src": source_id and "gsm8k", "sid": source_id, "t": NOW},
            )
            c.execute(
                text(
                    "INSERT INTO corrections (id, problem_id, thought, corrected_text, "
                    "after_status, matches_gold, unsolved, annotator, status, created_at) VALUES "
                    "(:i, :i, 'cot', 'The answer is 1.', 'answered', :no, :no, 'ann', "
                    "'pending', :t)"
                ),
                {"i": pid, "no": False, "t": NOW},
            )
        for i, promoted_at in ((1, "2026-01-01 00:00:00"), (2, "2026-02-01 00:00:00")):
            c.execute(
                text(
                    "INSERT INTO model_versions (id, name, base_model, training_summary, "
                    "metrics, promoted, promoted_at, created_at) VALUES (:i, :name, 'base', "
                    "'{}', '{}', :yes, :at, :t)"
                ),
                {"i": i, "name": f"v{i}", "yes": True, "at": promoted_at, "t": NOW},
            )
    engine.dispose()

    store = Store(url)
    with store.engine.connect() as c:
        problems = c.execute(text("SELECT id, source_id FROM problems ORDER BY id")).all()
        owners = c.execute(text("SELECT id, problem_id FROM corrections ORDER BY id")).all()
    assert [tuple(p) for p in problems] == [(1, None), (3, "gsm8k-1")]
    assert [tuple(o) for o in owners] == [(1, 1), (2, 1), (3, 3), (4, 1)]  # none lost
    assert store.promoted_model_version().name == "v2"  # the latest promotion stays
    assert [v.name for v in store.model_versions() if v.promoted] == ["v2"]
