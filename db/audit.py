"""The audit log: one append-only row per state change, written in the change's own transaction,
so a change and its record are committed together or not at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.access import Actor
from db.models import AuditEntry

COLUMNS = ["id", "when", "user", "role", "action", "target", "before", "after", "client"]


def record(
    s: Session,
    actor: Actor,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add the audit row of ``actor`` doing ``action`` to ``target`` to session ``s``."""
    s.add(
        AuditEntry(
            user_id=actor.user_id,
            user_name=actor.name[:64],
            role=actor.role.value,
            action=action,
            target=target[:128],
            before=before,
            after=after,
            client=(actor.client or "")[:128] or None,
        )
    )


def recent(s: Session, limit: int = 200, action: str | None = None) -> list[AuditEntry]:
    """The newest audit rows first (of one action when given)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(s.scalars(query))


def row(entry: AuditEntry) -> list[Any]:
    """One entry as a table row (``COLUMNS``)."""
    return [
        entry.id,
        f"{entry.created_at:%Y-%m-%d %H:%M:%S}",
        entry.user_name,
        entry.role,
        entry.action,
        entry.target,
        "" if entry.before is None else str(entry.before),
        "" if entry.after is None else str(entry.after),
        entry.client or "",
    ]
