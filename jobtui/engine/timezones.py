"""Turning timezone names into zones, with errors that suggest the name the user meant."""

from __future__ import annotations

import difflib
from datetime import UTC, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import InvalidJobOption


def local_zone() -> tzinfo:
    """The machine's IANA zone: a fixed offset would get every DST transition wrong."""
    try:
        import tzlocal

        return tzlocal.get_localzone()
    except Exception:  # an unreadable /etc/localtime must not stop the scheduler
        return UTC


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    return ZoneInfo(name)


def resolve_timezone(value: object, *, key: str = "timezone", job_id: str | None = None) -> tzinfo:
    """Accept a tzinfo or an IANA name ("Europe/Berlin", "UTC"); "local" means the machine's."""
    if isinstance(value, tzinfo):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidJobOption(
            f'expected an IANA timezone name such as "Europe/Berlin" or "UTC", got {value!r}',
            key=key,
            job_id=job_id,
        )
    name = value.strip()
    if name.lower() == "local":
        return local_zone()
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    hint = difflib.get_close_matches(name, sorted(available_timezones()), n=1, cutoff=0.6)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
    raise InvalidJobOption(
        f'unknown timezone "{name}"{suggestion}: use an IANA name such as "Europe/Berlin", '
        '"America/New_York" or "UTC", or "local" for the machine\'s zone',
        key=key,
        job_id=job_id,
    )


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)
