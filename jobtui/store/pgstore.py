"""The state store on PostgreSQL: `Store`'s event handling over the shared `PostgresBackend`,
with what sharing adds: the hosts' jobs.toml compared, `every` grids anchored alike on every
host, overlap limits known to the claims, and claims that wait for the database instead of
going ahead without it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import psycopg

from ..config.statedb import describe
from ..engine import JobRemoved, JobSnapshot, JobStateChanged, Run
from ..engine.job import JobOptions, OverlapPolicy
from .history import COLUMNS, TIMES, as_record
from .interface import PeerRuns
from .pgnotify import Notifier
from .pgpeers import PEER_POLL, PeerWatcher
from .postgres import LEASE, DatabaseUnavailable, PostgresBackend, connect
from .store import Store, StoreError
from .writes import Kind, StoreUnavailable, Write

# An `every` grid with no `start` is anchored here on every host (the Unix epoch, UTC): hosts
# started at different moments compute the same occurrences, so their claims meet.
SHARED_ANCHOR = 0.0
# Seconds a host waits before claiming an occurrence that falls to another live host: long
# enough for that host's claim to land first, short enough to take over from a dead one.
HANDOFF = 0.2
# Seconds between looks at whether the runs on other hosts that a queued occurrence waits for
# have ended (and so whether it may start).
QUEUE_POLL = 0.2
# Seconds a user's cancel, on the loop, waits for the writer's connection to ask which host
# runs the job; a batch holding it longer (queued behind other hosts' locks) would freeze the
# console, so the cancel is sent all the same, as when the database cannot be reached.
ASK_WAIT = 0.5


# A password given as key=value, quoted or not (libpq's syntax).
_PASSWORD_VALUE = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")


def shown_as(conninfo: str) -> str:
    """The database as messages name it: host and database, never the whole string (nor a
    password, even in a string libpq would refuse)."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        try:
            info = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            return describe(conninfo)
        host = unquote(str(info.get("host") or "localhost"))
        return f"{host}/{info.get('dbname') or ''}".rstrip("/")
    return _PASSWORD_VALUE.sub(r"\1***", conninfo)


