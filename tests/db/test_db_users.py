"""Accounts: scrypt hashes, sign-in, roles and the CLI that manages them, each change audited;
on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from db import users as accounts
from db.access import Role
from db.store import Store, StoreError

ROOT = Path(__file__).resolve().parents[2]


def test_passwords_are_salted_scrypt_hashes() -> None:
    one, two = accounts.hash_password("correct horse"), accounts.hash_password("correct horse")
    assert one != two and one.startswith("scrypt$16384$8$1$") and "correct" not in one
    assert accounts.verify_password("correct horse", one)
    assert not accounts.verify_password("correct hors", one)
    assert not accounts.verify_password("correct horse", "not a hash")
    with pytest.raises(ValueError, match="10 to 1024 characters"):
        accounts.hash_password("short")


def test_sign_in_roles_and_disabling(store: Store) -> None:
    accounts.add_user(store, "Alice", "reviewer", "alice-password")
    with pytest.raises(StoreError, match="already exists"):
        accounts.add_user(store, "alice", "admin", "other-password")
    actor = accounts.authenticate(store, "alice", "alice-password")
    assert actor is not None and (actor.name, actor.role) == ("Alice", Role.REVIEWER)
    assert accounts.authenticate(store, "alice", "wrong-password") is None
    assert accounts.authenticate(store, "nobody", "alice-password") is None
    accounts.set_role(store, "ALICE", "admin")
    assert accounts.authenticate(store, "Alice", "alice-password").role is Role.ADMIN
    accounts.disable(store, "alice")
    assert accounts.authenticate(store, "Alice", "alice-password") is None
    assert accounts.count(store) == 0
    assert [(e.action, e.user_name) for e in store.audit_log()] == [
        ("user.disable", "system"), ("user.role", "system"), ("user.add", "system"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="user name"):
        accounts.add_user(store, "<b>x</b>", "annotator", "long-enough-password")
    with pytest.raises(ValueError, match="needs a password"):
        accounts.add_user(store, "carol", "annotator")
    assert accounts.add_user(store, "carol", "annotator", provider="hf").password_hash is None


@pytest.mark.stress
def test_the_cli_adds_lists_changes_and_disables(new_url: Callable[..., str]) -> None:
    url = new_url()  # an empty database: the CLI creates the schema

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "db.users", "--db_url", url, *args],
            input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip

    added = cli("add", "bob", "--role", "reviewer", "--password-stdin", stdin="bob-password-1\n")
    assert added.returncode == 0 and "added bob (reviewer, local)" in added.stdout
    assert cli("add", "BOB", "--password-stdin", stdin="x" * 12).returncode == 1
    assert cli("set-role", "bob", "admin").stdout.strip() == "bob is now admin"
    assert cli("disable", "bob").returncode == 0
    listed = cli("list").stdout.split("\t")
    assert listed[1:4] == ["bob", "admin", "local"] and listed[4].startswith("disabled")
    missing = cli("disable", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    store = Store(url)
    assert accounts.authenticate(store, "bob", "bob-password-1") is None  # disabled
    store.close()


def test_main_reads_the_password_from_stdin(db_url: str, monkeypatch) -> None:
    url = db_url
    monkeypatch.setattr(sys, "stdin", io.StringIO("erin-password\n"))
    assert accounts.main(["--db_url", url, "add", "erin", "--password-stdin"]) == 0
    store = Store(url)
    assert accounts.authenticate(store, "erin", "erin-password").role is Role.ANNOTATOR
    store.close()
