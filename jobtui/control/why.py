"""`jobtui why JOB`: a job's recent occurrences and its next one, in plain words, from the run
history, the store's notes (sessions, pauses, hook failures) and the job's trigger.

``explain`` is pure: it takes plain data (the records `read_runs` and `read_context` return, the
job's trigger and policies) and gives plain data, so the CLI (reading a state file beside a
running jobtui) and the console's controller (over a live host) say the same thing."""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from ..engine import Job, format_duration
from ..engine.cron import CronExpression
from ..engine.timezones import zone_name
from ..engine.triggers import CronTrigger

RECENT = 20  # occurrences explained
_DISABLED = re.compile(r"^(\d+) consecutive failures; last: (.*)$", re.DOTALL)
_RAN = ("succeeded", "failed", "timed_out", "cancelled")


@dataclass(frozen=True, slots=True)
class WhyLine:
    at: float | None  # the occurrence's time (epoch seconds), None for the job's state
    kind: str  # ran, dst_gap, skipped, missed, down, abandoned, paused, disabled, hook_failed
    text: str


@dataclass(frozen=True, slots=True)
class Why:
    job_id: str
    state: str  # "scheduled", "paused", "disabled", "finished", "unknown"
    lines: tuple[WhyLine, ...]  # oldest first
    next_ts: float | None
    next_text: str  # "next: tomorrow 02:30 CET (in 14h)"

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["next"] = _iso(self.next_ts)
        for line in record["lines"]:
            line["at"] = _iso(line["at"])
        del record["next_ts"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Why:
        """The inverse of to_dict (a socket client's side)."""
        return cls(
            job_id=record["job_id"],
            state=record["state"],
            lines=tuple(
                WhyLine(_ts(line["at"]), line["kind"], line["text"]) for line in record["lines"]
            ),
            next_ts=_ts(record["next"]),
            next_text=record["next_text"],
        )

    def text(self) -> str:
        return "\n".join([*(line.text for line in self.lines), self.next_text])


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What explaining needs of the job itself."""

    job_id: str
    zone: tzinfo
    cron: CronExpression | None
    overlap: str
    catchup: str
    paused: bool
    pause_reason: str
    disabled_reason: str
    finished: bool = False

    @classmethod
    def of(cls, job: Job, *, kept: dict[str, Any] | None = None) -> JobFacts:
        """From a scheduler's job; ``kept`` (the store's row) overrides the pause state for a
        job read beside a running jobtui, whose own scheduler is not this one."""
        trigger = job.trigger
        overlap = job.options.overlap
        limit = f":{overlap.limit}" if overlap.policy.value == "parallel" else ""
        paused, reason, disabled = job.paused, job.pause_reason, job.disabled_reason
        if kept is not None:
            paused, reason = bool(kept["paused"]), kept["pause_reason"]
            disabled = kept["disabled_reason"]
        return cls(
            job_id=job.id,
            zone=job.zone,
            cron=trigger.expression if isinstance(trigger, CronTrigger) else None,
            overlap=f"{overlap.policy.value}{limit}",
            catchup=job.options.catchup.value,
            paused=paused,
            pause_reason=reason,
            disabled_reason=disabled,
            finished=job.finished,
        )


def explain(
    facts: JobFacts,
    runs: list[dict[str, Any]],
    context: dict[str, Any],
    *,
    now: float,
    next_ts: float | None,
) -> Why:
    """``runs`` newest first (as read_runs gives them); ``context`` as read_context gives it."""
    words = _Words(facts.zone, now)
    records = sorted((_plain(r) for r in runs[: RECENT * 4]), key=lambda r: r["scheduled_for"])
    gaps = _downtimes(context.get("sessions", []))
    lines: list[WhyLine] = []
    in_gap: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        gap = _gap_of(record, gaps)
        if gap is not None and record["outcome"] == "missed":
            in_gap.setdefault(gap, []).append(record)
            continue
        lines.append(_explain_one(record, records, facts, words))
    for index, missed in in_gap.items():
        lines.append(_explain_downtime(gaps[index], missed, records, facts, words))
    for note in context.get("events", []):
        if note["kind"] == "hook_failed":
            lines.append(
                WhyLine(note["at"], "hook_failed", f"{words.when(note['at'])}: {note['detail']}")
            )
    lines.sort(key=lambda line: line.at or 0.0)
    lines = lines[-RECENT:]
    state = "finished" if facts.finished else "scheduled"
    events = context.get("events", [])
    if facts.disabled_reason:
        state = "disabled"
        lines.append(WhyLine(None, "disabled", _disabled_text(facts, events, words)))
    elif facts.paused:
        state = "paused"
        since = _latest(events, "paused")
        when = f" since {words.when(since['at'])}" if since else ""
        by = facts.pause_reason or "paused"
        if by == "added paused":  # the engine's word for a job declared paused
            by = "paused = true in jobs.toml"
        lines.append(WhyLine(None, "paused", f"paused{when}: {by}"))
    if state in ("paused", "disabled"):
        next_text = f"next: none while {state} (resume it to run again)"
        next_ts = None
    elif next_ts is None:
        next_text = "next: none (the job has no further occurrence)"
    else:
        next_text = f"next: {words.day_and_time(next_ts)} (in {_coarse(next_ts - now)})"
    return Why(facts.job_id, state, tuple(lines), next_ts, next_text)


# -- one record ---------------------------------------------------------------------------
def _explain_one(
    record: dict[str, Any], records: list[dict[str, Any]], facts: JobFacts, words: _Words
) -> WhyLine:
    ts, outcome = record["scheduled_for"], record["outcome"]
    if outcome in _RAN or outcome is None:
        result = _result(record)
        by_hand = "ran by hand" if record["manual"] else "ran"
        started = record["started_at"] or ts
        shifted = None
        if facts.cron is not None and not record["manual"]:
            shifted = facts.cron.gap_shifted(datetime.fromtimestamp(ts, UTC), facts.zone)
        if shifted is not None:
            text = (
                f"{shifted.strftime('%H:%M %b %d')} did not exist (DST gap): "
                f"{by_hand} at {words.when(started)} ({result})"
            )
            return WhyLine(ts, "dst_gap", text)
        return WhyLine(ts, "ran", f"{by_hand} at {words.when(started)} ({result})")
    if outcome == "abandoned":
        return WhyLine(
            ts,
            "abandoned",
            f"ran at {words.when(record['started_at'] or ts)}, but jobtui stopped while it "
            f"was going (abandoned{_found(record, words)})",
        )
    if outcome == "skipped":
        covering = _covering_run(record, records)
        if covering is not None and "still running" in record["reason"]:
            what = (
                f"the {words.when(covering['scheduled_for'], short=True)} run was still going "
                f"(overlap = {facts.overlap})"
            )
        else:
            what = record["reason"] or "skipped"
        return WhyLine(ts, "skipped", f"skipped at {words.when(ts)}: {what}")
    return WhyLine(ts, "missed", f"missed at {words.when(ts)}: {record['reason'] or 'missed'}")


def _result(record: dict[str, Any]) -> str:
    outcome = record["outcome"] or "still running, or never seen to finish"
    parts = [outcome.replace("_", " ")]
    if record["attempt"] and record["attempt"] > 1:
        parts.append(f"after {record['attempt']} attempts")
    if record["started_at"] is not None and record["finished_at"] is not None:
        parts.append(
            f"in {format_duration(max(0.0, record['finished_at'] - record['started_at']))}"
        )
    text = " ".join(parts)
    if outcome in ("failed", "timed_out") and record.get("error_type"):
        message = (record.get("error_message") or "").strip().splitlines()
        text += f": {record['error_type']}" + (f": {message[0]}" if message else "")
    elif outcome == "cancelled" and record["reason"]:
        text += f": {record['reason']}"
    return text


def _covering_run(record: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    ts = record["scheduled_for"]
    for other in records:
        start, end = other["started_at"], other["finished_at"]
        if other is record or start is None or start > ts:
            continue
        if end is None or end >= ts:
            return other
    return None


def _found(record: dict[str, Any], words: _Words) -> str:
    found = record.get("detected_at")
    return f"; found at {words.when(found)}" if found else ""


# -- downtime -----------------------------------------------------------------------------
def _downtimes(sessions: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(down from, up again) between consecutive sessions."""
    ordered = sorted(sessions, key=lambda s: s["started_at"])
    return [
        (before["last_seen"], after["started_at"])
        for before, after in itertools.pairwise(ordered)
        if after["started_at"] > before["last_seen"]
    ]


