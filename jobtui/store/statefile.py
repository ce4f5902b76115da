"""What is at the state path, before SQLite opens it. SQLite would block forever opening a named
pipe, call a folder a "disk I/O error", and create the database with the umask's mode (0644 at
umask 022): run output can hold secrets, so jobtui creates the database 0600 itself (SQLite gives
its -wal, -shm and -journal files the database file's mode)."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFDIR: "a folder",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class UnusableStatePath(Exception):
    """The state path names something that is not a database file, or a database jobtui cannot
    read or create; the message says what it is and what to do."""


def check_kind(db: Path) -> bool:
    """True when a regular file is at ``db``, False when nothing is; raises UnusableStatePath
    for anything else (without opening it: opening a named pipe waits for a writer)."""
    try:
        mode = os.stat(db).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UnusableStatePath(f"cannot look at the state database {db}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return True
    kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise UnusableStatePath(
        f"the state path {db} is {kind}, not a jobtui database: set [scheduler] state in "
        "jobs.toml to a file path (jobtui creates the database there)"
    )


def create_private(db: Path) -> None:
    """Make the database's folder (0700) and the empty database file (0600) if they are
    missing, whatever the umask."""
    if check_kind(db):
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError):
        blocking = next(p for p in db.parents if p.exists())
        raise UnusableStatePath(
            f"cannot create the state database {db}: {blocking} is a file, not a folder; set "
            "[scheduler] state in jobs.toml to a path in a folder"
        ) from None
    except OSError as exc:
        raise UnusableStatePath(
            f"cannot create the folder {db.parent} for the state database: {exc.strerror}"
        ) from None
    try:
        fd = os.open(db, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UnusableStatePath(f"cannot create the state database {db}: {exc.strerror}") from None
    os.close(fd)


class LockHeld(Exception):
    """Another process holds the state's lock; ``owner`` is the pid it wrote there."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


def lock_path(db: Path) -> Path:
    """The lock file beside the state at ``db``: taking it and looking whether it is still the
    one held must name the same file."""
    return db.with_name(db.name + ".lock")


def take_lock(db: Path) -> int:
    """Lock the state at ``db`` for this process (the lock file beside it, never through a
    symlink, with this pid in it); the descriptor holds the lock. Raises LockHeld."""
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LockHeld(owner) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
