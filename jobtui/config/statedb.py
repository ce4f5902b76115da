"""`[scheduler] state` naming a PostgreSQL database instead of a file: a libpq URI
(postgresql://user@host/db) or key=value connection string. Told apart from a file path here,
and refused if it carries a password: jobs.toml is read by anyone who may read the jobs, and
is often committed; the password belongs in the environment (PGPASSWORD) or ~/.pgpass."""

from __future__ import annotations

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
    # The path is where a file-based state would be; a database needs none.
    return state, (loader.path.parent / ".jobtui/state.db").resolve(), lease
