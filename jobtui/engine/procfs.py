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


def pipe_holders(inodes: set[int], exclude: int) -> dict[int, str]:
    """The processes (pid: command name) other than ``exclude`` that have one of these pipes
    open: for a run's output pipes, whoever still writes into them."""
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    holders: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return holders
    for entry in entries:
        if not entry.isdigit() or int(entry) == exclude:
            continue
        if holds_any(int(entry), wanted):
            holders[int(entry)] = command_name(int(entry))
    return holders


def holds_any(pid: int, links: set[str]) -> bool:
    folder = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(folder)
    except OSError:  # gone, or not ours to look at
        return False
    for fd in fds:
        try:
            if os.readlink(f"{folder}/{fd}") in links:
                return True
        except OSError:
            continue
    return False


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as comm:
            return comm.read().decode("utf-8", "replace").strip()
    except OSError:
        return "?"
