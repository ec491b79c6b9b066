"""The correction store: SQLAlchemy models, migrations, the :class:`Store` API, export, backup."""

from db.migrate import upgrade
from db.models import (
    APPROVED,
    PENDING,
    REJECTED,
    WITHDRAWN,
    Correction,
    Export,
    Generation,
    ModelVersion,
    Problem,
    Review,
)
from db.settings import StoreSettings
from db.store import (
    Conflict,
    CorrectionRejected,
    ImportReport,
    InvalidInput,
    NotFound,
    ReviewError,
    Stats,
    Store,
    StoreBusy,
    StoreError,
)

__all__ = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "WITHDRAWN",
    "Conflict",
    "Correction",
    "CorrectionRejected",
    "Export",
    "Generation",
    "ImportReport",
    "InvalidInput",
    "ModelVersion",
    "NotFound",
    "Problem",
    "Review",
    "ReviewError",
    "Stats",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreSettings",
    "upgrade",
]
