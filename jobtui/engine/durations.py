"""Durations as users write them: "90s", "15m", "1h30m", "2d", integers of seconds, timedeltas."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from .errors import InvalidJobOption

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_MAX_SECONDS = 10 * 366 * 86400
_cache: dict[tuple[str, str], timedelta] = {}


def parse_duration(
    value: object,
    *,
    key: str,
    job_id: str | None = None,
    units: str = "ms, s, m, h, d",
    allow_zero: bool = False,
) -> timedelta:
    """Read a duration; raise `InvalidJobOption` naming ``key`` if it cannot be used.

    ``units`` is the comma-separated list of units accepted here (trigger periods refuse days
    because a day of wall-clock time is not always 24 hours).
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise InvalidJobOption(
            f'expected a duration such as "90s" or "1h30m", got {value!r}', key=key, job_id=job_id
        )
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > _MAX_SECONDS:
            raise InvalidJobOption(
                f"{value!r} seconds is not a usable duration "
                f"(at most {_MAX_SECONDS // 86400} days)",
                key=key,
                job_id=job_id,
            )
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        result = _parse_text(value, key=key, job_id=job_id, units=units)
    else:
        raise InvalidJobOption(
            f'expected a duration such as "90s" or "1h30m", got {type(value).__name__} {value!r}',
            key=key,
            job_id=job_id,
        )
    if result < timedelta(0) or (result == timedelta(0) and not allow_zero):
        raise InvalidJobOption(
            f"{_show(value)} is not a usable duration: it must be greater than zero",
            key=key,
            job_id=job_id,
        )
    return result


def _parse_text(text: str, *, key: str, job_id: str | None, units: str) -> timedelta:
    cache_key = (text, units)
    cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    allowed = {u.strip() for u in units.split(",")}
    compact = text.strip().replace(" ", "").lower()
    pos = 0
    total = 0.0
    seen: set[str] = set()
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        number, unit = match.groups()
        if unit not in allowed or unit in seen:
            break
        seen.add(unit)
        total += float(number) * _UNIT_SECONDS[unit]
        pos = match.end()
    if not compact or pos != len(compact):
        raise InvalidJobOption(
            f'cannot read "{text}" as a duration: write a number followed by one of {units} '
            f'(for example "90s", "15m", "1h30m")',
            key=key,
            job_id=job_id,
        )
    if total > _MAX_SECONDS:
        raise InvalidJobOption(
            f'"{text}" is too long a duration (at most {_MAX_SECONDS // 86400} days)',
            key=key,
            job_id=job_id,
        )
    result = timedelta(seconds=total)
    if len(_cache) < 4096:
        _cache[cache_key] = result
    return result


def format_duration(seconds: float) -> str:
    """Short human form: 0.4s, 42s, 4m 12s, 3h 5m, 2d 4h."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    total = round(seconds)
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
