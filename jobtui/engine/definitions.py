"""Job definitions: what ``add_job``, ``modify`` and ``restore`` are given, checked and turned
into a job, its trigger, options and plan. Nothing here schedules; the scheduler plans the
result."""

from __future__ import annotations

import os
from collections.abc import Container
from datetime import tzinfo
from typing import Any

from .errors import DuplicateJob, InvalidJobOption
from .job import DEFAULT_OPTIONS, Job, JobSnapshot, classify_target
from .processes import check_run_mode
from .timezones import resolve_timezone
from .triggers import TRIGGER_KEYS, make_trigger, plan_for


def new_job(
    target: Any,
    job_id: str | None,
    *,
    taken: Container[str],
    default_zone: tzinfo,
    timezone: str | tzinfo | None,
    paused: bool,
    every: object,
    cron: object,
    at: object,
    options: dict[str, Any],
) -> Job:
    job_id = job_id if job_id is not None else _default_id(target)
    if not isinstance(job_id, str) or not job_id.strip():
        raise InvalidJobOption(f"a job id must be non-empty text, got {job_id!r}", key="id")
    if job_id in taken:
        raise DuplicateJob(job_id)
    zone = (
        default_zone
        if timezone is None
        else resolve_timezone(timezone, key="timezone", job_id=job_id)
    )
    kind, takes_run = classify_target(target, job_id)
    trigger = make_trigger(every=every, cron=cron, at=at, zone=zone, job_id=job_id)
    job_options = DEFAULT_OPTIONS.with_changes(job_id, zone, **options)
    check_run_mode(kind, target, job_options.run_mode, job_id)
    job = Job(job_id, target, kind, takes_run, trigger, job_options, zone)
    if paused:
        job.paused = True
        job.pause_reason = "added paused"
    return job


def reconfigure(job: Job, changes: dict[str, Any], default_zone: tzinfo) -> object:
    """Apply ``modify``'s changes to the job's definition, keeping its history and counters.
    Returns the ``paused`` it asked for (None: not asked), which the scheduler carries out."""
    job_id = job.id
    zone = job.zone
    if "timezone" in changes:
        value = changes.pop("timezone")
        zone = default_zone if value is None else resolve_timezone(value, job_id=job_id)
    trigger_changes = {k: changes.pop(k) for k in TRIGGER_KEYS if k in changes}
    target = changes.pop("target", job.target)
    paused = changes.pop("paused", None)
    kind, takes_run = classify_target(target, job_id)
    trigger = (
        make_trigger(zone=zone, job_id=job_id, **trigger_changes)
        if trigger_changes
        else job.trigger
    )
    options = job.options.with_changes(job_id, zone, **changes)
    check_run_mode(kind, target, options.run_mode, job_id)
    trigger_changed = (
        trigger != job.trigger or zone != job.zone or (options.start != job.options.start)
    )
    job.target, job.kind, job.takes_run = target, kind, takes_run
    job.options, job.zone, job.trigger = options, zone, trigger
    if trigger_changed:  # a new schedule; what a restore gave the old one still holds
        plan = plan_for(trigger)
        plan.carry_from(job.plan)
        job.plan = plan
        job.finished = False
        job.finish_reason = ""
    below_max = options.max_runs is None or job.run_count < options.max_runs
    if below_max and job.finish_reason.startswith("max_runs"):
        job.finished = False
        job.finish_reason = ""
    return paused


def restore_state(job: Job, snapshot: JobSnapshot) -> None:
    job.paused = snapshot.paused or job.paused
    job.pause_reason = snapshot.pause_reason or job.pause_reason
    job.disabled_reason = snapshot.disabled_reason
    job.consecutive_failures = snapshot.consecutive_failures
    job.run_count = snapshot.run_count
    job.last_fired = snapshot.last_fired
    finished = job.plan.restore(snapshot)
    if finished is not None:
        job.finished = True
        job.finish_reason = finished


def _default_id(target: Any) -> str:
    if isinstance(target, str):
        return target.split()[0] if target.split() else target
    if isinstance(target, list | tuple) and target:
        return os.path.basename(os.fspath(target[0]))
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)
