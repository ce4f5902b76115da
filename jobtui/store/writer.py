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
from typing import Protocol

from .answers import Claim, ClaimAnswers
from .backlog import BacklogCollector
from .writes import Disowned, Kind, StoreUnavailable, Write

BATCH = 500  # writes per transaction, unless the backend says (``batch_size``)
# Writes in the first transaction after the writer waited for work, when they begin with a
# claim: the first runs of a pass that starts thousands wait for this many rows to be written,
# not for a whole batch (4,096 claims are ~13 ms of SQL).
FIRST_BATCH = 256
ANSWER_SLICE = 100  # claims settled per turn of the loop
PRUNE_EVERY = 60.0  # seconds between applications of the retention limits
CLOSE_RETRIES_FOR = 10.0  # seconds a closing writer keeps trying a failing backend
JOIN_FOR = 30.0  # longer than CLOSE_RETRIES_FOR plus one attempt (a 5 s busy timeout)
CHECK_EVERY = 2.0  # seconds between looks at whether the database file is still there
NAMED_JOBS = 10  # jobs named when records are lost, the rest counted
NOTICE_FOR = 60.0  # seconds the news that the database was re-created stays in the status

log = logging.getLogger("jobtui.store")
UNCLAIMED = "not run: the state database could not be reached to claim it"


