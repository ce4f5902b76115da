"""``LocalController``: the Controller interface (interface.py) over a scheduler hosted in this
process, keeping the views current incrementally from the engine's events."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from ..config import Config, Problem, remove_job_table
from ..engine import (
    ClockJumped,
    Event,
    Job,
    JobAdded,
    JobModified,
    JobNotFound,
    JobRemoved,
    JobState,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    Outcome,
    RunFinished,
    RunNotFound,
    RunProgress,
    RunRetrying,
    RunStarted,
    SchedulerStarted,
)
from ..host import Host
from ..store.interface import PeerRuns
from .bulk import BULK, collector_paused
from .interface import (
    LOG_LIMIT,
    ActionFailed,
    Controller,
    HookFailed,
    JobsChanged,
    JobView,
    Notice,
    ReloadFinished,
    RunFailed,
    RunView,
    Summary,
)
from .listeners import Listeners
from .views import options_shown, peer_run_view, run_record, run_view, target_text
from .why import RECENT, JobFacts, Why, explain

log = logging.getLogger("jobtui.control")

# The console and the control socket import these from here too.
__all__ = [
    "LOG_LIMIT",
    "ActionFailed",
    "Controller",
    "HookFailed",
    "JobView",
    "JobsChanged",
    "LocalController",
    "Notice",
    "ReloadFinished",
    "RunFailed",
    "RunView",
    "Summary",
]  # fmt: skip

DAY = 86400.0
RECENT_RUNS = 200  # history kept per job when there is no store


@dataclass(frozen=True, slots=True)
class _Words:
    """What follows from a job's definition, in words: worked out again only when the
    definition changed, not on every progress update."""

    source: tuple[object, ...]  # the definition's parts: trigger, options, target, zone
    trigger: str
    timezone: str
    target: str
    options: tuple[tuple[str, str], ...]


class LocalController:
    """The controller over an in-process Host.

    Views are kept current incrementally: an event marks its job dirty, and a dirty job's view
    is rebuilt when next read. With a thousand jobs and fifty moving progress bars, that is
    fifty rebuilds per redraw instead of a thousand, and a burst of events on one job in one
    loop turn costs one rebuild. Rebuilding on read (not inside the event) also means the view
    sees the job after the scheduler finished changing it.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.scheduler = host.scheduler
        self._listeners = Listeners()
        self._views: dict[str, JobView] = {}
        self._dirty: set[str] = set()
        self._order_stale = True  # jobs came or went: re-read the scheduler's order
        self._failures: deque[float] = deque()  # when runs failed, for the 24 h count
        self._recent: dict[str, deque[dict[str, Any]]] = {}  # history without a store
        self._recent_lock = threading.Lock()  # history is read from a thread worker
        self._words: dict[str, _Words] = {}
        subscribe = self.scheduler.subscribe  # by type: events nobody here reads are not built
        self._unsubscribes = [
            subscribe(self._on_run_changed, RunStarted),
            subscribe(self._on_run_changed, RunRetrying),
            subscribe(self._on_run_changed, OccurrenceSkipped),
            subscribe(self._on_run_changed, OccurrenceMissed),
            subscribe(self._on_progress, RunProgress),
            subscribe(self._on_run_finished, RunFinished),
            subscribe(self._on_jobs_came_or_went, JobAdded),
            subscribe(self._on_jobs_came_or_went, JobRemoved),
            subscribe(self._on_job_changed, JobModified),
            subscribe(self._on_job_changed, JobStateChanged),
            subscribe(self._on_everything_changed, SchedulerStarted),
            subscribe(self._on_everything_changed, ClockJumped),
        ]
        host.reloaded.append(self._on_reloaded)
        host.peer_runs_changed.append(self._on_peer_runs)
        host.reload_failed.append(self._on_reload_failed)
        host.alerts.failed.append(
            lambda failure: self._notify(
                HookFailed(failure.job_id, f"{failure.hook}: {failure.message}")
            )
        )
        host.abandoned.append(self._on_abandoned)

    # -- reads ----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.host.config.path

    @property
    def timezone(self) -> tzinfo:
        return self.scheduler.timezone

    @property
    def reload_problems(self) -> tuple[str, ...]:
        return tuple(str(problem) for problem in self.host.reload_problems)

    def now(self) -> float:
        return self.scheduler.clock.wall()

    def jobs(self) -> list[JobView]:
        self._notice_moved_times(self.scheduler.jobs())
        self._bring_up_to_date()
        return list(self._views.values())

    def job(self, job_id: str) -> JobView | None:
        """One job's view; only this one is rebuilt (the daemon asks for the few jobs that
        changed while fifty others report progress)."""
        job = self.scheduler.get(job_id) if job_id in self.scheduler else None
        if job is not None:
            self._notice_moved_times((job,))
        if job is None or self._order_stale:
            self._bring_up_to_date()
        elif job_id in self._dirty and job_id in self._views:
            self._dirty.discard(job_id)
            self._views[job_id] = self._build(job)
        return self._views.get(job_id)

    def next_times(self, job_id: str, n: int = 5) -> list[datetime]:
        if job_id not in self.scheduler:
            return []
        return self.scheduler.next_times(job_id, n)

    def history(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; blocking (it may wait for the store's writer)."""
        if self.host.store is not None:
            return self.host.history(job_id, limit)
        with self._recent_lock:
            return list(self._recent.get(job_id, ()))[:limit]

    def log(
        self, job_id: str, run_id: str, start: int = 0, limit: int = LOG_LIMIT
    ) -> tuple[tuple[str, ...], int]:
        """Up to ``limit`` lines of the run's captured output (a running or the last run) from
        line ``start`` on, numbered from its first line (a negative ``start`` counts back from
        the end), and the ``start`` to ask for next. Lines the output cap dropped are skipped
        with a note in their place."""
        if job_id not in self.scheduler:
            return (), max(start, 0)
        job = self.scheduler.get(job_id)
        for run in (*job.active, job.last_run):
            if run is not None and run.run_id == run_id:
                if not run.has_output:
                    return (), max(start, 0)
                lines, following = run.output.since(start, limit)
                texts = tuple(line.text for line in lines)
                first = following - len(lines)
                if lines and start >= 0 and first > start:
                    texts = (f"[... {first - start} lines not kept ...]", *texts)
                return texts, following
        return (), max(start, 0)

    @property
    def host_name(self) -> str:
        return self.host.name

    def summary(self) -> Summary:
        now = self.now()
        while self._failures and self._failures[0] < now - DAY:
            self._failures.popleft()
        self._bring_up_to_date()  # the screen read jobs() just before: no second look at times
        views = self._views.values()
        store = self.host.store
        name = self.host.name
        return Summary(
            config_name=self.config_path.name,
            jobs=len(views),
            running=sum(len(view.running) for view in views),
            failed_24h=len(self._failures),
            paused=sum(1 for view in views if view.paused),
            store_status=store.status if store is not None else "",
            host=name,
            running_elsewhere=sum(
                1 for view in views for run in view.running if run.host and run.host != name
            ),
        )

    def why(self, job_id: str) -> Why | None:
        """The job's recent occurrences and its next one, in words; blocking like history."""
        try:
            job = self.scheduler.get(job_id)
            times = self.scheduler.next_times(job_id, 1)
        except JobNotFound:  # also when removed meanwhile: this runs in a thread worker
            return None
        store = self.host.store
        return explain(
            JobFacts.of(job),
            self.history(job_id, RECENT * 4),
            store.read_context(job_id) if store is not None else {},
            now=self.now(),
            next_ts=times[0].timestamp() if times else None,
        )

    def config_line(self, job_id: str) -> int | None:
        spec = self.host.config.jobs.get(job_id)
        return spec.line if spec is not None and spec.line else None

    # -- actions --------------------------------------------------------------------------
    def run_now(self, job_id: str) -> None:
        # No one here awaits it: code awaiting it later must not own (and so cancel) it.
        self.scheduler.run_now(job_id, wait=False)

    def pause(self, job_id: str) -> None:
        self.scheduler.pause(job_id, reason="paused from the console")

    def resume(self, job_id: str) -> None:
        self.scheduler.resume(job_id)

    def cancel(self, job_id: str) -> None:
        """Cancel the job's running runs (or one run by its id) here and, when hosts share the
        state, on whichever host runs them. Raises RunNotFound if no host runs one (when the
        shared state cannot be asked, the cancel is sent to the other hosts all the same)."""
        try:
            self.scheduler.cancel(job_id)
        except RunNotFound:
            elsewhere = self.host.hosts_running(job_id)
            if elsewhere == []:
                raise
            where = ", ".join(elsewhere) if elsewhere else "the hosts sharing the state"
            log.info("cancel of %s sent to %s, which runs it", job_id, where)
        self.host.tell_other_hosts("cancel", job_id, "cancelled by the user")

    def remove(self, job_id: str) -> None:
        """Remove the job and delete its table from jobs.toml, keeping the rest of the file
        as it was. Raises OSError when the file could not be edited (the job is gone anyway,
        until the next start)."""
        if job_id in self.scheduler:
            self.scheduler.remove(job_id)
        # Other hosts pause it (their jobs.toml is theirs to edit) whether or not ours edits.
        self.host.tell_other_hosts("remove", job_id, "removed from its jobs.toml")
        remove_job_table(self.config_path, job_id)

    async def reload(self) -> bool:
        return await self.host.reload()

    def subscribe(self, callback: Callable[[Notice], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    def close(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        if self._on_peer_runs in self.host.peer_runs_changed:
            self.host.peer_runs_changed.remove(self._on_peer_runs)
        if self._on_abandoned in self.host.abandoned:  # a closed controller tells no one
            self.host.abandoned.remove(self._on_abandoned)

    # -- keeping views current ------------------------------------------------------------
    def _notice_moved_times(self, jobs: Iterable[Job]) -> None:
        """The scheduler moves a job's next time without an event in a few places (a queued
        overlap, a jitter wait, an interval that fired nothing): comparing it with the view's
        catches those, so no countdown goes stale."""
        views = self._views
        for job in jobs:
            shown = views.get(job.id)
            if shown is not None and shown.next_fire != job.next_fire:
                self._dirty.add(job.id)

    def _bring_up_to_date(self) -> None:
        if self._order_stale or len(self._dirty) >= BULK:  # opening, a reload, a clock jump
            with collector_paused():
                self._catch_up()
        elif self._dirty:
            self._catch_up()

    def _catch_up(self) -> None:
        scheduler = self.scheduler
        if self._order_stale:
            self._order_stale = False
            views: dict[str, JobView] = {}
            # Jobs share their definitions' parts (10,000 jobs of one jobs.toml had 50
            # triggers and 101 option sets between them): their words are worked out once
            # per set of parts in this pass, where every job holds its parts alive (so their
            # ids stand for them). Half the time of building ten thousand views at opening.
            shared: dict[tuple[object, ...], _Words] = {}
            for job in scheduler.jobs():
                view = self._views.get(job.id)
                if view is None or job.id in self._dirty:
                    view = self._build(job, shared)
                    self._dirty.discard(job.id)
                views[job.id] = view
            self._views = views
            self._words = {key: words for key, words in self._words.items() if key in views}
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for job_id in dirty:
            if job_id in self._views and job_id in scheduler:
                self._views[job_id] = self._build(scheduler.get(job_id))

    def _build(self, job: Job, shared: dict[tuple[object, ...], _Words] | None = None) -> JobView:
        source = (job.trigger, job.options, job.target, job.zone)
        words = self._words.get(job.id)
        if words is None or words.source != source:
            target = job.target
            parts = (id(job.trigger), id(job.options), target if isinstance(target, str)
                     else id(target), id(job.zone))  # fmt: skip
            words = shared.get(parts) if shared is not None else None
            if words is None:
                zone = str(getattr(job.zone, "key", job.zone))
                words = _Words(source, job.describe_trigger(), zone, target_text(target),
                               options_shown(job))  # fmt: skip
                if shared is not None:
                    shared[parts] = words
            self._words[job.id] = words
        next_run = job.next_run_time
        name = self.host.name
        running = tuple(run_view(run, name) for run in job.active)
        last_run = run_view(job.last_run, name) if job.last_run is not None else None
        state = job.state
        peers = self.host.peer_runs
        elsewhere = peers.running.get(job.id)
        if elsewhere:
            # Oldest first, as the engine lists its own: the newest is the one the table shows.
            runs = (*running, *map(peer_run_view, elsewhere))
            running = tuple(sorted(runs, key=lambda run: run.started_ts or run.scheduled_ts))
            if state is JobState.SCHEDULED:
                state = JobState.RUNNING  # running on another host is running all the same
        peer_last = peers.last.get(job.id)
        # Occurrences are ordered by when they were due (the same moment on every host).
        if peer_last is not None and (
            last_run is None or peer_last.scheduled_ts > last_run.scheduled_ts
        ):
            last_run = peer_run_view(peer_last)
        return JobView(
            id=job.id,
            name=job.name,
            description=job.options.description,
            trigger=words.trigger,
            timezone=words.timezone,
            target=words.target,
            options=words.options,
            state=state,
            paused=job.paused,
            pause_reason=job.pause_reason,
            disabled_reason=job.disabled_reason,
            next_fire=job.next_fire,
            next_run_ts=next_run.timestamp() if next_run is not None else None,
            last_run=last_run,
            running=running,
        )

    def _notify(self, notice: Notice) -> None:
        self._listeners.notify(notice)

    def _on_progress(self, event: RunProgress) -> None:
        # No notice: progress is drawn on the steady tick, not once per update.
        self._dirty.add(event.run.job_id)

    def _on_run_changed(
        self, event: RunStarted | RunRetrying | OccurrenceSkipped | OccurrenceMissed
    ) -> None:
        self._dirty.add(event.run.job_id)
        self._notify(JobsChanged((event.run.job_id,)))

    def _on_run_finished(self, event: RunFinished) -> None:
        run = event.run
        self._dirty.add(run.job_id)
        if self.host.store is None:
            with self._recent_lock:
                runs = self._recent.setdefault(run.job_id, deque(maxlen=RECENT_RUNS))
                runs.appendleft(run_record(run))
        if run.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            self._failures.append(event.time)
            what = run.error.first_line if run.error else run.outcome.value
            self._notify(RunFailed(run.job_id, what))
        self._notify(JobsChanged((run.job_id,)))

    def _on_peer_runs(self, before: PeerRuns, after: PeerRuns) -> None:
        """Another host's run of one of these jobs started, moved, ended (or its host went
        and the run was found abandoned): those jobs' views are built again."""
        changed = {
            job_id
            for old, new in ((before.running, after.running), (before.last, after.last))
            for job_id in old.keys() | new.keys()
            if old.get(job_id) != new.get(job_id)
        }
        changed &= self._views.keys()
        if changed:
            self._dirty.update(changed)
            self._notify(JobsChanged(tuple(sorted(changed))))

    def _on_abandoned(self, found: list[dict[str, Any]]) -> None:
        """Another host died with these runs going: told as a run failing here is."""
        for run in found:
            self._dirty.add(run["job_id"])
            where = f" on host {run['host']}" if run.get("host") else ""
            self._notify(
                RunFailed(run["job_id"], f"run {run['run_id']}{where} abandoned: {run['reason']}")
            )
        if found:
            self._notify(JobsChanged(tuple(dict.fromkeys(run["job_id"] for run in found))))

    def _on_job_changed(self, event: JobModified | JobStateChanged) -> None:
        self._dirty.add(event.job_id)
        self._notify(JobsChanged((event.job_id,)))

    def _on_jobs_came_or_went(self, event: JobAdded | JobRemoved) -> None:
        self._order_stale = True
        self._dirty.add(event.job_id)
        self._notify(JobsChanged((event.job_id,)))

    def _on_everything_changed(self, event: Event) -> None:
        self._order_stale = True
        self._dirty.update(self._views)
        self._notify(JobsChanged(tuple(job.id for job in self.scheduler.jobs())))

    def _on_reloaded(self, config: Config) -> None:
        self._order_stale = True  # the reloader may have added or removed jobs quietly
        self._dirty.update(self._views)
        self._notify(ReloadFinished(True, ()))

    def _on_reload_failed(self, problems: list[Problem]) -> None:
        self._notify(ReloadFinished(False, tuple(str(problem) for problem in problems)))