def _gap_of(record: dict[str, Any], gaps: list[tuple[float, float]]) -> int | None:
    for index, (down, up) in enumerate(gaps):
        if down <= record["scheduled_for"] <= up:
            return index
    return None


def _explain_downtime(
    gap: tuple[float, float],
    missed: list[dict[str, Any]],
    records: list[dict[str, Any]],
    facts: JobFacts,
    words: _Words,
) -> WhyLine:
    down, up = gap
    count = len(missed)
    what = f"{count} occurrence{'s' if count != 1 else ''}"
    ran = [
        r
        for r in records
        if r["outcome"] != "missed" and not r["manual"] and down <= r["scheduled_for"] <= up
    ]
    reasons = " ".join(r["reason"] for r in missed)
    if ran:
        then = f"ran the latest (catchup = {facts.catchup})"
    elif "misfire_grace" in reasons:
        then = "ran none: they were later than misfire_grace"
    else:
        then = f"ran none (catchup = {facts.catchup})"
    text = (
        f"missed {what} while jobtui was down from {words.when(down)} to {words.when(up)}; {then}"
    )
    return WhyLine(missed[0]["scheduled_for"], "down", text)


# -- state --------------------------------------------------------------------------------
def _disabled_text(facts: JobFacts, events: list[dict[str, Any]], words: _Words) -> str:
    since = _latest(events, "disabled")
    when = f" since {words.when(since['at'])}" if since else ""
    match = _DISABLED.match(facts.disabled_reason)
    if match:
        count, last = match.groups()
        return f"disabled{when} after {count} failures in a row (last: {last})"
    return f"disabled{when}: {facts.disabled_reason}"