class PostgresStore(Store):
    grid_anchor = SHARED_ANCHOR

    def __init__(self, backend: PostgresBackend, *, max_buffer: int) -> None:
        super().__init__(backend, max_buffer=max_buffer)
        self.backend: PostgresBackend = backend
        self._anchors: dict[str, float] = {}
        self._config_path = ""
        self._notifier: Notifier | None = None
        self._applying_remote = False
        self._turns: set[asyncio.Task[None]] = set()  # queued occurrences waiting their turn
        # The host applies what another host's user did: (action, job id, reason).
        self.on_remote: Callable[[str, str, str], None] | None = None
        self.peer_poll = PEER_POLL  # seconds between looks at other hosts' runs
        self._peers: PeerWatcher | None = None

    @classmethod
    def open_database(
        cls,
        conninfo: str,
        *,
        keep_runs: int | None = 1000,
        keep_days: float | None = None,
        lease: float = LEASE,
        host: str | None = None,
        max_buffer: int = 100_000,
    ) -> PostgresStore:
        """Connect, migrate, and record the runs of hosts whose leases ran out as abandoned.
        Raises StoreError naming the database when it cannot be used."""
        try:
            backend = PostgresBackend(
                conninfo,
                shown_as(conninfo),
                keep_runs=keep_runs,
                keep_days=keep_days,
                lease=lease,
                host=host,
            )
        except DatabaseUnavailable as exc:
            raise StoreError(str(exc)) from None
        try:
            store = cls(backend, max_buffer=max_buffer)
            store.abandoned = backend.mark_abandoned()
        except (StoreUnavailable, psycopg.Error) as exc:
            backend.close()
            raise StoreError(f"cannot use {backend.shown}: {exc}") from None
        return store

    @property
    def host(self) -> str:
        return self.backend.host

    def plan_jobs(self, options: Mapping[str, JobOptions], config_path: str = "") -> None:
        """What the claims and grids need of the jobs' options (at start and at each reload):
        the runs a job may have going at once on all hosts, and its grid's anchor."""
        limits = {}
        for job_id, opts in options.items():
            if opts.overlap.policy is OverlapPolicy.PARALLEL:
                limits[job_id] = opts.overlap.limit
            elif opts.overlap.policy is OverlapPolicy.SKIP:
                limits[job_id] = 1
        self.backend.limits = limits
        policies = {job_id: opts.overlap.policy for job_id, opts in options.items()}
        self.backend.replacing = frozenset(
            job_id for job_id, policy in policies.items() if policy is OverlapPolicy.REPLACE
        )
        self.backend.queueing = frozenset(
            job_id for job_id, policy in policies.items() if policy is OverlapPolicy.QUEUE
        )
        self._anchors = {
            job_id: opts.start if opts.start is not None else SHARED_ANCHOR
            for job_id, opts in options.items()
        }
        if config_path:
            self._config_path = config_path

    def set_fingerprint(self, job_id: str, fingerprint: str) -> None:
        super().set_fingerprint(job_id, fingerprint)
        # The lease thread tells the other hosts at its next beat.
        self.backend.config_fingerprint = _config_fingerprint(self._fingerprints)

    def _job_state_changed(self, event: JobStateChanged) -> None:
        if self._applying_remote:  # the host where the user acted noted it, and told the rest
            return
        super()._job_state_changed(event)
        # What this host's users did (or its jobs did: disabled after failures stays this
        # host's own) goes to the other hosts.
        if event.state == "paused":
            self._notify("pause", event.job_id, event.reason)
        elif event.reason == "resumed":
            self._notify("resume", event.job_id)

    def _job_removed(self, event: JobRemoved) -> None:
        super()._job_removed(event)
        self._fingerprints.pop(event.job_id, None)
        self.backend.config_fingerprint = _config_fingerprint(self._fingerprints)

    def load_snapshots(self, fingerprints: dict[str, str]) -> dict[str, JobSnapshot]:
        try:
            self.backend.register(_config_fingerprint(fingerprints), self._config_path)
            snapshots = super().load_snapshots(fingerprints)
        except StoreUnavailable as exc:
            raise StoreError(str(exc)) from None
        for job_id in fingerprints:
            anchor = self._anchors.get(job_id, SHARED_ANCHOR)
            kept = snapshots.get(job_id)
            if kept is None:
                snapshots[job_id] = JobSnapshot(grid_anchor=anchor)
            else:  # a changed definition starts afresh, but on the shared grid all the same
                last = kept.last_fired if kept.catch_up else None
                snapshots[job_id] = dataclasses.replace(
                    kept, last_fired=last, grid_anchor=anchor, catch_up=True
                )
        return snapshots

    def start(self) -> None:
        super().start()
        self.backend.on_abandoned = self._abandoned_elsewhere
        self.backend.start_leases()
        self._notifier = Notifier(
            self.backend.conninfo, self.backend.shown, self.host, self._remote_notice
        )
        self._notifier.start()
        self._peers = PeerWatcher(self.backend.conninfo, self.backend.shown, self.host,
                                  lambda: list(self._anchors), self._peers_changed,
                                  poll=self.peer_poll)  # fmt: skip
        self._peers.start()

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        """From one of the store's threads (notifier, lease, peers): ``callback`` runs on the
        loop, where the host and its users live; nothing once the loop closed."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed
                self._loop.call_soon_threadsafe(callback, *args)

    def _peers_changed(self, picture: PeerRuns) -> None:
        """From the watcher's thread: the host hears of it on the loop."""
        self._on_loop(self._tell_peers, picture)

    def _tell_peers(self, picture: PeerRuns) -> None:
        if self.on_peer_runs is not None and not self._closed:
            self.on_peer_runs(picture)

    def announce(self, action: str, target: str, reason: str = "") -> None:
        if action == "remove":  # noted, so a host that did not hear it catches up on it
            self.note_job_event(target, "removed", reason)
        self._notify(action, target, reason)

    def hosts_running(self, target: str) -> list[str] | None:
        """The other hosts with a run of the job (or the run, by its id) going on; None when
        the database cannot be asked just now (nor within ASK_WAIT). Asked, on the loop, when
        a user cancels."""
        if self.writer.status:  # the database is away: do not wait for a connect to fail
            return None
        try:
            return self.backend.hosts_running(target, wait=ASK_WAIT)
        except StoreUnavailable:
            return None

    def _notify(self, action: str, job_id: str, reason: str = "") -> None:
        if self._notifier is not None:
            self._notifier.send(action, job_id, reason)

    def _remote_notice(self, action: str, job_id: str, reason: str, host: str) -> None:
        """From the notifier's thread: hand it to the loop, where the host applies it."""
        if self.on_remote is not None:
            self._on_loop(self._apply_remote, action, job_id, reason, host)

    def _abandoned_elsewhere(self, found: list[dict[str, Any]]) -> None:
        """From the lease thread: runs of a host that died, which this host's update found
        (and so no other host reports); the host hears of them on the loop."""
        self._on_loop(self._report_abandoned, found)

    def _report_abandoned(self, found: list[dict[str, Any]]) -> None:
        if self.on_abandoned is not None:
            self.on_abandoned(found)

    def _apply_remote(self, action: str, job_id: str, reason: str, host: str) -> None:
        if self.on_remote is None:
            return
        self._applying_remote = True  # not sent back out: every host heard it already
        try:
            self.on_remote(action, job_id, f"{reason} (on host {host})" if reason else "")
        finally:
            self._applying_remote = False

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        if self._peers is not None:
            self._peers.close()
        super().close()

    # Claimed a run at a time, not a pass at a time as Store's: a claim's host hand-off and
    # queue turn hang off its future, which the engine cancels when its run is cancelled.
    claim_many = None  # type: ignore[assignment]

    def claim(self, run: Run) -> asyncio.Future[bool]:
        """As Store's, without letting the run go ahead when the database is slow: another
        host may have it. The writer answers within its connect and statement timeouts."""
        assert self._loop is not None, "start the store before the scheduler"
        future: asyncio.Future[bool] = self._loop.create_future()
        write = Write(
            Kind.CLAIM,
            (run.run_id, run.job_id, run.scheduled_ts, time.time()),
            claim=future,
            job_id=run.job_id,
        )
        answer = future
        if run.job_id in self.backend.queueing:
            # A queue job's occurrence claimed while another host runs the job is this host's,
            # but starts only once those runs end: its answer waits until then.
            turn: asyncio.Future[bool] = self._loop.create_future()
            future.add_done_callback(lambda claimed: self._claimed(run.run_id, claimed, turn))
            answer = turn
        if self._preferred(run):
            self.writer.push(write)
        else:  # the occurrence's own host claims first; this one takes over if it does not
            self._hand_off(write, answer)
        return answer

    def _hand_off(self, write: Write, answer: asyncio.Future[bool]) -> None:
        """Push the claim after HANDOFF, unless its run is cancelled before: the occurrence
        is then left to the host it falls to. Pushed all the same, the claim came after the
        run's end (which found no row to end), and when it won it made a row no end came
        for: "running" for ever, renewed by this host's leases, holding its job's skip limit
        on every host."""
        assert self._loop is not None
        handle = self._loop.call_later(HANDOFF, self._push_claim, write)
        answer.add_done_callback(lambda done: handle.cancel() if done.cancelled() else None)

    def _claimed(
        self, run_id: str, claimed: asyncio.Future[bool], turn: asyncio.Future[bool]
    ) -> None:
        awaited = self.backend.waiting.pop(run_id, None)
        if turn.done():  # cancelled while its claim was written: its end is recorded
            return
        if claimed.cancelled():
            turn.cancel()
        elif not claimed.result() or not awaited:
            turn.set_result(claimed.result())
        else:
            assert self._loop is not None
            task = self._loop.create_task(self._wait_turn(run_id, [r for r, _ in awaited], turn))
            self._turns.add(task)
            task.add_done_callback(self._turns.discard)
            turn.add_done_callback(lambda _: task.cancel())  # the run was cancelled meanwhile

    def _still_going(self, run_id: str, awaited: list[str]) -> bool:
        """Whether a run this host's queued occurrence waits for goes on (a host that died
        has its runs abandoned once its lease runs out); when none does, the occurrence's
        row says it started. Blocking."""
        if self._closed:  # the backend's connection is gone: do not make a new one
            return True
        return not self.backend.take_turn(run_id, awaited)

    async def _wait_turn(self, run_id: str, awaited: list[str], turn: asyncio.Future[bool]) -> None:
        while not self._closed:
            await asyncio.sleep(QUEUE_POLL)
            try:
                going = await asyncio.to_thread(self._still_going, run_id, awaited)
            except StoreUnavailable:
                continue  # the occurrence stays this host's (leased): ask again
            if not going:
                if not turn.done():
                    turn.set_result(True)
                return

    def _push_claim(self, write: Write) -> None:
        if self._closed and write.claim is not None and not write.claim.done():
            write.claim.set_result(False)  # closed meanwhile: nothing would answer it
            return
        self.writer.push(write)

    def _preferred(self, run: Run) -> bool:
        """Whether this host is the one the occurrence falls to among the live hosts
        (rendezvous hashing: every host computes the same answer, and each gets an even
        share). Without it the host whose clock or writer is a hair quicker would claim all."""
        hosts = self.backend.live_hosts
        if len(hosts) < 2 or self.host not in hosts:
            return True
        key = f"\0{run.job_id}\0{run.scheduled_ts!r}".encode()

        def weight(host: str) -> bytes:
            return hashlib.blake2b(host.encode() + key, digest_size=8).digest()

        return max(hosts, key=weight) == self.host

    def read_runs(self, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        self.writer.flush(1.0)
        return read_runs(self.backend.conninfo, job=job, limit=limit)

    def read_context(self, job: str) -> dict[str, Any]:
        self.writer.flush(1.0)
        return read_context(self.backend.conninfo, job)


def _config_fingerprint(fingerprints: Mapping[str, str]) -> str:
    """One host's jobs.toml, as the other hosts compare it: its jobs and their definitions."""
    digest = hashlib.sha256()
    for job_id, fingerprint in sorted(fingerprints.items()):
        digest.update(f"{job_id}\0{fingerprint}\0".encode())
    return digest.hexdigest()


def read_runs(conninfo: str, *, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` runs of all hosts (of one job, or all), newest first, each with the
    host that ran it. Raises StoreError when the database cannot be read."""
    shown = shown_as(conninfo)
    names = (*COLUMNS, "host")
    selected = ", ".join(
        f"extract(epoch FROM {name})::float8" if name in TIMES else name for name in names
    )
    where, params = ("WHERE job_id = %s", (job,)) if job else ("", ())
    try:
        conn = connect(conninfo, shown)
        with conn:
            rows = conn.execute(
                f"SELECT {selected} FROM runs {where} "
                "ORDER BY coalesce(started_at, finished_at, scheduled_for) DESC, run_id DESC "
                "LIMIT %s",
                (*params, limit),
            ).fetchall()
    except (StoreUnavailable, psycopg.Error) as exc:
        raise StoreError(f"cannot read the run history in {shown}: {exc}") from None
    return [as_record(names, row) for row in rows]


def read_context(conninfo: str, job: str, *, limit: int = 200) -> dict[str, Any]:
    """As history.read_context, over all hosts: ``sessions`` are the spans when at least one
    host was up (each host's sessions merged; a host that died was last seen at its last lease
    beat), ``events`` the job's notes on every host, ``job`` its shared state. Raises
    StoreError when the database cannot be read."""
    shown = shown_as(conninfo)
    try:
        conn = connect(conninfo, shown)
        with conn:
            sessions = conn.execute(
                "SELECT extract(epoch FROM started_at)::float8, "
                "extract(epoch FROM stopped_at)::float8, "
                "extract(epoch FROM coalesce(stopped_at, seen_at))::float8 "
                "FROM sessions ORDER BY started_at DESC LIMIT %s",
                (limit,),
            ).fetchall()
            events = conn.execute(
                "SELECT extract(epoch FROM at)::float8, kind, detail, host FROM job_events "
                "WHERE job_id = %s ORDER BY at DESC, id DESC LIMIT %s",
                (job, limit),
            ).fetchall()
            row = conn.execute(
                "SELECT paused::int, pause_reason, disabled_reason, consecutive_failures, "
                "extract(epoch FROM last_fired)::float8, extract(epoch FROM next_fire)::float8 "
                "FROM jobs WHERE job_id = %s",
                (job,),
            ).fetchone()
    except (StoreUnavailable, psycopg.Error) as exc:
        raise StoreError(f"cannot read the job's history in {shown}: {exc}") from None
    names = (
        "paused", "pause_reason", "disabled_reason", "consecutive_failures", "last_fired",
        "next_fire",
    )  # fmt: skip
    return {
        "sessions": _merged(sessions),
        "events": [
            {"at": at, "kind": kind, "detail": detail, "host": host}
            for at, kind, detail, host in events
        ],
        "job": None if row is None else dict(zip(names, row, strict=True)),
    }


def _merged(sessions: list[tuple[float, float | None, float]]) -> list[dict[str, Any]]:
    """Hosts' sessions (started, stopped, last seen) as the spans when any host was up,
    newest first: jobtui was down only when every host was."""
    spans: list[dict[str, Any]] = []
    for started, stopped, seen in sorted(sessions):
        last = max(started, seen)
        if spans and started <= spans[-1]["last_seen"]:
            span = spans[-1]
            if last >= span["last_seen"]:
                span["last_seen"], span["stopped_at"] = last, stopped
            continue
        spans.append({"started_at": started, "stopped_at": stopped, "last_seen": last})
    return spans[::-1]
