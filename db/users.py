"""Accounts of a self-hosted studio: names, roles and scrypt password hashes in the store.

    python -m db.users add NAME --role reviewer      # asks for the password (or --password-stdin)
    python -m db.users list
    python -m db.users set-role NAME admin
    python -m db.users disable NAME

The app signs people in through Gradio's login page against this table (:func:`authenticate`).
On a Hugging Face Space people sign in with their HF account instead; a row here with
``provider="hf"`` gives an HF user a role other than the default.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import audit, cli
from db.access import SYSTEM, Actor, Role
from db.models import User, utcnow
from db.store import NotFound, Store, StoreError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# scrypt at n=2**14, r=8: 16 MiB and about 50 ms a hash (the standard library's memory-hard KDF).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY = None  # a hash to verify against for unknown names, so timing does not reveal them


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64) of ``password``."""
    _check_password(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 2**20, **SCRYPT)
    parts = [str(SCRYPT[k]) for k in ("n", "r", "p")]
    return "$".join(["scrypt", *parts, *(base64.b64encode(b).decode() for b in (salt, digest))])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode()[:MAX_PASSWORD],
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 2**20,
        )
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(got, expected)


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def check_name(name: str) -> str:
    """``name`` stripped, or a ValueError saying what a user name may be."""
    name = (name or "").strip()
    if not NAME.fullmatch(name):
        raise ValueError(
            "a user name has 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return name


def _find(s: Session, name: str) -> User | None:
    return s.scalars(select(User).where(User.name_key == name.strip().casefold())).first()


def _get(s: Session, name: str) -> User:
    user = _find(s, name)
    if user is None:
        raise NotFound(f"there is no user {name!r}")
    return user


def add_user(
    store: Store,
    name: str,
    role: Role | str,
    password: str | None = None,
    *,
    provider: str = "local",
    actor: Actor = SYSTEM,
) -> User:
    """Create an account (``provider="local"`` needs a password; "hf" names a Hugging Face user)."""
    name, role = check_name(name), Role(role)
    if provider not in ("local", "hf"):
        raise ValueError("provider is 'local' or 'hf'")
    if provider == "local" and password is None:
        raise ValueError("a local account needs a password")
    hashed = hash_password(password) if password is not None else None

    def work(s: Session) -> User:
        if _find(s, name) is not None:
            raise StoreError(f"a user named {name!r} already exists (names ignore case)")
        user = User(
            name=name, name_key=name.casefold(), role=role.value, provider=provider,
            password_hash=hashed,
        )  # fmt: skip
        s.add(user)
        s.flush()
        audit.record(s, actor, "user.add", f"user#{user.id}", None,
                     {"name": name, "role": role.value, "provider": provider})  # fmt: skip
        return user

    return store.transaction(work)


def set_role(store: Store, name: str, role: Role | str, *, actor: Actor = SYSTEM) -> User:
    role = Role(role)

    def work(s: Session) -> User:
        user = _get(s, name)
        before = user.role
        user.role = role.value
        audit.record(s, actor, "user.role", f"user#{user.id}", {"role": before},
                     {"role": role.value})  # fmt: skip
        return user

    return store.transaction(work)


def disable(store: Store, name: str, *, actor: Actor = SYSTEM) -> User:
    """Disable an account: it can no longer sign in, and a live session loses its role."""

    def work(s: Session) -> User:
        user = _get(s, name)
        if user.disabled_at is None:
            user.disabled_at = utcnow()
            audit.record(s, actor, "user.disable", f"user#{user.id}", {"disabled": False},
                         {"disabled": True})  # fmt: skip
        return user

    return store.transaction(work)


def users(store: Store) -> list[User]:
    return store.transaction(lambda s: list(s.scalars(select(User).order_by(User.id))), write=False)


def count(store: Store) -> int:
    """Enabled accounts."""
    query = select(func.count(User.id)).where(User.disabled_at.is_(None))
    return store.transaction(lambda s: s.scalar(query) or 0, write=False)


def find(store: Store, name: str, provider: str | None = None) -> User | None:
    """The enabled account named ``name`` (of ``provider`` when given)."""

    def work(s: Session) -> User | None:
        user = _find(s, name)
        if user is None or user.disabled_at is not None:
            return None
        return user if provider is None or user.provider == provider else None

    return store.transaction(work, write=False)


def authenticate(store: Store, name: str, password: str) -> Actor | None:
    """The actor of a local account whose password matches; None otherwise (same work either
    way, so the answer's timing does not tell whether the name exists)."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_hex(16))
    user = find(store, name or "", "local") if NAME.fullmatch((name or "").strip()) else None
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY
    ok = verify_password(password or "", stored)
    if user is None or not ok:
        return None
    return Actor(user.name, Role(user.role), user.id)


def manage(args: argparse.Namespace, store: Store) -> None:
    """Do what the command line asks of ``store``'s accounts."""
    if args.command == "add":
        password = None
        if not args.hf:
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    raise ValueError("the two passwords differ")
        user = add_user(store, args.name, args.role, password,
                        provider="hf" if args.hf else "local")  # fmt: skip
        print(f"added {user.name} ({user.role}, {user.provider})")
    elif args.command == "list":
        for u in users(store):
            state = f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "enabled"
            print(f"{u.id}\t{u.name}\t{u.role}\t{u.provider}\t{state}")
    elif args.command == "set-role":
        user = set_role(store, args.name, args.role)
        print(f"{user.name} is now {user.role}")
    else:
        user = disable(store, args.name)
        print(f"{user.name} is disabled")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("db.users", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default="annotator")
    add.add_argument("--hf", action="store_true", help="a Hugging Face user (no password)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_parser("list", help="list accounts")
    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=[r.value for r in Role])
    off = sub.add_parser("disable", help="disable an account")
    off.add_argument("name")
    args = parser.parse_args(argv)
    return cli.run(args.db_url, lambda store: manage(args, store))


if __name__ == "__main__":
    sys.exit(main())