def _latest(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((e for e in events if e["kind"] == kind), None)  # newest first


# -- words --------------------------------------------------------------------------------
class _Words:
    def __init__(self, zone: tzinfo, now: float) -> None:
        self.zone = zone
        self.now = now
        self.today = datetime.fromtimestamp(now, zone).date()

    def when(self, ts: float, *, short: bool = False) -> str:
        local = datetime.fromtimestamp(ts, self.zone)
        if short or local.date() == self.today:
            return local.strftime("%H:%M")
        return local.strftime("%H:%M %b %d")

    def day_and_time(self, ts: float) -> str:
        local = datetime.fromtimestamp(ts, self.zone)
        days = (local.date() - self.today).days
        day = (
            "today"
            if days == 0
            else "tomorrow"
            if days == 1
            else local.strftime("%a %b %d")
            if days < 7
            else local.strftime("%b %d %Y")
        )
        return f"{day} {local.strftime('%H:%M')} {local.strftime('%Z') or zone_name(self.zone)}"


def _coarse(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        hours, minutes = divmod(int(seconds // 60), 60)
        return f"{hours}h" + (f"{minutes}m" if minutes and hours < 10 else "")
    return f"{int(seconds // 86400)}d"


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """A history record with its times as epoch seconds (read_runs gives ISO text)."""
    plain = dict(record)
    for key in ("scheduled_for", "started_at", "finished_at", "detected_at"):
        value = plain.get(key)
        if isinstance(value, str):
            plain[key] = datetime.fromisoformat(value).timestamp()
    plain.setdefault("reason", "")
    plain["reason"] = plain["reason"] or ""
    plain.setdefault("attempt", 1)
    plain.setdefault("manual", False)
    return plain


def _ts(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
