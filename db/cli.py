"""What the store's command-line tools (``db.users``, ``db.transfer``) share: a parser that takes
``--db_url``, and running one command against the store with errors said in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from db.settings import StoreSettings
from db.store import Store, StoreError


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser for ``python -m prog``, described by the first line of ``doc``."""
    described = argparse.ArgumentParser(
        prog=f"python -m {prog}", description=(doc or "").split("\n")[0]
    )
    described.add_argument("--db_url", default=None, help="SQLAlchemy URL (default: EOTD_DB_URL)")
    return described


def run(db_url: str | None, command: Callable[[Store], None]) -> int:
    """Run ``command`` on the store (``db_url``, else the environment's); 0, or 1 with the
    error on stderr when the store or the file system refuses it."""
    store = Store(db_url, settings=StoreSettings.from_env())
    try:
        command(store)
    except (OSError, ValueError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
