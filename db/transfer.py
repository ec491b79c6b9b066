"""Move approved corrections between stores, through export folders.

    python -m db.transfer export OUT [--db_url URL] [--by NAME]   # approved corrections -> OUT
    python -m db.transfer import PATH [--db_url URL]              # an export -> this store
    python -m db.transfer list [--db_url URL]                     # the exports made so far

The way to bring a Space's SQLite store into a team's PostgreSQL server, or to merge two teams'
work: export from one, import into the other. Imports re-solve each correction (it must still
give the exported answer), keep its annotator, reviewer and times, and skip corrections the store
already has, so importing twice adds nothing. ``--db_url`` defaults to ``EOTD_DB_URL``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from db import cli
from db.access import SYSTEM
from db.store import Store


def transfer(args: argparse.Namespace, store: Store) -> None:
    """Do what the command line asks of ``store``."""
    if args.command == "export":
        record = store.export(args.out, by=args.by)
        print(f"exported {record.count} approved corrections to {record.path}")
    elif args.command == "import":
        report = store.import_export(args.path)
        added, skipped = len(report.added), report.skipped
        print(f"imported {added} corrections, skipped {skipped} already here")
    else:
        for e in store.exports():
            print(f"{e.id}\t{e.created_at:%Y-%m-%d %H:%M}\t{e.created_by}\t{e.count}\t{e.path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("db.transfer", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    out = sub.add_parser("export", help="write the approved corrections to a new folder")
    out.add_argument("out")
    out.add_argument("--by", default=SYSTEM.name, help="who exports (kept in the audit log)")
    into = sub.add_parser("import", help="add an export's corrections (folder, .jsonl, .parquet)")
    into.add_argument("path")
    sub.add_parser("list", help="list the exports made from this store")
    args = parser.parse_args(argv)
    return cli.run(args.db_url, lambda store: transfer(args, store))


if __name__ == "__main__":
    sys.exit(main())
