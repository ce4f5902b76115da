"""One jobtui process's parts, wired in one place: jobs.toml, its state store, the reloader that
follows edits, and the scheduler. Headless mode and the console start and stop jobtui through
a Host, so the order (restore the jobs' kept state, start the store, start the scheduler,
follow the file; stop following, stop the scheduler, close the store) is written once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from .alerts import Alerts, Occurrence
from .config import Config, Problem, Reloader
from .config.hooks import JobHooks
from .engine import Clock, Outcome, Run, RunNotFound, Scheduler
from .engine.collector import collector_paused
from .store import StateStore, Store, StoreError
from .store.interface import PeerRuns, SharedStateStore

ALERTS_DRAIN = 5.0  # seconds a stopping jobtui waits for hook deliveries still going
FULL_COLLECTION_EVERY = 1000  # middle-generation passes per full one (Python's default: 10)
SWITCH_INTERVAL = 0.0002  # seconds a thread waits for the GIL before it asks (Python's: 0.005)


def tune_collector() -> None:
    """The `jobtui` command's garbage-collector policy, never the engine library's (a program
    that imports the Scheduler keeps its collector as it set it, but for the young threshold
    raised through a pass and while a store's writer is behind: engine/collector.py,
    store/backlog.py). Full collections walk every
    tracked object: with thousands of jobs, passes of 100-200 ms that stalled the loop while
    runs were being recorded (bench/store.py), though nothing they walked was garbage. So
    what is alive once the scheduler started (the config, the jobs, their plans and
    triggers, the loaded modules) leaves the collector's walk for good (gc.freeze; reference
    counts still free it), and full collections come a hundred times rarer than Python makes
    them (FULL_COLLECTION_EVERY): a burst keeps thousands of runs in flight, and every tenth
    middle pass walked them all again (six passes of ~75 ms in 20,000 runs due at once). A
    run leaves no reference cycle behind (tests/test_store_gc.py), so that garbage
    never waits for a full pass; cycles a job's own code makes mostly die young, in the young
    generations' passes, which stay as frequent and as short as Python makes them (but while
    the store's writer is behind: store/backlog.py)."""
    # Again after a reload: what it dropped was frozen with the rest, and would never be
    # walked again; cycles among it must be found and freed. That one full collection walks
    # everything (100-200 ms with thousands of jobs), and unfreezes what a program that calls
    # this froze itself.
    gc.unfreeze()
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def tune_switching() -> None:
    """The `jobtui` command's GIL switch interval (never the library's). A thread that wants
    the GIL asks the one holding it to let go only after a whole interval in which it did not
    change hands; the busy event loop lets go at every turn (its poll) and takes it straight
    back, so the store's writer thread, back from SQLite, waited turn after turn and wrote
    only once the loop went idle: the results of 20,000 runs due at once were written after
    all of them ran (bench/store.py: 27,500 -> 32,000 runs recorded a second, same minutes).
    At 1 ms it still fell behind: the loop lets go at every turn, and each time it does, the
    waiting thread's interval starts again, so the last ~90 ms of a burst's results were
    written after its last run ended; at 0.2 ms, 3 ms (and 5-8% more runs recorded a second,
    the same minutes). Shorter turns for the GIL also bound how long a thread job computing
    in Python holds up the loop (and the console): 0.2 ms rather than 5, for a few percent of
    that job's own speed while the loop wants the GIL too."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def open_store(config: Config) -> StateStore:
    """The state store jobs.toml names, with its retention limits. Raises StoreError (owned
    by another jobtui, damaged, unreadable, a database that cannot be reached), whose message
    says what to do."""
    if config.state_url is not None:
        try:
            from .store.pgstore import PostgresStore
        except ImportError:
            raise StoreError(
                "[scheduler] state names a PostgreSQL database, which needs psycopg: "
                "pip install 'jobtui[postgres]'"
            ) from None
        return PostgresStore.open_database(
            config.state_url,
            keep_runs=config.keep_runs,
            keep_days=config.keep_days,
            lease=config.lease,
        )
    return Store.open(config.state_path, keep_runs=config.keep_runs, keep_days=config.keep_days)


class Host:
    """Owns the scheduler and the store for one jobs.toml.

    ``store=None`` runs without a state store (the library's and the tests' way): nothing
    outlives the process, and history is what this process saw.
    """

    def __init__(
        self,
        config: Config,
        *,
        store: StateStore | None = None,
        clock: Clock | None = None,
        stop_grace: float | None = None,
        tune_runtime: bool = False,
    ) -> None:
        self.config = config
        # The jobtui command's hosts (headless, the console) tune the collector and the GIL's
        # switching once started; a host in a test or a program of its own leaves them alone.
        self.tune_runtime = tune_runtime
        self.store = store
        # The store when other hosts share it, else None: looked at once, since an isinstance
        # check against the runtime-checkable protocol walks all its members (~25 us on Python
        # 3.11) and the console asks for the host's name once per job it shows (0.25 s of
        # opening the console with 10,000 jobs).
        self._shared: SharedStateStore | None = (
            store if isinstance(store, SharedStateStore) else None
        )
        # Who wants to hear of reloads (the console's banner, the headless log): a list, since
        # both the host and its users follow them.
        self.reloaded: list[Callable[[Config], None]] = []
        self.reload_failed: list[Callable[[list[Problem]], None]] = []
        # Other hosts' runs of these jobs (when hosts share the state), and who wants to hear
        # when that picture changes (the controllers).
        self.peer_runs = PeerRuns()
        self.peer_runs_changed: list[Callable[[PeerRuns, PeerRuns], None]] = []
        # Who hears of runs found abandoned while this host runs (another host sharing the
        # state died): the console and the headless log.
        self.abandoned: list[Callable[[list[dict[str, Any]]], None]] = []
        extra: dict[str, Any] = {} if stop_grace is None else {"stop_grace": stop_grace}
        with collector_paused():  # a job and its plan per job, all long-lived
            self.scheduler: Scheduler = config.make_scheduler(clock=clock, store=store, **extra)
        if self._shared is not None:
            # A job a reload adds (or redefines) on one host joins the other hosts' grid.
            self.scheduler.grid_anchor = self._shared.grid_anchor
            self._plan_shared_jobs(self._shared, config)
            self._shared.on_remote = self._apply_remote
            self._shared.on_peer_runs = self._on_peer_runs
        if store is not None:
            fingerprints = {job_id: spec.fingerprint for job_id, spec in config.jobs.items()}
            for job_id, snapshot in store.load_snapshots(fingerprints).items():
                if job_id in self.scheduler:
                    self.scheduler.restore(job_id, snapshot)
            self._show_abandoned(store.abandoned)
        self.reloader = Reloader(
            self.scheduler,
            config,
            on_reloaded=self._on_reloaded,
            on_failed=self._on_reload_failed,
            on_job_changed=store.set_fingerprint if store is not None else None,
        )
        self._watcher: asyncio.Task[None] | None = None
        self.alerts = Alerts(self.scheduler, self._hooks_for, store=store, cwd=config.path.parent)
        if store is not None:
            store.on_abandoned = self._abandoned_now

    def _plan_shared_jobs(self, store: SharedStateStore, config: Config) -> None:
        options = {job.id: job.options for job in self.scheduler.jobs()}
        store.plan_jobs(options, str(config.path))

    @property
    def shared(self) -> bool:
        """Whether other hosts share this host's state (and so run its jobs too)."""
        return self._shared is not None

    @property
    def name(self) -> str:
        """This host's name when other hosts share the state (runs show where they ran);
        empty when none can."""
        return self._shared.host if self._shared is not None else ""

    def _on_peer_runs(self, picture: PeerRuns) -> None:
        before, self.peer_runs = self.peer_runs, picture
        for listener in self.peer_runs_changed:
            listener(before, picture)

    def tell_other_hosts(self, action: str, target: str, reason: str = "") -> None:
        """What a user did here ("cancel" a job or run, "remove" a job) for the hosts sharing
        the state; nothing without them."""
        if self._shared is not None:
            self._shared.announce(action, target, reason)

    def hosts_running(self, target: str) -> list[str] | None:
        """The other hosts sharing the state that run the job (or the run, by its id): none
        without them; None when the shared state cannot be asked just now."""
        if self._shared is not None:
            return self._shared.hosts_running(target)
        return []

    def _apply_remote(self, action: str, job_id: str, reason: str) -> None:
        """Another host's user paused, resumed or cancelled a job (or a run), or removed it:
        so does this host. A job removed there is paused here, not removed: this host's
        jobs.toml still has it, and a restart would bring it back unannounced."""
        if action == "cancel":
            with contextlib.suppress(RunNotFound):  # none of its runs going here
                self.scheduler.cancel(job_id, reason or "cancelled on another host")
            return
        if job_id not in self.scheduler:
            return
        if action == "pause":
            self.scheduler.pause(job_id, reason=reason or "paused on another host")
        elif action == "resume":
            self.scheduler.resume(job_id)
        elif action == "remove":
            said = reason or "removed on another host"
            self.scheduler.pause(
                job_id, reason=f"{said}; remove it from this host's jobs.toml too, or resume it"
            )

    def _show_abandoned(self, abandoned: list[dict[str, Any]]) -> None:
        """A run the last owner left unfinished is its job's last run until a newer one ends:
        the table says "abandoned", not whatever the first occurrence after the restart did."""
        for found in sorted(abandoned, key=lambda run: run["scheduled_for"]):
            if found["job_id"] not in self.scheduler:
                continue
            run = Run(found["job_id"], found["run_id"], found["scheduled_for"])
            run.outcome = Outcome.ABANDONED
            run.reason = found["reason"]
            run._started_ts = found["started_at"]
            run._finished_ts = found["detected_at"]
            self.scheduler.get(found["job_id"]).last_run = run

    def _abandoned_now(self, found: list[dict[str, Any]]) -> None:
        """Runs of a host that died, found by this one while it runs: they go where runs found
        at start-up go (the job's last run, its alerts, the console and the log)."""
        known = [run for run in found if run["job_id"] in self.scheduler]
        self._show_abandoned(known)
        for run in known:
            self.alerts.occurred(Occurrence.abandoned(run, run["detected_at"]))
        for listener in self.abandoned:
            listener(known)

    # -- life cycle -----------------------------------------------------------------------
    async def start(self, *, watch: bool = True) -> None:
        """Start the store's writer and the scheduler, then follow edits of jobs.toml."""
        if self.store is not None:
            self.store.start()
        self.alerts.start(self.store.abandoned if self.store is not None else [])
        await self.scheduler.start()
        if self.tune_runtime:
            tune_collector()
            tune_switching()
        if watch:
            self._watcher = asyncio.create_task(self.reloader.watch(), name="watch-jobs-toml")

    async def stop(self, grace: float | None = None) -> None:
        """Stop following the file, stop the scheduler (runs get ``grace`` seconds), then write
        what the store has queued and let go of it. Safe to call twice."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        try:
            if self.scheduler.running:
                await self.scheduler.stop(grace)
            # What the last runs' ends called goes out (bounded), and its failures are noted.
            await self.alerts.stop(drain=ALERTS_DRAIN)
        finally:  # even when the stop is cancelled: the lock goes, queued writes are written
            if self.store is not None:
                await asyncio.to_thread(self.store.close)

    def kill_leftovers(self) -> None:
        """After a crash the loop is gone without its own shutdown: still, no command may be
        left running behind it."""
        for run in self.scheduler.running_runs():
            if run.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.pid, signal.SIGKILL)
        self.alerts.kill_leftovers()
        if self.store is not None:
            self.scheduler.save_state()  # what the loop had not handed over yet
            self.store.close()

    # -- what users of the host ask -------------------------------------------------------
    async def reload(self) -> bool:
        return await self.reloader.reload()

    @property
    def reload_problems(self) -> list[Problem]:
        return self.reloader.problems

    def history(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The job's newest runs from the store, newest first; blocking (call it off the loop)."""
        if self.store is None:
            return []
        return self.store.read_runs(job_id, limit)

    def _hooks_for(self, job_id: str) -> JobHooks | None:
        spec = self.config.jobs.get(job_id)  # the newest config: an edited hook applies at once
        return spec.hooks if spec is not None else None

    def _on_reloaded(self, config: Config) -> None:
        self.config = config
        if self.tune_runtime:  # the jobs a reload made live as long as the first ones
            tune_collector()
        if self._shared is not None:
            self._plan_shared_jobs(self._shared, config)
        for listener in self.reloaded:
            listener(config)

    def _on_reload_failed(self, problems: list[Problem]) -> None:
        for listener in self.reload_failed:
            listener(problems)
