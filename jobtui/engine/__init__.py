"""The scheduling engine: pure asyncio, no console imports (a test keeps it so)."""

from .clock import Clock, RealClock, VirtualClock
from .cron import CronExpression
from .durations import format_duration, parse_duration
from .errors import (
    DuplicateJob,
    InvalidJobOption,
    InvalidTrigger,
    JobNotFound,
    JobtuiError,
    RunNotFound,
    SchedulerNotRunning,
)
from .events import (
    ClockJumped,
    Event,
    EventBroker,
    JobAdded,
    JobModified,
    JobRemoved,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
    RunProgress,
    RunRetrying,
    RunStarted,
    SchedulerStarted,
    SchedulerStopped,
)
from .job import Catchup, Job, JobOptions, JobState, Overlap, OverlapPolicy, TargetKind
from .run import LogLine, Outcome, Run, RunError, RunOutput, current_run
from .scheduler import Scheduler
from .triggers import CronTrigger, DateTrigger, IntervalTrigger, Trigger

__all__ = [
    "Catchup",
    "Clock",
    "ClockJumped",
    "CronExpression",
    "CronTrigger",
    "DateTrigger",
    "DuplicateJob",
    "Event",
    "EventBroker",
    "IntervalTrigger",
    "InvalidJobOption",
    "InvalidTrigger",
    "Job",
    "JobAdded",
    "JobModified",
    "JobNotFound",
    "JobOptions",
    "JobRemoved",
    "JobState",
    "JobStateChanged",
    "JobtuiError",
    "LogLine",
    "OccurrenceMissed",
    "OccurrenceSkipped",
    "Outcome",
    "Overlap",
    "OverlapPolicy",
    "RealClock",
    "Run",
    "RunError",
    "RunFinished",
    "RunNotFound",
    "RunOutput",
    "RunProgress",
    "RunRetrying",
    "RunStarted",
    "Scheduler",
    "SchedulerNotRunning",
    "SchedulerStarted",
    "SchedulerStopped",
    "TargetKind",
    "Trigger",
    "VirtualClock",
    "current_run",
    "format_duration",
    "parse_duration",
]
