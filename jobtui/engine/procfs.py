"""Reading Linux's /proc: which processes exist and when each started."""

from __future__ import annotations

import os


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and
    parentheses, hence the split at the last ")"): [0] state, [2] process group, [19] start
    time in clock ticks since boot. None if there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """The process's start time: with the pid, it names one process (a pid alone may have
    been reused by the time we look again)."""
    fields = stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def group_has_live_member(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc to look in: trust kill(0)
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False
