"""A throwaway PostgreSQL server in a temporary folder, for the tests and the benchmarks.

    with LocalPostgres() as server:
        url = server.create_database("eotd")   # postgresql+psycopg://postgres@/eotd?host=...

It runs Debian's (or any installed) ``initdb`` and ``pg_ctl``: a new cluster in a temporary
folder, listening only on a unix socket in that folder (no TCP port, so parallel test workers
cannot collide), trusting local connections, stopped and deleted on exit. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user (made by Debian's package) or
``nobody``. ``durable=False`` turns off fsync, which only matters if the machine itself crashes:
right for tests, wrong for a benchmark that compares commit costs with SQLite's FULL sync; it
also turns off autovacuum, so that the server writes only what it is asked to.

Install the server with ``apt-get install postgresql`` (``.ci/run`` does).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg

PORT = 5432
"""The port number in the socket's name; there is no TCP listener."""
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The server could not be started here; the message says why."""


def postgres_program(name: str) -> Path:
    """A PostgreSQL program (``initdb``, ``pg_ctl``, ``pg_dump``, ...): on ``PATH``, else in
    Debian's newest ``/usr/lib/postgresql/N/bin`` (Debian puts only the clients on ``PATH``)."""
    if on_path := shutil.which(name):
        return Path(on_path)
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(f"{name} is not installed: apt-get install postgresql")
    return found[-1]


def _server_user() -> str | None:
    """Who runs the server: None for the current user, else an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and there is no postgres or nobody account")


class LocalPostgres:
    """A PostgreSQL cluster of our own; see the module docstring."""

    def __init__(self, durable: bool = True, bindir: Path | None = None) -> None:
        """``bindir``: where ``initdb`` and ``pg_ctl`` are (default: :func:`postgres_program`)."""
        self.durable = durable
        self.bindir = bindir
        self.root: Path | None = None
        self._user: str | None = None

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "socket"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A plain autocommit connection (for ``CREATE DATABASE`` and checks)."""
        return psycopg.connect(
            host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname=database, autocommit=True
        )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> LocalPostgres:
        self._user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="eotd-pg-"))
        self.root.chmod(0o755)  # the server's account must reach its folders
        data = self.root / "data"
        for folder in (data, self.socket_dir, self.root / "log"):
            folder.mkdir()
            if self._user:
                shutil.chown(folder, self._user, self._user)
        settings = [
            "listen_addresses=''",
            f"unix_socket_directories='{self.socket_dir}'",
            f"port={PORT}",
            "max_connections=200",
        ]
        if not self.durable:  # a test server: nothing survives a machine crash, nothing runs
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
            settings += ["autovacuum=off"]  # on its own (backup tests watch the WAL position)
        options = " ".join(f"-c {s}" for s in settings)
        initdb = [self._program("initdb"), "-D", data, "-U", SUPERUSER, "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        start = [self._program("pg_ctl"), "-D", data, "-l", self.root / "log" / "server.log"]
        start += ["-w", "-t", "60", "-o", options, "start"]
        try:
            self._as_server(initdb)
            self._as_server(start)
        except PostgresUnavailable:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            self._as_server([self._program("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def log(self) -> str:
        """The server's log so far (for error messages)."""
        path = self.root / "log" / "server.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def _program(self, name: str) -> Path:
        return self.bindir / name if self.bindir else postgres_program(name)

    def _as_server(self, command: list[Path | str]) -> None:
        """Run a server program as the server's account; raise with its output if it fails."""
        argv = [str(part) for part in command]
        if self._user:
            argv = ["runuser", "-u", self._user, "--", *argv]
        name = Path(command[0]).name
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{name} could not run: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-2000:]
            log = self.log()[-2000:]
            raise PostgresUnavailable(f"{name} failed ({done.returncode}): {output}\n{log}")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
