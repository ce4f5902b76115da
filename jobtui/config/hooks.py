"""The alert keys of jobs.toml (per job, or in [defaults]): hook commands, a webhook and a
healthchecks.io-style ping URL, checked with the file's line numbers like every other key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..engine import InvalidJobOption
from ..engine.durations import parse_duration

if TYPE_CHECKING:
    from .loader import _Loader
    from .spec import JobSpec

COMMAND_KEYS = ("on_failure", "on_success", "on_missed")
URL_KEYS = ("webhook", "healthcheck")
HOOK_KEYS = frozenset({*COMMAND_KEYS, *URL_KEYS, "webhook_on", "hook_timeout"})
WEBHOOK_EVENTS = ("failure", "success", "missed")
# A chat channel wants to hear of trouble, not of every success; say webhook_on to change it.
DEFAULT_WEBHOOK_ON = frozenset({"failure", "missed"})
DEFAULT_HOOK_TIMEOUT = 30.0
_TOKEN = re.compile(r"(?=.*\d)[A-Za-z0-9_-]{8,}|[0-9a-f-]{16,}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JobHooks:
    """What to call when a job's occurrence ends; a command is text (a shell line) or a list."""

    on_failure: str | tuple[str, ...] | None = None
    on_success: str | tuple[str, ...] | None = None
    on_missed: str | tuple[str, ...] | None = None
    webhook: str | None = None
    webhook_on: frozenset[str] = DEFAULT_WEBHOOK_ON
    healthcheck: str | None = None
    timeout: float = DEFAULT_HOOK_TIMEOUT

    def command(self, event: str) -> str | tuple[str, ...] | None:
        """The hook command for "failure", "success" or "missed"."""
        value: str | tuple[str, ...] | None = getattr(self, f"on_{event}")
        return value

    @property
    def empty(self) -> bool:
        return not any((self.on_failure, self.on_success, self.on_missed)) and not (
            self.webhook or self.healthcheck
        )


def mask_url(url: str) -> str:
    """The URL as logs and the console show it: a password, query values and path parts that
    look like tokens (a healthchecks UUID, a Slack webhook's secret) become ***."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "***"
    host = parts.hostname or ""
    if parts.username is not None:
        host = f"{parts.username}{':***' if parts.password is not None else ''}@{host}"
    if port is not None:
        host += f":{port}"
    path = "/".join("***" if _TOKEN.fullmatch(p) else p for p in parts.path.split("/"))
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, host, path, query.replace("%2A", "*"), ""))


def hook_problem(key: str, value: object) -> str | None:
    """What is wrong with one alert key's value, or None if it can be used."""
    if key in COMMAND_KEYS:
        if isinstance(value, str) and value.strip():
            return None
        if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
            return None
        return 'expected a shell command as text, or a list such as ["notify-send", "failed"]'
    if key in URL_KEYS:
        if not isinstance(value, str):
            return f"expected an http:// or https:// URL as text, got {value!r}"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (a bad port raises here)
        except ValueError as exc:
            return f"cannot read the URL {mask_url(value)!r}: {exc}"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"expected an http:// or https:// URL with a host, got {mask_url(value)!r}"
        return None
    if key == "webhook_on":
        accepted = ", ".join(f'"{name}"' for name in WEBHOOK_EVENTS)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f'expected a list of events, such as ["failure", "missed"]; accepted: {accepted}'
        unknown = [v for v in value if v not in WEBHOOK_EVENTS]
        if unknown:
            return f"unknown event {unknown[0]!r}; accepted: {accepted}"
        return None
    if key == "hook_timeout":
        try:
            parse_duration(value, key=key)
        except InvalidJobOption as exc:
            return exc.reason
        return None
    raise AssertionError(f"not an alert key: {key}")


def make_hooks(values: Mapping[str, Any]) -> JobHooks:
    """JobHooks from checked values (a job's keys over [defaults]')."""

    def command(key: str) -> str | tuple[str, ...] | None:
        value = values.get(key)
        return tuple(value) if isinstance(value, list) else value

    timeout = values.get("hook_timeout")
    return JobHooks(
        on_failure=command("on_failure"),
        on_success=command("on_success"),
        on_missed=command("on_missed"),
        webhook=values.get("webhook"),
        webhook_on=frozenset(values.get("webhook_on", DEFAULT_WEBHOOK_ON)),
        healthcheck=values.get("healthcheck"),
        timeout=(
            DEFAULT_HOOK_TIMEOUT
            if timeout is None
            else parse_duration(timeout, key="hook_timeout").total_seconds()
        ),
    )


def attach_hooks(
    loader: _Loader,
    defaults: dict[str, Any],
    jobs_table: dict[str, Any],
    specs: dict[str, JobSpec],
) -> None:
    """Check every alert key (those of [defaults] once) and give each job its hooks."""
    good_defaults = {}
    for key in HOOK_KEYS & defaults.keys():
        reason = hook_problem(key, defaults[key])
        if reason is None:
            good_defaults[key] = defaults[key]
        else:
            loader.problem(reason, table=("defaults",), key=key)
    for job_id, table in jobs_table.items():
        if not isinstance(table, dict):
            continue
        values = dict(good_defaults)
        for key in HOOK_KEYS & table.keys():
            reason = hook_problem(key, table[key])
            if reason is None:
                values[key] = table[key]
            else:
                loader.problem(reason, table=("jobs", job_id), key=key, job=job_id)
        if "webhook_on" in table and "webhook" not in values:
            loader.problem(
                'has no effect without webhook = "https://..."',
                table=("jobs", job_id), key="webhook_on", job=job_id, warning=True,
            )  # fmt: skip
        spec = specs.get(job_id)
        if spec is not None and values:
            spec.hooks = make_hooks(values)
