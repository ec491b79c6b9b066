"""The Store API on a real SQLite file and a real PostgreSQL server: problems, generations,
corrections, queues, stats."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from db.settings import DB_FILE
from db.store import CorrectionRejected, NotFound, Store, StoreError
from tests.db.support import EOT_18, sqlite_url

PRAGMAS = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")


def test_default_store_lives_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("EOTD_DB_URL", raising=False)
    monkeypatch.setenv("EOTD_DATA_DIR", str(tmp_path / "data"))
    store = Store()
    store.add_problem("What is 1 + 1?", 2)
    store.close()
    assert (tmp_path / "data" / DB_FILE).exists()
    monkeypatch.setenv("EOTD_DB_URL", sqlite_url(tmp_path / "other.db"))
    assert Store().stats().problems == 0


def test_sqlite_connections_are_set_up_for_safety(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = Store(sqlite_url(tmp_path / "eotd.sqlite3"))
    with store.engine.connect() as c:
        pragmas = [c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in PRAGMAS]
        assert pragmas == ["wal", 1, 30000, 2]  # synchronous 2 = FULL
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            c.exec_driver_sql(
                "INSERT INTO reviews (correction_id, reviewer, decision, created_at) "
                "VALUES (12345, 'x', 'approved', '2026-01-01')"
            )
    monkeypatch.setenv("EOTD_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(ValueError, match="EOTD_SQLITE_SYNCHRONOUS='sometimes': use FULL, NORMAL"):
        Store()  # a script's store reads the environment


def test_in_memory_database_is_refused():
    with pytest.raises(ValueError, match="not an in-memory database"):
        Store("sqlite://")


def test_problems_dedupe_on_dataset_id_or_question(store: Store):
    a = store.add_problem("How many apples?", None, "svamp", "svamp-1")
    assert store.add_problem("How many apples?", 7, "svamp", "svamp-1").id == a.id
    assert store.get_problem(a.id).gold_answer == 7  # a missing gold answer is filled in
    with pytest.raises(ValueError, match="already has gold answer 7"):
        store.add_problem("How many apples?", 8, "svamp", "svamp-1")
    typed = store.add_problem("  How many   pears? ")
    assert store.add_problem("How many pears?").id == typed.id
    assert store.add_problem("How many apples?", None, "asdiv", "asdiv-9").id != a.id
    with pytest.raises(ValueError, match="empty"):
        store.add_problem("   ")


def test_eot_correction_is_solved_before_it_is_stored(store: Store, problem_id: int):
    bad = "left = 16 - 3 - 4\nmoney = left * 3\nans = money\n"
    gen = store.record_generation(problem_id, None, "eot", bad, "solved", 27.0)
    c = store.add_correction("eot", EOT_18, "alice", generation_id=gen.id)
    assert (c.problem_id, c.original_text, c.before_answer) == (problem_id, bad, 27.0)
    assert (c.after_status, c.after_answer, c.matches_gold) == ("solved", 18.0, True)
    assert (c.status, c.unsolved, c.question) == ("pending", False, c.problem.question)


def test_pot_and_cot_corrections_go_through_the_engine(store: Store, problem_id: int):
    pot = store.add_correction("pot", "left = 16 - 3 - 4\nans = left * 2\n", "al", problem_id)
    assert (pot.after_status, pot.after_answer, pot.matches_gold) == ("ok", 18.0, True)
    cot = store.add_correction(
        "cot",
        "She sells 9 eggs for $3. The answer is 27.",
        "al",
        problem_id,
        original_text="She sells 9 eggs. The answer is 9.",
    )
    assert (cot.before_answer, cot.after_answer, cot.matches_gold) == (9.0, 27.0, False)
    # the student's word for an answered chain of thought, before and after
    assert (cot.before_status, cot.after_status) == ("answered", "answered")


@pytest.mark.parametrize(
    ("thought", "text", "message"),
    [
        ("eot", "x + y = 10\nans = x\n", "underdetermined"),
        ("eot", "x = = 3\nans = x\n", "line 1"),
        ("pot", "ans = 1 / 0\n", "runtime_error"),
        ("pot", "import os\nans = 1\n", "forbidden"),
        ("cot", "She makes some money.", "The answer is N"),
    ],
)
def test_a_correction_that_does_not_solve_is_refused_with_the_engine_message(
    store: Store, problem_id: int, thought: str, text: str, message: str
):
    with pytest.raises(CorrectionRejected, match=message) as caught:
        store.add_correction(thought, text, "alice", problem_id)
    assert caught.value.verdict.answer is None
    assert store.stats().corrections == 0  # refused means not stored


def test_an_unsolved_correction_can_be_kept_flagged(store: Store, problem_id: int):
    c = store.add_correction(
        "eot", "x + y = 10\nans = x\n", "alice", problem_id, allow_unsolved=True
    )
    assert (c.status, c.unsolved, c.after_status, c.after_answer) == (
        "pending",
        True,
        "underdetermined",
        None,
    )
    assert c.after_error
    assert store.stats().unsolved == 1
    assert [p.id for p in store.corrections()] == [c.id]


def test_bad_correction_input_is_a_clear_error(store: Store, problem_id: int):
    gen = store.record_generation(problem_id, None, "cot", "The answer is 5.", "answered", 5.0)
    other = store.add_problem("Another question?")
    cases = [
        ({"thought": "xot"}, "unknown thought"),
        ({"annotator": " "}, "annotator is empty"),
        ({"corrected_text": "\n"}, "corrected text is empty"),
        ({"problem_id": None}, "needs the problem or the generation"),
        ({"problem_id": other.id, "generation_id": gen.id}, "belongs to problem"),
        ({"thought": "eot", "corrected_text": EOT_18, "generation_id": gen.id}, "cot thought"),
    ]
    for override, message in cases:
        kwargs = {
            "thought": "cot",
            "corrected_text": "The answer is 18.",
            "annotator": "al",
            "problem_id": problem_id,
        } | override
        with pytest.raises(ValueError, match=message):
            store.add_correction(**kwargs)
    with pytest.raises(NotFound, match="no problem #999"):
        store.add_correction("cot", "The answer is 1.", "al", problem_id=999)
    with pytest.raises(NotFound, match="no generation #999"):
        store.add_correction("cot", "The answer is 1.", "al", generation_id=999)
    assert store.stats().corrections == 0


def test_pending_queue_pages_oldest_first_and_filters(store: Store, problem_id: int):
    other = store.add_problem("What is 3 + 4?", 7, "svamp", "svamp-2").id
    made = [
        store.add_correction("cot", f"The answer is {i}.", who, pid)
        for i, (who, pid) in enumerate(
            [("ann", problem_id), ("bob", other), ("ann", other), ("cat", problem_id)] * 3
        )
    ]
    store.review(made[0].id, "rev", "approved")
    queue = [c.id for c in store.corrections(limit=100)]  # pending by default
    assert queue == [c.id for c in made[1:]]
    assert [c.id for c in store.corrections(limit=4, offset=4)] == queue[4:8]
    assert {c.annotator for c in store.corrections(annotator="ann")} == {"ann"}
    assert len(store.corrections(annotator="ann")) == 5
    assert {c.problem.source for c in store.corrections(dataset="svamp")} == {"svamp"}
    assert len(store.corrections(annotator="ann", dataset="svamp")) == 3
    mine = store.corrections("all", annotator="ann")
    assert [c.id for c in mine] == [c.id for c in made if c.annotator == "ann"]
    assert [c.id for c in store.corrections("approved", annotator="ann")] == [made[0].id]


def test_returned_rows_are_readable_from_other_threads(store: Store, problem_id: int):
    store.add_correction("cot", "The answer is 18.", "alice", problem_id)
    rows = store.corrections()
    store.close()
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.extend(c.problem.question for c in rows))
    thread.start()
    thread.join()
    assert seen == [rows[0].problem.question]


def test_conflicts_list_annotators_who_disagree(store: Store, problem_id: int):
    other = store.add_problem("What is 3 + 4?", 7).id
    a = store.add_correction("eot", EOT_18, "alice", problem_id)
    b = store.add_correction("pot", "ans = (16 - 3 - 4) * 3\n", "bob", problem_id)
    store.add_correction("cot", "The answer is 18.", "carol", problem_id)
    store.add_correction("cot", "The answer is 7.", "alice", other)
    store.add_correction("cot", "So 3 + 4 = 7. The answer is 7.0.", "bob", other)
    store.add_correction("cot", "The answer is 8.", "alice", other)  # disagrees only with herself
    store.add_correction("cot", "The answer is 8.", "bob", other)  # now bob disagrees with alice
    conflicts = store.conflicts()
    assert [c.problem_id for c in conflicts] == [problem_id, other]
    first = conflicts[0]
    assert (first.answers, first.annotators, first.gold_answer) == (
        [18.0, 27.0],
        ["alice", "bob", "carol"],
        18.0,
    )
    assert {c.id for c in first.corrections} >= {a.id, b.id}
    store.review(b.id, "rev", "rejected")
    assert [c.problem_id for c in store.conflicts()] == [other]
    assert store.stats().conflicts == 1


def test_stats_count_everything(store: Store, problem_id: int):
    version = store.register_model_version("v1", "HuggingFaceTB/SmolLM2-135M-Instruct")
    store.promote(version.id)
    store.record_generation(problem_id, version.id, "cot", "The answer is 5.", "answered", 5.0)
    ok = store.add_correction("cot", "The answer is 18.", "alice", problem_id)
    store.add_correction("eot", "x + y = 2\nans = x\n", "bob", problem_id, allow_unsolved=True)
    store.review(ok.id, "bob", "approved")
    stats = store.stats()
    assert (stats.problems, stats.generations, stats.corrections) == (1, 1, 2)
    assert stats.by_status == {"pending": 1, "approved": 1, "rejected": 0, "withdrawn": 0}
    assert stats.by_thought == {"cot": 1, "pot": 0, "eot": 1}
    assert (stats.unsolved, stats.matches_gold, stats.annotators) == (1, 1, 2)
    assert (stats.approved_unused, stats.model_versions, stats.promoted) == (1, 1, "v1")


def test_model_versions_and_promotion(store: Store):
    v1 = store.register_model_version("v1", "base", "models/v1", {"rows": 10}, {"gsm8k": 0.2})
    v2 = store.register_model_version("v2", "base", "models/v2")
    assert store.promoted_model_version() is None
    store.promote(v1.id)
    assert store.promoted_model_version().name == "v1"
    store.promote(v2.id)
    promoted = store.promoted_model_version()
    assert (promoted.name, promoted.promoted_at is not None) == ("v2", True)
    assert [(v.name, v.promoted) for v in store.model_versions()] == [("v2", True), ("v1", False)]
    assert store.model_versions()[1].metrics == {"gsm8k": 0.2}
    with pytest.raises(ValueError, match="already exists"):
        store.register_model_version("v1", "base")
    with pytest.raises(NotFound, match="no model version #99"):
        store.promote(99)


def test_retraining_bookkeeping(store: Store, problem_id: int):
    version = store.register_model_version("v1", "base")
    done = [store.add_correction("cot", f"The answer is {i}.", "al", problem_id) for i in range(3)]
    waiting = store.add_correction("cot", "The answer is 18.", "al", problem_id)
    for c in done:
        store.review(c.id, "bo", "approved")
    assert [c.id for c in store.unused_approved()] == [c.id for c in done]
    with pytest.raises(StoreError, match="is pending; only approved"):
        store.mark_used([done[0].id, waiting.id], version.id)
    assert store.mark_used([done[0].id, done[1].id], version.id) == 2
    assert store.mark_used([done[0].id], version.id) == 0  # already recorded
    assert [c.id for c in store.unused_approved()] == [done[2].id]
