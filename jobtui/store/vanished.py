"""A state database deleted or replaced under a running jobtui. SQLite goes on writing into the
file it has open, deleted or not, so everything after the deletion would be lost without a word.
The backend compares the file at its path with the one it has open, and when they differ it
writes what it has (the open copy: all the history, and the jobs' state) to a new file at the
path, under the same lock."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from .statefile import LockHeld, lock_path, take_lock
from .writes import Disowned

Identity = tuple[int, int]  # (st_dev, st_ino)


def identity(path: Path) -> Identity | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def fd_identity(fd: int) -> Identity:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def relock(db: Path, lock_fd: int) -> int:
    """The lock file this process holds, or a new one if it went too (rm -r of the folder).
    Raises Disowned if another process holds the one now at the path."""
    if identity(lock_path(db)) == fd_identity(lock_fd):
        return lock_fd
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = take_lock(db)
    except LockHeld as held:
        raise Disowned(
            f"the state database {db} was deleted while jobtui ran, and another jobtui "
            f"(pid {held.owner}) owns it now: this jobtui records nothing more and starts no "
            "scheduled run; stop it"
        ) from None
    os.close(lock_fd)
    return fd


def write_copy(conn: sqlite3.Connection, db: Path) -> Path | None:
    """Put what ``conn`` has open at ``db`` again. A different file found at the path (someone
    put one there) is moved aside first, not overwritten; its new name is returned."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rebuilt = db.with_name(db.name + ".rebuilding")
    rebuilt.unlink(missing_ok=True)
    # Made 0600 before a byte of history is in it (run output can hold secrets), and made new:
    # a symlink someone put there meanwhile is refused, not written through.
    os.close(os.open(rebuilt, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    copy = sqlite3.connect(rebuilt)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    moved = None
    if db.exists():
        moved = db.with_name(f"{db.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(db, moved)
    # What is left of the old file's write-ahead log at the path belongs to the old file:
    # SQLite would apply it to the new one.
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            db.with_name(db.name + suffix).unlink()
    os.replace(rebuilt, db)
    return moved
