"""What every watching client has been told, and the numbered events that bring it up to date.

The server asks for the events once per flush and writes the same bytes to every watcher. A
flush costs what changed, not the number of jobs: job views are rebuilt only for the jobs a
notice named, and progress (what moves ten times a second) goes as small progress items read
straight from the runs, without rebuilding views. Once a second a full pass compares every
view, which also catches next times the scheduler moved without an event, and sends the
summary (also sent at once after a client's action or a notice).
"""

from __future__ import annotations

from collections.abc import Callable

from ..engine import Run, RunProgress
from ..engine.timezones import zone_name
from . import protocol as p
from .controller import (
    HookFailed,
    JobsChanged,
    JobView,
    LocalController,
    Notice,
    ReloadFinished,
    RunFailed,
    Summary,
)

FULL_CHECK = 1.0  # seconds between full passes over every view


class Broadcast:
    def __init__(self, controller: LocalController) -> None:
        self.controller = controller
        self.seq = 0
        self._sent: dict[str, JobView] = {}
        self._order: list[str] = []
        self._summary: Summary | None = None
        self._last_full = float("-inf")
        self._full_due = True  # jobs came or went, or nobody was told for a while
        self._summary_due = True
        self._changed: set[str] = set()  # job ids a notice named since the last flush
        self._progress: dict[str, Run] = {}  # run id -> run that reported since the last flush
        self._notices: list[RunFailed | HookFailed | ReloadFinished] = []
        self._unsubscribes: list[Callable[[], None]] = [
            controller.subscribe(self._on_notice),
            controller.host.scheduler.subscribe(self._on_progress, RunProgress),
        ]

    def close(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes = []

    # -- what happened --------------------------------------------------------------------
    def _on_notice(self, notice: Notice) -> None:
        if isinstance(notice, JobsChanged):
            self._changed.update(notice.job_ids)
        elif isinstance(notice, RunFailed | HookFailed | ReloadFinished):  # not ActionFailed
            self._notices.append(notice)
            self._summary_due = True

    def _on_progress(self, event: RunProgress) -> None:
        self._progress[event.run.run_id] = event.run

    def touched(self) -> None:
        """A client acted (pause, resume...): the summary is worth sending at once."""
        self._summary_due = True

    def forget(self) -> None:
        """Nobody watches: drop what piled up; the next watcher starts from a full pass."""
        self._changed.clear()
        self._progress.clear()
        self._notices.clear()
        self._full_due = True

    # -- what to send ---------------------------------------------------------------------
    def events(self, now: float) -> list[bytes]:
        """The encoded events since the last call, in order, numbered."""
        out: list[bytes] = []
        full = self._full_due or now - self._last_full >= FULL_CHECK
        if full:
            self._full_pass(now, out)
        elif self._changed:
            self._changed_views(out)
        progress = self._progress
        if progress:
            self._progress = {}
            items = [
                p.RunProgressItem(job_id=run.job_id, run_id=run.run_id, progress=run.progress,
                                  status_message=run.status_message)
                for run in progress.values()
                if not run.is_finished
            ]  # fmt: skip
            if items:
                self.seq += 1
                out.append(p.encode(p.ProgressEvent(seq=self.seq, runs=items)))
        if self._summary_due or full:
            self._summary_due = False
            summary = self.controller.summary()
            if summary != self._summary:
                self._summary = summary
                self.seq += 1
                out.append(p.encode(p.SummaryEvent(seq=self.seq, summary=summary)))
        notices, self._notices = self._notices, []
        for notice in notices:
            self.seq += 1
            message: p.NumberedEvent
            if isinstance(notice, ReloadFinished):
                message = p.ReloadFinishedEvent(
                    seq=self.seq, ok=notice.ok, problems=list(notice.problems)
                )
            elif isinstance(notice, HookFailed):
                message = p.HookFailedEvent(
                    seq=self.seq, job_id=notice.job_id, message=notice.message
                )
            else:
                message = p.RunFailedEvent(
                    seq=self.seq, job_id=notice.job_id, message=notice.message
                )
            out.append(p.encode(message))
        return out

    def _full_pass(self, now: float, out: list[bytes]) -> None:
        self._full_due = False
        self._last_full = now
        self._changed.clear()
        views = self.controller.jobs()
        sent = self._sent
        changed = [view for view in views if sent.get(view.id) is not view]
        order = [view.id for view in views]
        moved = order != self._order
        removed: list[str] = []
        if moved:
            kept = set(order)
            removed = [job_id for job_id in self._order if job_id not in kept]
        if changed or moved:
            self._sent = {view.id: view for view in views}
            self._order = order
            self.seq += 1
            event = p.JobsEvent(
                seq=self.seq, views=changed, removed=removed, order=order if moved else None
            )
            out.append(p.encode(event))

    def _changed_views(self, out: list[bytes]) -> None:
        changed_ids, self._changed = self._changed, set()
        views = []
        for job_id in changed_ids:
            view = self.controller.job(job_id)
            if view is None or job_id not in self._sent:  # came or went: the order changes
                self._full_pass(self._last_full, out)
                return
            if self._sent[job_id] is not view:
                self._sent[job_id] = view
                views.append(view)
        if views:
            self.seq += 1
            out.append(p.encode(p.JobsEvent(seq=self.seq, views=views)))

    def snapshot(self) -> p.Snapshot:
        """What every watcher has been told: the state at ``seq``."""
        controller = self.controller
        config = controller.host.config
        return p.Snapshot(
            seq=self.seq,
            jobs=[self._sent[job_id] for job_id in self._order],
            summary=self._summary or controller.summary(),
            config=p.ConfigInfo(
                path=str(config.path.resolve()),
                name=config.path.name,
                state_path=str(config.state_path),
                timezone=zone_name(controller.timezone),
            ),
            reload_problems=list(controller.reload_problems),
        )
