"""What every part of the store shares: transactions that wait out a locked database, and the
small helpers the parts use to read rows."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, contains_eager, sessionmaker

from db import audit
from db.models import AuditEntry, Correction
from db.store.errors import InvalidInput, NotFound, StoreBusy
from eotd.answers import same_answer
from eotd.prompts import THOUGHTS

T = TypeVar("T")

_LOCKED = re.compile(r"database is locked|database table is locked|database is busy", re.I)
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # PostgreSQL: serialization failure, deadlock


def must_retry(error: OperationalError) -> bool:
    """Whether a transaction failed only because others held the database or its rows: SQLite's
    lock, PostgreSQL's serialization failures and deadlocks. Running it again is safe."""
    if getattr(error.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return bool(_LOCKED.search(str(error.orig)))


class StoreBase:
    """A database (``engine``) and the transactions every part of the store runs in."""

    url: str
    engine: Engine
    lock_wait_s: float
    solve_timeout_s: float
    allow_self_review: bool
    _write_gate: AbstractContextManager
    _read: sessionmaker[Session]
    _write: sessionmaker[Session]

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def transaction(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run ``work(session)`` in one transaction (for the store's sibling modules: accounts)."""
        return self._run(work, write=write)

    def audit_log(self, limit: int = 200, action: str | None = None) -> list[AuditEntry]:
        """The newest audit rows first (see ``db.audit``)."""
        return self._run(lambda s: audit.recent(s, limit, action), write=False)

    def _run(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction, retrying it while the database is locked (or, on
        PostgreSQL, after a deadlock or serialization failure)."""
        sessions = self._write if write else self._read
        gate = self._write_gate if write else nullcontext()
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.01
        while True:
            try:
                with gate, sessions() as session, session.begin():
                    return work(session)
            except OperationalError as exc:
                if not must_retry(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"the database stayed locked for {self.lock_wait_s:g} s; "
                        "nothing was saved, please try again"
                    ) from exc
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.5)

    # ----------------------------------------------------------------- problems and models


def same(a: float | None, b: float | None) -> bool:
    """The engine's one tolerance for "the same answer"."""
    return same_answer(a, b)


def matches(answer: float | None, gold: float | None) -> bool | None:
    if answer is None or gold is None:
        return None
    return same(answer, gold)


def check_thought(thought: str) -> None:
    if thought not in THOUGHTS:
        raise InvalidInput(f"unknown thought {thought!r}: use one of {', '.join(THOUGHTS)}")


def get_row(s: Session, model: type[T], key: int) -> T:
    row = s.get(model, key)
    if row is None:
        name = re.sub(r"(?<!^)([A-Z])", r" \1", model.__name__).lower()
        raise NotFound(f"there is no {name} #{key}")
    return row


def with_problems() -> Select[tuple[Correction]]:
    """Corrections joined to (and loaded with) their problems."""
    return select(Correction).join(Correction.problem).options(contains_eager(Correction.problem))
