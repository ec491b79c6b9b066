"""Who is using the app: how people sign in, and the acting user of each request.

The identity of every write comes from the request's session (Gradio's login cookie, or the
Hugging Face OAuth session on a Space), never from a text field. Modes:

- ``local``: no accounts and bound to a loopback address: one person at this machine, who is the
  admin (and may review their own corrections);
- ``accounts``: accounts in the store (``python -m db.users``); Gradio's login page checks them;
- ``oauth``: a Hugging Face Space with ``hf_oauth: true``: people sign in with their HF account
  (``EOTD_ADMINS`` names the admins, other signed-in users get ``EOTD_DEFAULT_ROLE``, default
  annotator, unless a ``provider="hf"`` account gives them another), anonymous people are visitors;
- ``public``: no accounts on any other address: everyone is an anonymous visitor (no writes).
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from db import Store
from db import users as accounts
from db.access import ANONYMOUS, Actor, Role


class Mode(StrEnum):
    LOCAL = "local"
    ACCOUNTS = "accounts"
    OAUTH = "oauth"
    PUBLIC = "public"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The sign-in mode and its settings."""

    mode: Mode = Mode.LOCAL
    admins: frozenset[str] = field(default_factory=frozenset)  # HF user names, case-folded
    default_role: Role = Role.ANNOTATOR  # of signed-in HF users without an account row

    @classmethod
    def detect(cls, store: Store, host: str | None, env: Mapping[str, str] | None = None) -> Access:
        """The mode for an app over ``store`` bound to ``host`` (see the module docstring).
        OAuth needs a Space's OAuth secret: elsewhere Gradio signs sessions with a known key."""
        env = os.environ if env is None else env
        admins = frozenset(
            n.strip().casefold() for n in env.get("EOTD_ADMINS", "").split(",") if n.strip()
        )
        role = Role(env.get("EOTD_DEFAULT_ROLE", Role.ANNOTATOR.value))
        if env.get("SPACE_ID") and env.get("OAUTH_CLIENT_SECRET"):
            return cls(Mode.OAUTH, admins, role)
        if accounts.count(store) > 0:
            return cls(Mode.ACCOUNTS, admins, role)
        host = host or env.get("GRADIO_SERVER_NAME") or "127.0.0.1"
        return cls(Mode.LOCAL if is_loopback(host) else Mode.PUBLIC, admins, role)

    def actor(self, store: Store, request: Any | None) -> Actor:
        """The acting user of ``request`` (a ``gr.Request``; None: an anonymous caller)."""
        client = getattr(getattr(request, "client", None), "host", None)
        if self.mode is Mode.LOCAL:
            return Actor("local", Role.ADMIN, None, client)
        name: str | None = None
        if self.mode is Mode.ACCOUNTS:
            name = getattr(request, "username", None)
            user = accounts.find(store, name, "local") if name else None
            if user is not None:
                return Actor(user.name, Role(user.role), user.id, client)
        elif self.mode is Mode.OAUTH:
            name = _hf_user(request)
            if name:
                user = accounts.find(store, name, "hf")
                if name.casefold() in self.admins:
                    role = Role.ADMIN
                else:
                    role = Role(user.role) if user is not None else self.default_role
                return Actor(name, role, user.id if user is not None else None, client)
        return Actor(ANONYMOUS.name, Role.VISITOR, None, client)

    def notice(self, actor: Actor) -> str:
        """What the app says about who is signed in and what they may do."""
        if self.mode is Mode.LOCAL:
            return (
                "Local mode: no accounts are set up and the app listens on this machine only, "
                "so you are its admin (and may review your own corrections). Add accounts with "
                "'python -m db.users add NAME --role admin' before serving others."
            )
        if self.mode is Mode.PUBLIC:
            return (
                "Read-only: this server has no accounts, so visitors can solve and check "
                "equations but not save or review. Add accounts with "
                "'python -m db.users' to enable curation."
            )
        if actor.role is Role.VISITOR and actor.name == ANONYMOUS.name:
            how = "Sign in with Hugging Face" if self.mode is Mode.OAUTH else "Sign in"
            return f"{how} to save corrections; visitors can solve and check equations."
        return f"Signed in as {actor.name} ({actor.role.value})."


def _hf_user(request: Any | None) -> str | None:
    """The Hugging Face user name of an OAuth session that has not expired."""
    if request is None:
        return None
    underlying = getattr(request, "request", None) or request  # as gradio.helpers reads it
    scope = getattr(underlying, "scope", None)
    session = (
        scope.get("session") if isinstance(scope, dict) else getattr(underlying, "session", None)
    )
    info = session.get("oauth_info") if isinstance(session, Mapping) else None
    if not isinstance(info, dict):
        return None
    expires = info.get("expires_at")
    if expires is not None and expires < time.time():
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return name if isinstance(name, str) and name else None
