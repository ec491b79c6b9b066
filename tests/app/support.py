"""What the app tests share: example questions, acting users, and a studio over a fresh store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from db import Store
from db.access import Actor, Role
from eotd.student import Student
from studio.examples import EvalSets
from studio.handlers import Studio

SVAMP_1 = (
    "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack How "
    "much do you have to pay to buy each pack?"
)  # svamp-chal-1, gold 51
SVAMP_1_EOT = "price = 76\ndiscount = 25\npay = price - discount\nans = pay"
# Acting users of in-process handler calls (the app resolves them from the session).
VISITOR = Actor("anonymous", Role.VISITOR, client="127.0.0.1")
ANN = Actor("ann", Role.ANNOTATOR)
BOB = Actor("bob", Role.ANNOTATOR)
REV = Actor("rev", Role.REVIEWER)
ADMIN = Actor("root", Role.ADMIN)


def make_studio(
    folder: Path,
    student: Student | None,
    eval_sets: EvalSets,
    store_url: str | None = None,
    **kw,
) -> Studio:
    """A studio over ``store_url`` or a fresh SQLite file in ``folder`` (local mode unless
    ``access`` says otherwise)."""
    store = Store(store_url or f"sqlite:///{folder / 'eotd.sqlite3'}")
    return Studio(store, student, eval_sets=eval_sets, export_dir=folder / "exports", **kw)


@dataclass
class Served:
    studio: Studio
    url: str
