"""A real, throwaway PostgreSQL cluster for the RelStorage tests.

``initdb`` makes a cluster in a temporary directory and ``pg_ctl`` starts it
on a free loopback port (TCP only, its Unix socket in the same directory),
as a non-root user: PostgreSQL refuses to run as root, and CI runs as root,
so there the server runs as ``postgres`` (Debian's package creates it) or
``nobody`` through ``runuser``, in a directory that user owns.  Each test
that needs a fresh storage asks for a database of its own
(:meth:`PostgreSQLCluster.create_database`).

Debian's ``postgresql`` package provides the programs (``make postgresql``
installs it when missing).  Without them the tests skip with the reason,
unless ZEOPAPA_REQUIRE_POSTGRESQL is set (CI sets it once the package is
installed), in which case they fail.  Never a mock.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .network import free_port

#: initdb and a first start on a loaded 2-core machine.
START_TIMEOUT = 120
#: The user the server runs as when the tests run as root.
SERVER_USERS = ("postgres", "nobody")
#: The superuser initdb creates (trust authentication, loopback only).
SUPERUSER = "zeopapa"


def postgresql_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest version first."""
    found = shutil.which("pg_ctl")
    if found and Path(found).with_name("initdb").exists():
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def missing(reason: str) -> None:
    """Skip, or fail where PostgreSQL is required (CI)."""
    message = f"{reason} (run `make postgresql` to install Debian's postgresql)"
    if os.environ.get("ZEOPAPA_REQUIRE_POSTGRESQL"):
        pytest.fail(message)
    pytest.skip(message)


class PostgreSQLCluster:
    """One ``initdb`` cluster under *directory*, served on 127.0.0.1:*port*."""

    def __init__(self, directory: Path, bindir: Path) -> None:
        self.directory = Path(directory)
        self.bindir = bindir
        self.data = self.directory / "data"
        self.log = self.directory / "postgresql.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._names = itertools.count(1)
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            self.run_as = ["runuser", "-u", self._server_user(), "--"]

    @staticmethod
    def _server_user() -> str:
        for name in SERVER_USERS:
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            return name
        raise RuntimeError(
            "running as root and neither user postgres nor nobody exists: "
            "PostgreSQL needs a non-root user to run as"
        )

    def _run(self, *command: str, timeout: float = START_TIMEOUT) -> str:
        result = subprocess.run(
            [*self.run_as, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.directory,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{self.log_tail()}"
            )
        return result.stdout

    def start(self) -> PostgreSQLCluster:
        if self.run_as:
            user = pwd.getpwnam(self.run_as[2])
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            *("-D", str(self.data), "-U", SUPERUSER, "-A", "trust"),
            *("-E", "UTF8", "--locale", "C", "--no-sync"),
        )
        # fsync off: a test cluster is thrown away, durability is not tested
        # here.  Enough connections for several servers of many storages.
        options = (
            f"-h {self.host} -p {self.port} -k {self.directory} -F "
            "-c max_connections=400 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-o", options),
            *("-w", "-t", str(START_TIMEOUT), "start"),
        )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                str(self.bindir / "pg_ctl"),
                *("-D", str(self.data), "-m", "fast", "-w", "stop"),
            )

    def dsn(self, database: str) -> str:
        """A libpq connection string, as ``<postgresql> dsn`` takes it."""
        return f"dbname={database} user={SUPERUSER} host={self.host} port={self.port}"

    def execute(self, statement: str, database: str = "postgres") -> None:
        """Run one SQL statement outside a transaction (CREATE DATABASE...)."""
        import psycopg2

        connection = psycopg2.connect(self.dsn(database))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def create_database(self, prefix: str = "zodb") -> str:
        """A new empty database; returns its name."""
        name = f"{prefix}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except (FileNotFoundError, PermissionError):
            return ""


def start_cluster() -> PostgreSQLCluster:
    """A started cluster, or skip/fail saying why there is none."""
    try:
        import psycopg2  # noqa: F401
        import relstorage  # noqa: F401
    except ImportError as error:
        missing(
            f"RelStorage's PostgreSQL driver is not installed ({error}): "
            "pip install -e '.[relstorage]'"
        )
    bindir = postgresql_bindir()
    if bindir is None:
        missing("no PostgreSQL server programs (initdb, pg_ctl) on this machine")
    assert bindir is not None
    directory = Path(tempfile.mkdtemp(prefix="zeopapa-postgresql-"))
    cluster = PostgreSQLCluster(directory, bindir)
    try:
        return cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(directory, ignore_errors=True)
        missing(f"PostgreSQL did not start: {error}")
        raise


def stop_cluster(cluster: PostgreSQLCluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.directory, ignore_errors=True)


def relstorage_config(dsn: str, *, name: str | None = None, **options: str) -> str:
    """A ``<relstorage>`` section over PostgreSQL at *dsn* (with
    ``%import relstorage`` before it: the caller puts it at the top)."""
    lines = [f"<relstorage{' ' + name if name else ''}>"]
    lines += [f"  {key.replace('_', '-')} {value}" for key, value in options.items()]
    lines += ["  <postgresql>", f"    dsn {dsn}", "  </postgresql>", "</relstorage>"]
    return "\n".join(lines) + "\n"
