"""Plain views (RunView) of the engine's runs and of other hosts' runs, and a finished run as
the history lists it: what LocalController builds its job views from."""

from __future__ import annotations

from typing import Any

from ..engine import Job, Outcome, Run, RunError, format_duration
from ..engine.job import DEFAULT_OPTIONS
from ..store.interface import PeerRun
from .interface import RunView

# The options the detail screen lists when they differ from the default.
SHOWN_OPTIONS = (
    "timeout", "retries", "overlap", "catchup", "misfire_grace", "max_failures", "max_runs",
    "jitter", "kill_grace", "cwd",
)  # fmt: skip


def run_view(run: Run, host: str = "") -> RunView:
    error = run.error
    return _view(
        run,
        outcome=run.outcome,
        error_type=error.type if error else None,
        error_message=error.message if error else None,
        error_line=error.first_line if error else None,
        pid=run.pid,
        host=host,
    )


def peer_run_view(run: PeerRun) -> RunView:
    """Another host's run as the screens show it (its pid means nothing here)."""
    error = None if run.error_type is None else RunError(run.error_type, run.error_message or "")
    try:
        outcome = Outcome(run.outcome) if run.outcome is not None else None
    except ValueError:  # written by a newer jobtui: shown as ended, somehow
        outcome = Outcome.ABANDONED
    return _view(
        run,
        outcome=outcome,
        error_type=run.error_type,
        error_message=run.error_message,
        error_line=error.first_line if error is not None else None,
        pid=None,
        host=run.host,
    )


def _view(
    run: Run | PeerRun,
    *,
    outcome: Outcome | None,
    error_type: str | None,
    error_message: str | None,
    error_line: str | None,
    pid: int | None,
    host: str,
) -> RunView:
    """The fields a run of this host and another host's run name alike, and the rest given."""
    return RunView(
        run_id=run.run_id,
        job_id=run.job_id,
        manual=run.manual,
        attempt=run.attempt,
        scheduled_ts=run.scheduled_ts,
        started_ts=run.started_ts,
        finished_ts=run.finished_ts,
        outcome=outcome,
        progress=run.progress,
        status_message=run.status_message,
        error_type=error_type,
        error_message=error_message,
        error_line=error_line,
        reason=run.reason,
        pid=pid,
        host=host,
    )


def run_record(run: Run) -> dict[str, Any]:
    """A finished run as the store's ``read_runs`` returns it, for history without a store."""
    return {
        "run_id": run.run_id,
        "job_id": run.job_id,
        "scheduled_for": run.scheduled_for.isoformat(),
        "manual": run.manual,
        "attempt": run.attempt,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "outcome": run.outcome.value if run.outcome else None,
        "reason": run.reason,
        "error_type": run.error.type if run.error else None,
        "error_message": run.error.message if run.error else None,
        "duration": run.duration if run.started_at else None,
    }


def target_text(target: object) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, list):
        return " ".join(target)
    module = getattr(target, "__module__", "")
    return f"{module}:{getattr(target, '__qualname__', target)}"


def options_shown(job: Job) -> tuple[tuple[str, str], ...]:
    shown = []
    for name in SHOWN_OPTIONS:
        value = getattr(job.options, name)
        if value != getattr(DEFAULT_OPTIONS, name):
            text = format_duration(value) if isinstance(value, float) else value
            shown.append((name, f"{text}"))
    return tuple(shown)
