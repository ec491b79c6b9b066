"""Who may do what: the roles, the acting user, and the check every state-changing call meets.

Roles are ordered; each may do what the ones below it may:

=========  ===================================================================================
visitor    solve questions, check equations
annotator  save corrections, accept a thought as is, withdraw their own corrections
reviewer   approve, reject and re-open corrections (never their own)
admin      export, import, upload pools with gold answers, rank, register, serve and promote
           model versions, start a retraining round, manage users, read the audit log
=========  ===================================================================================

The app resolves the signed-in user into an :class:`Actor` from its session (never from a text
field) and every :class:`studio.handlers.Studio` method calls :func:`require` before it changes
anything, so the UI, ``gr.api``, ``gradio_client`` and a raw ``fn_index`` call meet the same check.
CLIs and scripts run by whoever holds the database files act as :data:`SYSTEM`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VISITOR = "visitor"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


ROLES = tuple(r.value for r in Role)

ACTIONS: dict[str, tuple[Role, str]] = {
    "solve": (Role.VISITOR, "solve questions"),
    "check": (Role.VISITOR, "check equations"),
    "save_correction": (Role.ANNOTATOR, "save corrections"),
    "withdraw": (Role.ANNOTATOR, "withdraw corrections"),
    "review": (Role.REVIEWER, "review corrections"),
    "export": (Role.ADMIN, "export corrections"),
    "import": (Role.ADMIN, "import corrections"),
    "upload_gold": (Role.ADMIN, "upload problems with gold answers"),
    "rank": (Role.ADMIN, "rank problem pools"),
    "register_model": (Role.ADMIN, "register model versions"),
    "serve_model": (Role.ADMIN, "switch the served model"),
    "promote_model": (Role.ADMIN, "promote model versions"),
    "retrain": (Role.ADMIN, "start a retraining round"),
    "manage_users": (Role.ADMIN, "manage users"),
    "view_audit": (Role.ADMIN, "read the audit log"),
}
"""Each action: the least role that may do it, and how the refusal names it."""


class PermissionDenied(Exception):
    """The acting user's role does not allow the action; nothing was changed."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user name and role from the session, the user's id when they have an
    account, and the client address (for the audit log and rate limits)."""

    name: str
    role: Role
    user_id: int | None = None
    client: str | None = None

    def may(self, action: str) -> bool:
        return self.role.rank >= ACTIONS[action][0].rank

    @property
    def key(self) -> str:
        """What rate limits count by: the account, else the client address."""
        if self.user_id is not None or self.role is not Role.VISITOR:
            return f"user:{self.name}"
        return f"client:{self.client or 'unknown'}"


SYSTEM = Actor("system", Role.ADMIN, client="local process")
"""The actor of CLIs and scripts: whoever can open the database files is its administrator."""

ANONYMOUS = Actor("anonymous", Role.VISITOR)


def require(actor: Actor, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may do ``action``."""
    needed, what = ACTIONS[action]
    if actor.may(action):
        return
    who = (
        "Anonymous visitors"
        if actor.user_id is None and actor.role is Role.VISITOR
        else (f"{actor.name} ({actor.role.value})")
    )
    raise PermissionDenied(
        f"{who} may not {what}: it needs the {needed.value} role. Nothing was changed."
    )


def as_actor(who: Actor | str) -> Actor:
    """``who`` as an actor: a plain name is a trusted local caller (a script, a test)."""
    if isinstance(who, Actor):
        return who
    name = who.strip()
    if not name:
        raise ValueError("say who is acting (the name is empty)")
    return Actor(name, Role.ADMIN, client="local process")
