"""A separate writer process for the store's concurrency and crash tests.

python tests/db/db_writer.py URL MODE NAME [N]
  stress  wait for "go" on stdin, then add N cot corrections as annotator NAME; print "done"
  stream  add cot corrections forever, printing each committed correction id
  hold    commit 50 corrections, then hold a large write transaction open forever, printing
          "mid WAL_BYTES_BEFORE" once uncommitted pages have spilled into the WAL (SQLite; 0 on
          other databases, once the rows are sent)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.connection import WRITE, sqlite_path
from db.models import Problem
from db.settings import StoreSettings
from db.store import Store

SHARED_QUESTIONS = 50


def write_corrections(store: Store, name: str, n: int) -> None:
    """``n`` cot corrections by ``name`` over shared problems (re-added now and then)."""
    problem_id = 0
    for i in range(n):
        if i % 10 == 0:
            q = i // 10 % SHARED_QUESTIONS
            problem_id = store.add_problem(f"Shared question {q}?", q).id
        store.add_correction("cot", f"{name} step {i}. The answer is {i}.", name, problem_id)


def main(url: str, mode: str, name: str, n: int = 0) -> None:
    store = Store(url, settings=StoreSettings.from_env())  # EOTD_SQLITE_SYNCHRONOUS
    if mode == "stress":
        print("ready", flush=True)
        sys.stdin.readline()
        write_corrections(store, name, n)
        print("done", flush=True)
        return
    problem = store.add_problem("What is 2 + 2?", gold_answer=4)
    if mode == "stream":
        while True:
            c = store.add_correction("cot", "2 + 2 = 4. The answer is 4.", name, problem.id)
            print(c.id, flush=True)
    assert mode == "hold", mode
    for _ in range(50):
        store.add_correction("cot", "2 + 2 = 4. The answer is 4.", name, problem.id)
    db_file = sqlite_path(url)
    before = Path(f"{db_file}-wal").stat().st_size if db_file else 0
    with Session(store.engine.execution_options(**{WRITE: True})) as session, session.begin():
        if db_file:
            session.execute(text("PRAGMA cache_size = -64"))  # spill dirty pages to the WAL early
        for i in range(5000):
            session.add(Problem(question=f"uncommitted {i} " + "x" * 500, question_hash=str(i)))
            if i % 500 == 0:
                session.flush()
        session.flush()
        print(f"mid {before}", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:]))
