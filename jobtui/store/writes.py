"""What the state store's writer hands a backend: writes, their kinds, and the errors a backend
answers with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .answers import Claim


class Kind(Enum):
    """What a write records; a backend has one statement for each."""

    CLAIM = "claim"  # a scheduled run's row, before it starts: its answer is "inserted?"
    MANUAL_RUN = "manual_run"  # a manual run's row, when it starts
    PROGRESS = "progress"
    FINISH = "finish"
    # A run's result when it succeeded and has nothing more to say (no output, progress,
    # status message, error, exit code, signal or reason): FINISH's row without the eleven
    # values that are then always the same. Most runs end so, and each value is bound by the
    # writer with the GIL held.
    SUCCEEDED = "succeeded"
    OCCURRENCE = "occurrence"  # an occurrence that did not run: skipped or missed
    SAVE_JOB = "save_job"
    DELETE_JOB = "delete_job"
    SESSION_START = "session_start"  # this process started scheduling
    SESSION_STOP = "session_stop"
    JOB_EVENT = "job_event"  # paused, resumed, disabled, finished; a hook that failed

    # A member is its own hash: Enum's __hash__ is a Python function (hash of its name), and the
    # writer looks up each write's kind in dicts (its group, its statement), every write.
    __hash__ = object.__hash__


# The columns of a run's row that Kind.SUCCEEDED leaves out, as every backend's statement for
# it sets them (the runs table has these columns in each): what FINISH writes for such a run.
SUCCEEDED_PLAINLY = (
    "outcome = 'succeeded', reason = '', progress = NULL, status_message = '', "
    "error_type = NULL, error_message = NULL, error_traceback = NULL, exit_code = NULL, "
    "signal = NULL, output = NULL, output_dropped_bytes = 0"
)


@dataclass(slots=True)
class Write:
    kind: Kind
    params: tuple[Any, ...]
    claim: Claim | None = None
    droppable: bool = False  # progress: the first to go when the buffer is full
    journaled: bool = False  # a claim noted in the backend's journal, its run let go ahead
    job_id: str = ""  # whose record it is, to say whose records were lost


class StoreUnavailable(Exception):
    """The backend cannot take writes just now; the message says why (from the database)."""


class Disowned(Exception):
    """Another process owns the state now (it took the lock while this one's file was gone):
    this one must write nothing more, nor start a scheduled run (the other owns them now)."""
