"""`[scheduler] state` naming a PostgreSQL database instead of a file: a libpq URI
(postgresql://user@host/db) or key=value connection string. Told apart from a file path here,
and refused if it carries a password: jobs.toml is read by anyone who may read the jobs, and
is often committed; the password belongs in the environment (PGPASSWORD) or ~/.pgpass."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ..engine.durations import parse_duration
from ..engine.errors import InvalidJobOption

LEASE = 30.0  # seconds a host's runs stay its own without a renewal (the store's default)

SCHEMES = ("postgresql://", "postgres://")
# libpq's connection keywords: "host=db dbname=jobs" is a connection string, "a=b.db" a file.
KEYWORDS = (
    "host", "hostaddr", "port", "dbname", "user", "service", "sslmode", "passfile",
    "connect_timeout", "application_name", "options", "target_session_attrs",
)  # fmt: skip
_CONNINFO = re.compile(rf"^\s*({'|'.join(KEYWORDS)})\s*=")
_PASSWORD = re.compile(r"(^|\s)password\s*=")


def is_database(state: str) -> bool:
    return state.startswith(SCHEMES) or bool(_CONNINFO.match(state))


def password_problem(state: str) -> str:
    """Why this connection string must not be used as written; "" if it may."""
    if state.startswith(SCHEMES):
        parts = urlsplit(state)
        found = parts.password is not None or "password" in parse_qs(parts.query)
    else:
        found = bool(_PASSWORD.search(state))
    if not found:
        return ""
    return (
        "the connection string holds a password; jobs.toml must not: remove it and give it "
        "in the environment (PGPASSWORD) or in ~/.pgpass"
    )


def describe(state: str) -> str:
    """The database as shown to users (never with a password, which is refused anyway)."""
    if state.startswith(SCHEMES):
        parts = urlsplit(state)
        return f"{parts.hostname or 'localhost'}{parts.path or ''}"
    return state


class _Reporter(Protocol):
    path: Path

    def problem(
        self,
        message: str,
        *,
        table: tuple[str, ...] = (),
        key: str | None = None,
        warning: bool = False,
    ) -> None: ...


def state_location(
    loader: _Reporter, state: str, table: dict[str, Any], where: tuple[str, ...]
) -> tuple[str | None, Path, float]:
    """(the database's connection string or None, the state file's path, the lease). A
    connection string with a password is a problem reported on the `state` key; `lease` is
    read only with a database (a file has one owner and needs none)."""
    lease = LEASE
    if "lease" in table:
        try:
            lease = parse_duration(table["lease"], key="lease", units="s, m").total_seconds()
        except InvalidJobOption as exc:
            loader.problem(exc.reason, table=where, key="lease")
        else:
            if lease < 1:
                loader.problem(
                    "a lease shorter than 1s cannot be renewed in time", table=where, key="lease"
                )
                lease = LEASE
            elif not is_database(state):
                loader.problem(
                    "lease applies only when state is a PostgreSQL database "
                    "(postgresql://...); a state file has one owner",
                    table=where,
                    key="lease",
                    warning=True,
                )
    if not is_database(state):
        return None, (loader.path.parent / state).resolve(), lease
    problem = password_problem(state)
    if problem:
        loader.problem(problem, table=where, key="state")
    return state, shared_state_key(loader.path, state), lease


def shared_state_key(config_path: Path, state: str, host: str | None = None) -> Path:
    """What stands for a database state where a file's path would (the control socket is
    keyed on it): a path never made, in the jobs.toml's `.jobtui` folder, named by the
    jobs.toml, the connection string and the host's name (``host``, by default JOBTUI_HOST;
    empty for a host named MACHINE:PID). A daemon and `jobtui status jobs.toml` beside it
    compute the same one; two daemons of one file and database on one machine, named apart
    by JOBTUI_HOST, get a socket each."""
    host = os.environ.get("JOBTUI_HOST", "") if host is None else host
    name = "\0".join((config_path.name, state, host))
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return (config_path.resolve().parent / ".jobtui" / f"{digest}.pg").resolve()
