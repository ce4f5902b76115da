"""Opening the control socket: a private folder, a stale socket from a dead daemon replaced,
a live one never touched (supervisord's "checkused"), and no bind-then-chmod window."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .paths import SocketFolderError, candidates, make_private_folder, private_umask


class ControlSocketError(Exception):
    """No socket could be opened; the message says where it was tried and why."""


def _answers(path: Path) -> bool:
    """Whether something listens on ``path`` (a stale socket of a dead daemon refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # busy or not ours: never remove what we cannot prove dead
    finally:
        probe.close()
    return True


def bind(state_path: Path, env: dict[str, str] | None) -> tuple[socket.socket, Path]:
    problems: list[str] = []
    for path in candidates(state_path, env):
        try:
            make_private_folder(path.parent)
        except SocketFolderError as exc:
            problems.append(str(exc))
            continue
        if os.path.lexists(path):
            if _answers(path):
                raise ControlSocketError(f"another jobtui answers on {path} (it owns {state_path})")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a dead daemon's: nothing listens on it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with private_umask():  # the socket is made 0700: no bind-then-chmod window
                sock.bind(str(path))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            problems.append(f"cannot listen on {path}: {exc.strerror or exc}")
            continue
        for other in candidates(state_path, env):  # dead daemons' sockets elsewhere
            if other != path and os.path.lexists(other) and not _answers(other):
                with contextlib.suppress(OSError):
                    os.unlink(other)
        return sock, path
    if not problems:
        problems.append(f"every socket path for {state_path} is over 107 bytes")
    raise ControlSocketError("no control socket: " + "; ".join(problems))
