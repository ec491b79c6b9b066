"""The correction store (see :mod:`db.store.store`): ``from db.store import Store``."""

from db.store.corrections import TRANSITIONS, Conflict, wrote
from db.store.errors import (
    CorrectionRejected,
    InvalidInput,
    NotFound,
    ReviewError,
    StoreBusy,
    StoreError,
)
from db.store.exports import ImportReport
from db.store.problems import question_hash
from db.store.store import Stats, Store

__all__ = [
    "TRANSITIONS",
    "Conflict",
    "CorrectionRejected",
    "ImportReport",
    "InvalidInput",
    "NotFound",
    "ReviewError",
    "Stats",
    "Store",
    "StoreBusy",
    "StoreError",
    "question_hash",
    "wrote",
]
