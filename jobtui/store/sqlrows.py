"""Many rows per SQLite statement, for the writer's batches.

Why not one executemany per kind: Python's sqlite3 lets go of the GIL around every row's step
and must take it back for the next, and while the event loop is busy it gets it back only when
the loop is made to let go (every sys.getswitchinterval(), 5 ms). With the loop running 20,000
runs, an executemany wrote about 11,000 rows a second; one statement of many rows lets go of the
GIL once and wrote 60,000. So each kind's rows go in a few statements of up to CHUNK rows:
INSERT ... VALUES (...), (...), and for updates by run id, UPDATE ... FROM a VALUES list.

A None among the parameters is bound as NaN, which SQLite stores as NULL all the same: Python's
sqlite3 binds an int, a float or a str directly, but looks a None up among its adapters first
(it is none of those types), about 290 ns a parameter against 30 for a float, with the GIL
held. A run's result has seven (no error, no output...): 2 us of the writer's 5.2 for it.

Each statement lets go of the GIL for its step, and one that writes rows takes long enough for
the busy loop to take the GIL; the writer then waits for it to come back (5 ms and more). So a
kind's rows go in at most two statements for each CHUNK rows, not one per power of two in their
number (1,365 rows were six statements; a busy loop made each 4096-write batch 110 ms). The
first has a multiple of STEP rows; the rest (fewer than STEP) go in a statement whose size is
a power of two, its rows beyond those given being NULLs that change nothing: an UPDATE ... FROM
finds no run for them, and an INSERT takes its rows from SELECT ... LIMIT the rows given (the
last parameter). A statement's text comes in a handful of sizes, prepared once and then found
in the connection's statement cache. Preparing costs more than running (a 1,024-row result
statement takes 14 ms), so `warm` prepares them before the first burst needs them.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .writes import SUCCEEDED_PLAINLY, Kind

NULL = math.nan  # bound for None: SQLite turns a NaN into NULL (see above)
CHUNK = 1024  # most rows in one statement (fewer if SQLite allows fewer parameters)
STEP = 256  # a statement of many rows has a multiple of this many, or a power of two below it
# SQLite before 3.33 has no UPDATE ... FROM: updates then go one row at a time.
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)

# Updates by run id as UPDATE ... FROM: the columns of the VALUES list, in the order of the
# writer's parameters (the same as the one-row statements'), and the SET clause.
UPDATES: dict[Kind, tuple[tuple[str, ...], str]] = {
    Kind.PROGRESS: (
        ("progress", "status_message", "attempt", "pid", "pid_start", "run_id"),
        "progress = v.progress, status_message = v.status_message, attempt = v.attempt, "
        "pid = coalesce(v.pid, runs.pid), pid_start = coalesce(v.pid_start, runs.pid_start)",
    ),
    Kind.FINISH: (
        (
            "finished_at",
            "outcome",
            "reason",
            "attempt",
            "progress",
            "status_message",
            "error_type",
            "error_message",
            "error_traceback",
            "exit_code",
            "signal",
            "output",
            "output_dropped_bytes",
            "started_at",
            "run_id",
        ),
        "finished_at = v.finished_at, outcome = v.outcome, reason = v.reason, "
        "attempt = v.attempt, progress = v.progress, status_message = v.status_message, "
        "error_type = v.error_type, error_message = v.error_message, "
        "error_traceback = v.error_traceback, exit_code = v.exit_code, signal = v.signal, "
        "output = v.output, output_dropped_bytes = v.output_dropped_bytes, "
        "started_at = coalesce(v.started_at, runs.started_at)",
    ),
    Kind.SUCCEEDED: (
        ("finished_at", "attempt", "started_at", "run_id"),
        f"finished_at = v.finished_at, attempt = v.attempt, {SUCCEEDED_PLAINLY}, "
        "started_at = coalesce(v.started_at, runs.started_at)",
    ),
}


def _statement_rows(left: int, chunk: int) -> tuple[int, int]:
    """Of ``left`` rows to write, how many the next statement takes, and its size (rows of
    NULLs after those: a power of two, when fewer than STEP are left)."""
    count = min(chunk, left)
    if count >= STEP:  # exactly a multiple of STEP rows
        count -= count % STEP
        return count, count
    size = 1 << (count - 1).bit_length()  # a power of two, NULL rows after the given
    if size > chunk:  # a statement that small cannot be padded: the power of two below
        count = size = 1 << (count.bit_length() - 1)
    return count, size


class RowWriter:
    """Writes a kind's rows in as few statements as SQLite allows. ``statements`` are the
    one-row statements by kind (INSERTs end in their VALUES tuple)."""

    def __init__(self, conn: sqlite3.Connection, statements: dict[Kind, str]) -> None:
        self._statements = statements
        self._texts: dict[tuple[Kind, int], str] = {}
        self._max_parameters = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def write(self, conn: sqlite3.Connection, kind: Kind, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute ``kind``'s statement for each of ``rows``, in order; returns the number of
        rows inserted or changed."""
        statement = self._statements[kind]
        if len(rows) == 1 or (kind in UPDATES and not self._updates_apart(rows)):
            return conn.executemany(statement, rows).rowcount
        if kind not in UPDATES and " VALUES " not in statement:
            return conn.executemany(statement, rows).rowcount  # a DELETE, an UPDATE by key
        width = len(rows[0])
        chunk = self._chunk(width)
        changed, start = 0, 0
        while start < len(rows):
            count, size = _statement_rows(len(rows) - start, chunk)
            part = rows[start : start + count]
            params = [NULL if value is None else value for row in part for value in row]
            if size > count:
                params += [NULL] * ((size - count) * width)
            if kind not in UPDATES:  # an INSERT takes the rows given: LIMIT count
                params.append(count)
            changed += conn.execute(self._text(kind, size, width), params).rowcount
            start += count
        return changed

    def warm(self, conn: sqlite3.Connection, kinds: Iterable[Kind], rows: int, done: int) -> None:
        """Prepare ``kinds``' many-row statements, into the connection's statement cache, in
        each size ``write`` makes for up to ``rows`` rows and not for up to ``done`` (prepared
        already): a burst of 20,000 runs prepared about twenty while it ran (~50 ms of the
        writer's ~300). Only the sizes the store's batches have come to: the statements for
        1,024 rows take megabytes, which a few jobs never need. Each runs once and changes
        nothing (an INSERT takes LIMIT 0 of its rows; an update's rows of NULLs find no run);
        the caller rolls the transaction back all the same."""
        for kind in kinds:
            update = kind in UPDATES
            if update and not UPDATE_FROM:  # write() sends these a row at a time there
                continue
            width = len(UPDATES[kind][0]) if update else self._statements[kind].count("?")
            chunk = self._chunk(width)
            # Every size write() makes for that many rows, by asking it (a few thousand cheap
            # calls, each time a batch has had more rows than ever).
            sizes = {_statement_rows(n, chunk)[1] for n in range(1, min(rows, chunk) + 1)}
            sizes -= {_statement_rows(n, chunk)[1] for n in range(1, min(done, chunk) + 1)}
            for size in sorted(sizes):
                params: list[Any] = [NULL] * (size * width)
                if not update:
                    params.append(0)
                conn.execute(self._text(kind, size, width), params)

    def _chunk(self, width: int) -> int:
        """The most rows a statement takes: CHUNK, or fewer if SQLite allows fewer parameters
        (with one for the LIMIT)."""
        return max(1, min(CHUNK, (self._max_parameters - 1) // width))

    @staticmethod
    def _updates_apart(rows: Sequence[tuple[Any, ...]]) -> bool:
        """Whether one UPDATE ... FROM may take ``rows``: it changes each row of runs once,
        from one of the VALUES rows that match, so two for one run (a run's progress twice
        in a batch) must go one after the other, the later last."""
        return UPDATE_FROM and len({row[-1] for row in rows}) == len(rows)

    def _text(self, kind: Kind, size: int, width: int) -> str:
        text = self._texts.get((kind, size))
        if text is None:
            marks = "(" + ", ".join(["?"] * width) + ")"
            if kind in UPDATES:  # rows of NULLs after the given find no run: no LIMIT
                columns, assignments = UPDATES[kind]
                text = (
                    f"WITH v({', '.join(columns)}) AS (VALUES {', '.join([marks] * size)}) "
                    f"UPDATE runs SET {assignments} FROM v WHERE runs.run_id = v.run_id"
                )
            else:
                # INSERT ... VALUES (one row's tuple) and what follows it (an upsert's clause).
                head, _, rest = self._statements[kind].partition(" VALUES ")
                one, _, tail = rest.partition(")")
                values = ", ".join([one + ")"] * size)
                # Always the LIMIT: a statement of exactly the rows given takes them all, and
                # one text a size is prepared once (warm). An upsert's SELECT needs its WHERE
                # to parse as one.
                text = f"{head} SELECT * FROM (VALUES {values}) WHERE true LIMIT ?{tail}"
            self._texts[(kind, size)] = text
        return text
