"""An occurrence's end as hooks see it: plain values taken from the run when it ended (the Run
object goes on changing and belongs to the loop), and how each kind of hook is told of it."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ..engine import Outcome, Run, format_duration

TAIL_BYTES = 100_000  # healthchecks.io keeps the first 100 kB of a ping's body

# Which hook an outcome calls. A cancelled run calls none: a person or the overlap policy
# stopped it, which is not the job failing (its healthcheck still hears /fail, below).
EVENT_OF = {
    Outcome.SUCCEEDED: "success",
    Outcome.FAILED: "failure",
    Outcome.TIMED_OUT: "failure",
    Outcome.SKIPPED: "missed",
    Outcome.MISSED: "missed",
    Outcome.ABANDONED: "missed",
}


@dataclass(frozen=True, slots=True)
class Occurrence:
    job_id: str
    run_id: str
    outcome: str  # an Outcome's value, or "started"
    scheduled_for: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    error: str  # "Type: first line", or empty
    reason: str  # why it was skipped, missed, cancelled or abandoned
    attempt: int
    manual: bool
    output_tail: str

    @classmethod
    def of_run(cls, run: Run, *, started: bool = False) -> Occurrence:
        tail = ""
        if run.has_output and not started:
            tail = run.output.text().encode()[-TAIL_BYTES:].decode(errors="ignore")
        return cls(
            job_id=run.job_id,
            run_id=run.run_id,
            outcome="started" if started else (run.outcome.value if run.outcome else ""),
            scheduled_for=run.scheduled_ts,
            started_at=run.started_ts,
            finished_at=None if started else run.finished_ts,
            exit_code=run.exit_code,
            error=run.error.first_line if run.error is not None else "",
            reason=run.reason,
            attempt=run.attempt,
            manual=run.manual,
            output_tail=tail,
        )

    @classmethod
    def abandoned(cls, found: dict[str, Any], detected_at: float) -> Occurrence:
        """A run left unfinished: by the last jobtui (found at start-up), or by another host
        sharing the state that died (found by this one)."""
        return cls(
            job_id=found["job_id"],
            run_id=found["run_id"],
            outcome=Outcome.ABANDONED.value,
            scheduled_for=found["scheduled_for"],
            started_at=found["started_at"],
            finished_at=detected_at,
            exit_code=None,
            error="",
            reason=found.get("reason")
            or "jobtui stopped while this run was going; found at start-up",
            attempt=1,
            manual=False,
            output_tail="",
        )

    @property
    def event(self) -> str | None:
        """ "success", "failure", "missed", or None (started, cancelled)."""
        try:
            return EVENT_OF.get(Outcome(self.outcome))
        except ValueError:
            return None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    def summary(self) -> str:
        """One line a person reads in a chat channel."""
        when = _iso(self.scheduled_for)
        if self.outcome == Outcome.SUCCEEDED:
            took = f" in {format_duration(self.duration)}" if self.duration is not None else ""
            return f"jobtui: {self.job_id} succeeded{took} (scheduled for {when})"
        if self.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            what = "timed out" if self.outcome == Outcome.TIMED_OUT else "failed"
            detail = self.error or (f"exit code {self.exit_code}" if self.exit_code else "")
            tries = f" after {self.attempt} attempts" if self.attempt > 1 else ""
            return f"jobtui: {self.job_id} {what}{tries} (scheduled for {when})" + (
                f": {detail}" if detail else ""
            )
        return f"jobtui: {self.job_id} {self.outcome} the occurrence of {when}" + (
            f": {self.reason}" if self.reason else ""
        )

    def environment(self) -> dict[str, str]:
        """What a hook command finds in its environment (besides JOBTUI_OUTPUT_FILE)."""
        return {
            "JOBTUI_JOB": self.job_id,
            "JOBTUI_RUN_ID": self.run_id,
            "JOBTUI_OUTCOME": self.outcome,
            "JOBTUI_EXIT_CODE": "" if self.exit_code is None else str(self.exit_code),
            "JOBTUI_ERROR": self.error,
            "JOBTUI_SCHEDULED_FOR": _iso(self.scheduled_for),
        }

    def webhook_body(self) -> bytes:
        """JSON with the run, and ``text`` that Slack and Mattermost show as it is."""
        record = asdict(self)
        for key in ("scheduled_for", "started_at", "finished_at"):
            record[key] = None if record[key] is None else _iso(record[key])
        record["duration"] = self.duration
        record["event"] = self.event
        record["host"] = socket.gethostname()
        return json.dumps({"text": self.summary(), **record}).encode()

    def healthcheck_suffix(self) -> str | None:
        """The healthchecks.io ping for this: "/start", "" (success), "/fail", "/<exit code>",
        or None when there is nothing to say (a missed occurrence: the silence is the alert)."""
        if self.outcome == "started":
            return "/start"
        if self.outcome == Outcome.SUCCEEDED:
            return ""
        if self.outcome in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CANCELLED):
            if self.exit_code is not None and 0 < self.exit_code < 256:
                return f"/{self.exit_code}"
            return "/fail"
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
