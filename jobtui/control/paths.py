"""Where the control socket of a state file lives.

One socket per state file (the file the single-owner lock guards), in a private folder:

1. ``$XDG_RUNTIME_DIR/jobtui/<hash>.sock`` when ``$XDG_RUNTIME_DIR`` is set (a per-user tmpfs
   that goes away at logout), ``<hash>`` naming the state file's resolved path;
2. else ``.jobtui-control/<state file name>.sock`` beside the state file (where a systemd
   service, which has no ``$XDG_RUNTIME_DIR``, puts it);
3. when that path is too long for a Unix socket address (108 bytes with its terminating NUL),
   ``/tmp/jobtui-<uid>/<hash>.sock``.

The daemon binds the first candidate it can; a client tries each candidate that exists, so a
`jobtui status` from a login shell (with ``$XDG_RUNTIME_DIR``) finds a daemon started by
systemd (without it). The folders are made with mode 0700 under a 0077 umask, and a folder the
daemon did not make is used only if this user owns it and nobody else may write to it (what tmux
checks), since whoever can replace the socket can impersonate the daemon.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class SocketFolderError(Exception):
    """The socket's folder cannot be made private; the message says which and why."""


def state_key(state_path: Path) -> str:
    """A short, stable name for a state file: the same file gives the same socket."""
    resolved = os.fsencode(Path(state_path).resolve())
    return hashlib.sha256(resolved).hexdigest()[:20]


def candidates(state_path: Path, env: dict[str, str] | None = None) -> list[Path]:
    """The socket paths for this state file, in the order the daemon tries to bind them."""
    env = dict(os.environ) if env is None else env
    state = Path(state_path).resolve()
    key = state_key(state)
    found = []
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute():
        found.append(Path(runtime) / "jobtui" / f"{key}.sock")
    found.append(state.parent / ".jobtui-control" / f"{state.name}.sock")
    found.append(Path("/tmp") / f"jobtui-{os.getuid()}" / f"{key}.sock")
    return [path for path in found if fits(path)]


def fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH


def existing(state_path: Path, env: dict[str, str] | None = None) -> list[Path]:
    """The candidates where a socket file is now (a live daemon's, or a dead one's), in a
    folder a client may trust: owned by this user or root and writable by no one else.
    Whoever could have made the socket there (say, in /tmp before us) could pose as the
    daemon, read what a client asks and answer what it likes."""
    return [
        path for path in candidates(state_path, env) if _is_socket(path) and trusted(path.parent)
    ]


def trusted(folder: Path, me: int | None = None) -> bool:
    """Whether user ``me`` (default: this process's) may trust a socket in ``folder``."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    # Root may reach any user's daemon (a service's, from an admin shell): the folder's owner
    # is then the only one who could have made the socket, and it is their daemon.
    me = os.getuid() if me is None else me
    return (
        stat.S_ISDIR(info.st_mode)
        and (info.st_uid in (me, 0) or me == 0)
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders made inside are this user's only (no bind-then-chmod race)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_private_folder(folder: Path) -> None:
    """Make ``folder`` (mode 0700), or check that an existing one is private to this user.
    Raises SocketFolderError naming the folder and what is wrong with it."""
    with private_umask():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SocketFolderError(f"cannot make {folder}: {exc.strerror}") from None
    try:
        info = folder.lstat()
    except OSError as exc:
        raise SocketFolderError(f"cannot read {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SocketFolderError(f"{folder} is not a folder")
    if info.st_uid != os.getuid():
        raise SocketFolderError(
            f"{folder} belongs to uid {info.st_uid}, not to this user ({os.getuid()})"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SocketFolderError(
            f"{folder} may be written by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            "make it 0700"
        )
