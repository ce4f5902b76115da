"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary folder, listening on a
Unix socket only (no TCP port to collide with anything), started once per test session and
removed after it. initdb and pg_ctl refuse to run as root, so they run as the `postgres` user
(runuser), in a folder that user owns. Each test gets a fresh database in it."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD_ROLE = "pwuser"  # the one role that must give a password (the wrong-password test)
PASSWORD = "right-password"


def _bin() -> Path:
    if BIN.is_dir():
        return BIN
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    return found[-1]


def _as_postgres(*argv: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )


@dataclass
class Cluster:
    folder: Path
    socket_dir: Path
    _names = itertools.count(1)

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.socket_dir} dbname={dbname} user={user}"

    def url(self, dbname: str, user: str = "postgres") -> str:
        """The connection string as a user writes it in jobs.toml."""
        quoted = str(self.socket_dir).replace("/", "%2F")
        return f"postgresql://{user}@{quoted}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), autocommit=True)

    def new_database(self) -> str:
        name = f"jobtui_test_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {PASSWORD_ROLE}")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def cut(self, name: str) -> None:
        """The database unreachable: its connections closed, new ones refused."""
        with self.admin() as conn:
            conn.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    def restore(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


def start_cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="jobtui-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    os.chmod(folder, 0o755)
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    shutil.chown(sock, "postgres", "postgres")
    bin_dir = _bin()
    try:
        _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        hba = data / "pg_hba.conf"
        hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{sock}' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _as_postgres(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
            str(folder / "log"), "-w", "-t", "30", "start",
        )  # fmt: skip
        cluster = Cluster(folder, sock)
        with cluster.admin() as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