class Backend(Protocol):
    """What the writer asks of a backend. Besides these, it may have ``batch_size`` (writes per
    transaction) and ``warm()`` (called on the writer's thread whenever it finds nothing to
    write: prepare what a burst would otherwise pay for; cheap when there is nothing new)."""

    # True when several processes claim from this backend: a claim it cannot write is refused
    # (recorded as missed once it can), since another process may be running the occurrence.
    shared: bool

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        """Commit ``batch`` in one transaction, each run's and each job's rows ending as they
        would written in order (a backend may group the writes by kind: SQLite's GROUP_ORDER);
        answer each CLAIM with whether its row was inserted. Raise StoreUnavailable (and
        commit nothing) if it cannot."""
        ...

    def prune(self) -> None:
        """Apply the retention limits. May raise StoreUnavailable."""
        ...

    def check(self) -> str:
        """Cheap, every few seconds: "" while the backend's storage is the one it opened; else
        what it did about it (deleted, and written again from what it has). Raises
        StoreUnavailable if that failed, Disowned if another process owns the storage now."""
        ...

    def journal(self, claims: list[Write]) -> None:
        """Note ``claims`` durably somewhere other than the database (which cannot be written
        just now) before their runs go ahead, so that an occurrence still runs at most once
        if this process dies before the database takes them. Raises OSError if it cannot."""
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
        self._idle = False  # the thread waits on _cond for writes: push must wake it
        self._stopped = False  # the thread takes no more writes (closed, gave up, disowned)
        # Writes per transaction: a backend may take more (fewer commits, fewer GIL turns).
        self.batch_size: int = getattr(backend, "batch_size", BATCH)
        self._closing = False
        self._give_up_at = 0.0  # when closing: past this, what is queued is lost (and said)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_prune = time.monotonic()
        self._journal_fault = ""  # why claims let go ahead could not be journaled, if so
        self._next_check = 0.0
        self._notice = ""  # news kept in the status for a while although writes go through
        self._notice_until = 0.0
        self._disowned = False
        self._answers = ClaimAnswers(ANSWER_SLICE)  # settled on the loop, in the order given
        self._backlog = BacklogCollector()  # the collector held off while this is behind

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread; claims are answered, and status reported, on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="jobtui-store", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def push(self, write: Write) -> None:
        """Queue ``write``; on the loop, per run, so it must be tiny and never wait. The writer
        thread holds the lock while it takes a batch, and may lose the GIL meanwhile: a loop
        that took the lock for every write would then wait for the GIL to come round to the
        writer (16% of the loop's time at 20,000 runs due at once). So the common case is a
        bare append (a deque's append and popleft are atomic), and the lock is taken only to
        wake an idle writer, when the buffer is full, and after close or disown."""
        if self._idle or self._closing or self._disowned or len(self._writes) >= self.max_buffer:
            self._push_locked(write)
            return
        self._writes.append(write)
        # The writer may have gone idle (or stopped) between the look above and the append:
        # it says so before it looks at the queue a last time, so one of the two sees it.
        if self._idle or self._closing or self._disowned:
            self._appended_late(write)

    def push_many(self, writes: list[Write]) -> None:
        """``push`` for each of ``writes``, in order; one append for all in the common case
        (deque.extend of a list is one step for other threads, as append is)."""
        if self._idle and writes and not (self._closing or self._disowned):
            # The writer idles between passes: the first write wakes it under the lock, as
            # push does, and the rest take the bare append. All through the lock, a pass of
            # 20,000 claims cost the loop ~1 us a run, contending with the woken writer.
            self._push_locked(writes[0])
            writes = writes[1:]
        if (
            self._idle
            or self._closing
            or self._disowned
            or len(self._writes) + len(writes) > self.max_buffer  # as many pushes would drop
        ):
            for write in writes:
                self._push_locked(write)
            return
        self._writes.extend(writes)
        if self._idle or self._closing or self._disowned:  # see push
            for write in writes:
                self._appended_late(write)

    def _push_locked(self, write: Write) -> None:
        with self._cond:
            if self._disowned:  # another process owns the state: no run may start here
                self.dropped += 1
                if write.claim is not None:
                    # Through the loop, not here: a claim's answer may end its run, whose
                    # record comes back to push while this lock is held.
                    self._answer([(write.claim, False)])
                return
            if self._closing:  # nothing will write it: count it, say so once
                self._dropped_after_close(write)
                return
            if len(self._writes) >= self.max_buffer:
                self._make_room()
            self._writes.append(write)
            self._wake()

    def _wake(self) -> None:
        """With the lock held: wake the thread. It is not idle from now on, so the writes
        pushed until it looks for more take push's bare append, not this lock."""
        self._idle = False
        self._cond.notify()

    def _appended_late(self, write: Write) -> None:
        """``write`` went onto the queue just as the writer went idle, closed or disowned."""
        with self._cond:
            if not self._stopped:  # the thread will still take it
                self._wake()
                return
            try:
                self._writes.remove(write)
            except ValueError:  # the thread took it before it stopped
                return
            if self._disowned:
                self.dropped += 1
                if write.claim is not None:
                    self._answer([(write.claim, False)])  # through the loop: see _push_locked
            else:
                self._dropped_after_close(write)

    def _dropped_after_close(self, write: Write) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning("a %s write came after the state store closed", write.kind.value)

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
    def _take(self, most: int) -> list[Write]:
        writes = self._writes
        return [writes.popleft() for _ in range(min(most, len(writes)))]

    def _drain(self) -> list[Write]:
        """Everything queued, taken off the queue; with the lock held. Never list() then
        clear(): push appends without the lock, and what came between would be lost unsaid."""
        taken = []
        with contextlib.suppress(IndexError):
            while True:
                taken.append(self._writes.popleft())
        return taken

    def _make_room(self) -> None:
        # Over a copy: another thread's push may append meanwhile (never remove: the writer
        # thread takes writes only with the lock held), so the indexes stay right.
        for index, queued in enumerate(list(self._writes)):
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
        # A backend may prepare its statements ahead (SQLite's: warm) while nothing waits.
        warm: Callable[[], None] | None = getattr(self.backend, "warm", None)
        while True:
            # Found empty: what comes next starts with a short transaction (FIRST_BATCH), also
            # when it came while warm() ran and the thread does not wait below.
            most = self.batch_size if self._writes else FIRST_BATCH
            if warm is not None and most == FIRST_BATCH:
                try:
                    warm()
                except Exception:  # a bug, but only a missed head start: writing goes on
                    log.exception("preparing the state store's statements failed")
                    warm = None
            with self._cond:
                self._idle = True  # before the look at the queue: see push
                while not self._writes and not self._closing:
                    most = FIRST_BATCH
                    self._cond.wait(timeout=CHECK_EVERY)
                    if not self._writes and not self._closing:
                        break  # idle: look at the file, prune if it is time
                self._idle = False
                if not self._writes and self._closing:
                    self._stopped = True
                    self._backlog.stop()
                    return
                if most < self.batch_size and self._writes and self._writes[0].claim is None:
                    most = self.batch_size  # only a claim's run waits for its write
                batch = self._take(most)
                self._writing = bool(batch)
                waiting = len(self._writes)
            self._backlog.behind(waiting)
            try:
                if time.monotonic() >= self._next_check:
                    self._next_check = time.monotonic() + CHECK_EVERY
                    self._tell(self.backend.check())
                results = self.backend.write(batch) if batch else []
            except Disowned as exc:
                self._backlog.stop()
                self._disown(str(exc), batch)
                return
            except Exception as exc:
                # StoreUnavailable is the backend saying "not now"; anything else is a bug, but
                # the thread must live on: scheduling goes on and the writes wait.
                self._backlog.stop()
                if not isinstance(exc, StoreUnavailable):
                    log.exception("the state store's writer failed")
                self._next_check = 0.0  # a file found gone and not written again: look again
                with self._cond:
                    self._writes.extendleft(reversed(batch))
                    self._writing = False
                    self._drained.notify_all()
                    waiting = len(self._writes)
                if self._closing and time.monotonic() > self._give_up_at:
                    self._give_up(exc)
                    return
                # Runs waiting for their claim go ahead meanwhile: scheduling never stops
                # for the store. So do the claims that come while it waits to try again.
                self._let_claims_go_ahead()
                status = (
                    f"cannot write the state database ({exc}); {waiting} records wait in memory"
                )
                if self._journal_fault:
                    status += (
                        f"; nor can claims be journaled ({self._journal_fault}): if jobtui "
                        "dies now, runs let go meanwhile may run again"
                    )
                self._set_status(status)
                self._wait_out(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            with self._cond:
                self._writing = False
                if not self._writes:  # before flush() hears of it: the collector is as it was
                    self._backlog.caught_up()
                self._drained.notify_all()
            if self.status and (
                self.status != self._notice or time.monotonic() >= self._notice_until
            ):
                self._set_status("")
            answers = [(w.claim, claimed) for w, claimed in results if w.claim is not None]
            if answers:
                self._answer(answers)
            if time.monotonic() - self._last_prune > PRUNE_EVERY:
                self._last_prune = time.monotonic()
                self._prune()

    def _prune(self) -> None:
        """Apply the retention limits, after the batch committed: a failure must not put it
        back, as it did when the two shared one try (a shared backend then refused the
        claims whose rows had gone in: runs never run, rows left open under a lease renewed
        for good). Tried again at the next PRUNE_EVERY; the records are written meanwhile."""
        try:
            self.backend.prune()
        except StoreUnavailable as exc:
            log.warning("applying the state store's retention limits failed: %s", exc)
        except Exception:
            log.exception("applying the state store's retention limits failed")

    def _let_claims_go_ahead(self) -> None:
        """Answer the queued claims not answered yet with "run it", once the backend has
        noted them in its journal (if it cannot, they go ahead all the same, and the status
        says that a crash now could run them again)."""
        with self._cond:
            # A copy (one C call): push appends without the lock, and iterating would then fail.
            claims = [w for w in list(self._writes) if w.claim is not None and not w.journaled]
        if not claims:
            return
        if getattr(self.backend, "shared", False):  # test doubles wrap a backend without it
            self._refuse_claims(claims)
            return
        try:
            self.backend.journal(claims)
            self._journal_fault = ""
        except Exception as exc:  # the status says so (a full disk refuses both)
            self._journal_fault = str(exc)
        for write in claims:
            write.journaled = True
        self._answer([(w.claim, True) for w in claims if w.claim is not None])

    def _refuse_claims(self, claims: list[Write]) -> None:
        """A shared backend's claims that cannot be written: not run here. Each becomes the
        record of a missed occurrence, written when the backend is back unless a host that
        could claim it has a record of it already."""
        now = time.time()
        answers = []
        with self._cond:
            for write in claims:
                run_id, job_id, scheduled_for, _ = write.params
                write.kind = Kind.OCCURRENCE
                write.params = (run_id, job_id, scheduled_for, now, "missed", UNCLAIMED)
                if write.claim is not None:
                    answers.append((write.claim, False))
                write.claim = None
        self._answer(answers)

    def _wait_out(self, backoff: float) -> None:
        """Sleep before trying the backend again, but answer claims that come meanwhile at
        once: a job due now must not wait for the backoff."""
        until = time.monotonic() + backoff
        while True:
            with self._cond:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return
                self._idle = True  # a claim pushed now must wake it (see push)
                if self._closing or not any(
                    w.claim is not None and not w.journaled for w in list(self._writes)
                ):
                    self._cond.wait(remaining)
                    self._idle = False
                    continue
                self._idle = False
            self._let_claims_go_ahead()

    def _tell(self, notice: str) -> None:
        """Something the user must hear of although writing goes on (the file was re-created):
        logged, and kept in the status for a while."""
        if notice:
            log.error("%s", notice)
            self._notice, self._notice_until = notice, time.monotonic() + NOTICE_FOR
            self._set_status(notice)

    def _disown(self, message: str, batch: list[Write]) -> None:
        log.error("%s", message)
        with self._cond:
            self._disowned = True
            self._stopped = True
            lost = batch + self._drain()
            self._writing = False
            self.dropped += len(lost)
            self._drained.notify_all()
        self._set_status(message)
        self._answer([(w.claim, False) for w in lost if w.claim is not None])

    def _give_up(self, exc: Exception) -> None:
        """Closing, and the backend still refuses: what is queued is lost. Say how much,
        whose, and why; nothing waits in memory any more."""
        with self._cond:
            self._stopped = True
            lost = self._drain()
            self.dropped += len(lost)
        jobs = sorted({w.job_id for w in lost if w.job_id})
        # A status line, not a list: thousands of jobs' records can be lost at once.
        named = ", ".join(jobs[:NAMED_JOBS])
        if len(jobs) > NAMED_JOBS:
            named += f" and {len(jobs) - NAMED_JOBS:,} more"
        whose = f" (jobs: {named})" if jobs else ""
        message = (
            f"closed with {len(lost)} records lost{whose}: the state database could not be "
            f"written ({exc})"
        )
        log.error("%s", message)
        self._set_status(message)

    def _answer(self, answers: list[tuple[Claim, bool]]) -> None:
        """Answer claims on the loop, ANSWER_SLICE a turn (see ClaimAnswers)."""
        if self._loop is not None:
            self._answers.give(self._loop, answers)

    def settle_queued(self) -> None:
        """On the loop: settle every answer given so far, now (see ClaimAnswers.settle_all)."""
        self._answers.settle_all()

    def _set_status(self, status: str) -> None:
        if status == self.status:  # each retry finds the same fault: say it once
            return
        self.status = status
        callback, loop = self.on_status, self._loop
        if callback is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, status)
