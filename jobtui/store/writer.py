"""The batching writer: one thread takes queued writes to a backend in batches, so the event loop
never waits on the disk or the network. It knows nothing of SQL; a backend turns a batch of
`Write`s into statements. When the backend cannot be written (locked, full, read-only, down), the
writes wait in a bounded buffer, the writer says so in ``status``, and it tries again with
backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

BATCH = 500  # writes per transaction
PRUNE_EVERY = 60.0  # seconds between applications of the retention limits
CLOSE_RETRIES_FOR = 10.0  # seconds a closing writer keeps trying a failing backend
JOIN_FOR = 30.0  # longer than CLOSE_RETRIES_FOR plus one attempt (a 5 s busy timeout)

log = logging.getLogger("jobtui.store")


class Kind(Enum):
    """What a write records; a backend has one statement for each."""

    CLAIM = "claim"  # a scheduled run's row, before it starts: its answer is "inserted?"
    MANUAL_RUN = "manual_run"  # a manual run's row, when it starts
    PROGRESS = "progress"
    FINISH = "finish"
    OCCURRENCE = "occurrence"  # an occurrence that did not run: skipped or missed
    SAVE_JOB = "save_job"
    DELETE_JOB = "delete_job"
    SESSION_START = "session_start"  # this process started scheduling
    SESSION_STOP = "session_stop"
    JOB_EVENT = "job_event"  # paused, resumed, disabled, finished; a hook that failed


@dataclass(slots=True)
class Write:
    kind: Kind
    params: tuple[Any, ...]
    claim: asyncio.Future[bool] | None = None
    droppable: bool = False  # progress: the first to go when the buffer is full


class StoreUnavailable(Exception):
    """The backend cannot take writes just now; the message says why (from the database)."""


class Backend(Protocol):
    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        """Commit ``batch`` in order in one transaction; answer each CLAIM with whether its
        row was inserted. Raise StoreUnavailable (and commit nothing) if it cannot."""
        ...

    def prune(self) -> None:
        """Apply the retention limits. May raise StoreUnavailable."""
        ...


class BatchWriter:
    def __init__(self, backend: Backend, *, max_buffer: int) -> None:
        self.backend = backend
        self.max_buffer = max_buffer
        self.status = ""  # empty while writes go through; else what is wrong
        self.dropped = 0
        self.on_status: Callable[[str], None] | None = None
        self._writes: deque[Write] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the thread waits here for writes
        self._drained = threading.Condition(lock)  # flush() waits here for the thread
        self._writing = False  # a batch has left the queue but is not committed yet
        self._closing = False
        self._give_up_at = 0.0  # when closing: past this, what is queued is lost (and said)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_prune = time.monotonic()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread; claims are answered, and status reported, on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="jobtui-store", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def push(self, write: Write) -> None:
        with self._cond:
            if self._closing:  # nothing will write it: count it, say so once
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("a %s write came after the state store closed", write.kind.value)
                return
            if len(self._writes) >= self.max_buffer:
                self._make_room()
            self._writes.append(write)
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every write queued so far is committed; False if that took too long.
        Safe from any thread."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._writes or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(remaining)
        return True

    def close(self) -> bool:
        """Write what is queued (trying for CLOSE_RETRIES_FOR seconds if the backend is
        failing), then stop the thread. False if the thread is still going (the backend must
        then not be closed under it)."""
        with self._cond:
            self._closing = True
            self._give_up_at = time.monotonic() + CLOSE_RETRIES_FOR
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_FOR)
            if self._thread.is_alive():
                log.error("the state store's writer did not finish within %.0f s", JOIN_FOR)
                return False
            self._thread = None
        return True

    # -- the thread -----------------------------------------------------------------------
    def _make_room(self) -> None:
        for index, queued in enumerate(self._writes):
            if queued.droppable:
                del self._writes[index]
                self.dropped += 1
                return
        dropped = self._writes.popleft()
        self.dropped += 1
        if dropped.claim is not None:  # nothing will record it: let the run go ahead
            self._answer([(dropped.claim, True)])

    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._writes and not self._closing:
                    self._cond.wait(timeout=PRUNE_EVERY)
                    if not self._writes and not self._closing:
                        break  # an idle minute: prune
                if not self._writes and self._closing:
                    return
                batch = [self._writes.popleft() for _ in range(min(BATCH, len(self._writes)))]
                self._writing = bool(batch)
            try:
                results = self.backend.write(batch) if batch else []
                if time.monotonic() - self._last_prune > PRUNE_EVERY:
                    self._last_prune = time.monotonic()
                    self.backend.prune()
            except Exception as exc:
                # StoreUnavailable is the backend saying "not now"; anything else is a bug, but
                # the thread must live on: scheduling goes on and the writes wait.
                if not isinstance(exc, StoreUnavailable):
                    log.exception("the state store's writer failed")
                with self._cond:
                    self._writes.extendleft(reversed(batch))
                    self._writing = False
                    self._drained.notify_all()
                    waiting = len(self._writes)
                    # Runs waiting for their claim go ahead meanwhile: scheduling never stops
                    # for the store.
                    claims = [(w.claim, True) for w in self._writes if w.claim is not None]
                self._set_status(
                    f"cannot write the state database ({exc}); {waiting} records wait in memory"
                )
                self._answer(claims)
                if self._closing and time.monotonic() > self._give_up_at:
                    with self._cond:
                        lost, self.dropped = len(self._writes), self.dropped + len(self._writes)
                        self._writes.clear()
                    log.error("closing: %d records could not be written (%s)", lost, exc)
                    self._set_status(f"closed with {lost} records unwritten ({exc})")
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            with self._cond:
                self._writing = False
                self._drained.notify_all()
            if self.status:
                self._set_status("")
            answers = [(w.claim, claimed) for w, claimed in results if w.claim is not None]
            if answers:
                self._answer(answers)

    def _answer(self, answers: list[tuple[asyncio.Future[bool], bool]]) -> None:
        """Answer claims with one wake-up of the loop, not one per claim."""
        if self._loop is None or not answers:
            return

        def settle() -> None:
            for future, value in answers:
                if not future.done():
                    future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop closed
            self._loop.call_soon_threadsafe(settle)

    def _set_status(self, status: str) -> None:
        self.status = status
        callback, loop = self.on_status, self._loop
        if callback is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, status)
