"""Triggers: when a job's occurrences fall. Each is plain configuration that makes a plan (see
plans.py) holding the job's schedule state, so a trigger can be shared, compared and shown."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from .cron import CronExpression
from .durations import format_duration, parse_duration
from .errors import InvalidJobOption, InvalidTrigger
from .plans import CronPlan, DatePlan, IntervalPlan, Plan, ReturnedTimePlan

TRIGGER_KEYS = ("every", "cron", "at")  # the keyword (and jobs.toml key) of each trigger


class Trigger:
    kind: str = ""
    __slots__ = ()

    def describe(self, zone: tzinfo = UTC) -> str:
        """The trigger in words, as the console, `jobtui list` and `check` show it."""
        raise NotImplementedError

    def plan(self) -> Plan:
        """A fresh schedule for a job on this trigger."""
        raise NotImplementedError


def plan_for(trigger: Trigger | None) -> Plan:
    """The job's schedule: its trigger's plan, or (on demand) only times it returns."""
    return ReturnedTimePlan() if trigger is None else trigger.plan()


class IntervalTrigger(Trigger):
    """A fixed period on a grid anchored at the job's start; it never drifts."""

    kind = "every"
    __slots__ = ("period",)

    def __init__(self, period: float) -> None:
        self.period = period

    def plan(self) -> IntervalPlan:
        return IntervalPlan(self.period)

    def describe(self, zone: tzinfo = UTC) -> str:
        return f"every {format_duration(self.period).replace(' ', '')}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalTrigger) and other.period == self.period

    def __hash__(self) -> int:
        return hash(("every", self.period))

    def __repr__(self) -> str:
        return f"IntervalTrigger({self.period!r})"


class CronTrigger(Trigger):
    """A cron expression evaluated in the job's timezone with the Vixie/Debian rules."""

    kind = "cron"
    __slots__ = ("expression",)

    def __init__(self, expression: CronExpression) -> None:
        self.expression = expression

    def next_after(self, after_ts: float, zone: tzinfo) -> float:
        after = datetime.fromtimestamp(after_ts, UTC)
        return self.expression.next_after(after, zone).timestamp()

    def plan(self) -> CronPlan:
        return CronPlan(self)

    def describe(self, zone: tzinfo = UTC) -> str:
        return self.expression.describe()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronTrigger) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(("cron", self.expression))

    def __repr__(self) -> str:
        return f"CronTrigger({self.expression.text!r})"


class DateTrigger(Trigger):
    """One run at a moment, then the job is finished."""

    kind = "at"
    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def plan(self) -> DatePlan:
        return DatePlan(self.at)

    def describe(self, zone: tzinfo = UTC) -> str:
        return f"once at {datetime.fromtimestamp(self.at, zone):%Y-%m-%d %H:%M}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DateTrigger) and other.at == self.at

    def __hash__(self) -> int:
        return hash(("at", self.at))

    def __repr__(self) -> str:
        return f"DateTrigger({self.describe()!r})"


def to_timestamp(value: object, zone: tzinfo, *, key: str, job_id: str | None = None) -> float:
    """A moment as seconds since the epoch; naive datetimes are read in ``zone``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidJobOption(
                f'cannot read "{value}" as a date and time: use ISO 8601, '
                'such as "2026-12-01T09:00:00+01:00" or "2026-12-01 09:00"',
                key=key,
                job_id=job_id,
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.timestamp()
    raise InvalidJobOption(
        f"expected a date and time, got {type(value).__name__} {value!r}", key=key, job_id=job_id
    )


_period_triggers: dict[str, IntervalTrigger] = {}  # triggers are immutable: share the common ones


def make_trigger(
    *,
    every: object = None,
    cron: object = None,
    at: object = None,
    zone: tzinfo,
    job_id: str | None = None,
) -> Trigger | None:
    """Build the job's one trigger; none means the job only runs on demand."""
    if cron is None and at is None and isinstance(every, str):
        shared = _period_triggers.get(every)
        if shared is not None:
            return shared
    given = [
        name for name, value in (("every", every), ("cron", cron), ("at", at)) if value is not None
    ]
    if len(given) > 1:
        raise InvalidTrigger(
            f"a job takes one trigger, got {' and '.join(given)}: keep one of them",
            key=given[1],
            job_id=job_id,
        )
    if every is not None:
        if isinstance(every, str) and "d" in every.lower():
            raise InvalidTrigger(
                f'"{every}": a period is written in s, m or h, not days, because a day of '
                'wall-clock time is not always 24 hours; use cron (e.g. "0 9 * * *") for '
                'daily runs at a set time, or hours (e.g. "48h")',
                key="every",
                job_id=job_id,
            )
        period = parse_duration(every, key="every", job_id=job_id, units="ms, s, m, h")
        trigger = IntervalTrigger(period.total_seconds())
        if isinstance(every, str) and len(_period_triggers) < 1024:
            _period_triggers[every] = trigger
        return trigger
    if cron is not None:
        try:
            return CronTrigger(CronExpression(cron))  # type: ignore[arg-type]
        except InvalidTrigger as exc:
            raise InvalidTrigger(exc.reason, key="cron", job_id=job_id) from None
    if at is not None:
        return DateTrigger(to_timestamp(at, zone, key="at", job_id=job_id))
    return None
