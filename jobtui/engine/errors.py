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


class RemoteError(JobtuiError):
    """An exception raised in a process-mode run's child that could not be rebuilt in the
    scheduler's process (it does not pickle, or its class cannot be imported here), or the
    child's death. ``type_name`` and ``remote_traceback`` are what the child reported."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str, str]]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class RunNotSucceeded(JobtuiError):
    """Raised by ``Run.result`` for a run that ended without a value or an exception of its own:
    timed out, cancelled, skipped, missed or abandoned; or not finished yet."""

    def __init__(self, run_id: str, outcome: str, reason: str) -> None:
        self.run_id = run_id
        self.outcome = outcome
        self.reason = reason
        super().__init__(f"run {run_id} {outcome}" + (f": {reason}" if reason else ""))
