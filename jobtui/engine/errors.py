"""Typed errors the engine raises; each message says what to do about it."""

from __future__ import annotations


class JobtuiError(Exception):
    """Base class of every error jobtui raises on purpose."""


class InvalidJobOption(JobtuiError, ValueError):
    """A job option has a value the engine cannot use.

    ``key`` names the option and ``job_id`` the job (when known), so that the config layer can
    point at the exact line of jobs.toml.
    """

    def __init__(self, message: str, *, key: str | None = None, job_id: str | None = None) -> None:
        self.key = key
        self.job_id = job_id
        self.reason = message
        prefix = []
        if job_id is not None:
            prefix.append(f'job "{job_id}"')
        if key is not None:
            prefix.append(f'key "{key}"')
        super().__init__(f"{', '.join(prefix)}: {message}" if prefix else message)


class InvalidTrigger(InvalidJobOption):
    """A trigger (every / cron / at) cannot be parsed or can never fire."""


class JobNotFound(JobtuiError, LookupError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f'no job with id "{job_id}"')


class DuplicateJob(JobtuiError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f'a job with id "{job_id}" already exists: '
            "remove it first, or use modify() to change it"
        )


class RunNotFound(JobtuiError, LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no running run for {what}")


class SchedulerNotRunning(JobtuiError, RuntimeError):
    def __init__(self, action: str) -> None:
        super().__init__(
            f"cannot {action} before the scheduler has started: use `async with scheduler:` "
            "or `await scheduler.start()` first"
        )
