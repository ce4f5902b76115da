"""A small blocking client of the control socket, for the `jobtui status`/`run`/`pause`/...
verbs: connect, ask, read the pushed messages a verb waits for. (The console uses an asyncio
client of the same protocol.)"""

from __future__ import annotations

import itertools
import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from . import protocol as p
from .paths import existing


class NoDaemon(Exception):
    """Nothing answers for this state file."""


class RemoteError(Exception):
    """The daemon answered with an error (``code`` as in protocol.py)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Disconnected(Exception):
    """The daemon closed the connection (it stopped, or dropped this client)."""


class SyncClient:
    def __init__(self, sock: socket.socket, hello: p.Hello, path: Path) -> None:
        self.sock = sock
        self.hello = hello
        self.path = path
        self._file = sock.makefile("rb")
        self._ids = itertools.count(1)
        self._pending: deque[p.ServerMessage] = deque()  # pushed while waiting for a reply

    @classmethod
    def connect(
        cls, state_path: Path, *, timeout: float = 10.0, env: dict[str, str] | None = None
    ) -> SyncClient:
        """Connect to the daemon that owns ``state_path``. Raises NoDaemon, RemoteError
        (``refused``: another user's daemon) or Disconnected."""
        tried = existing(state_path, env)
        for path in tried:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                sock.close()  # a dead daemon's socket: try the next place
                continue
            except OSError as exc:
                sock.close()
                raise NoDaemon(f"cannot connect to {path}: {exc.strerror or exc}") from None
            try:
                first = cls._read_from(sock.makefile("rb"))
            except BaseException:
                sock.close()
                raise
            if isinstance(first, p.Reply) and first.error is not None:
                sock.close()
                raise RemoteError(first.error.code, first.error.message)
            if not isinstance(first, p.Hello):
                sock.close()
                raise Disconnected(f"{path} did not greet like a jobtui daemon")
            if first.protocol != p.PROTOCOL_VERSION:
                sock.close()
                raise RemoteError(
                    "version",
                    f"the daemon speaks protocol {first.protocol}, this jobtui "
                    f"{p.PROTOCOL_VERSION}: use the jobtui that started it ({first.version})",
                )
            return cls(sock, first, path)
        raise NoDaemon(f"no jobtui runs {state_path}")

    @staticmethod
    def _read_from(file: Any) -> p.ServerMessage:
        line = file.readline(p.MAX_SERVER_LINE)
        if not line:
            raise Disconnected("the daemon closed the connection")
        try:
            return p.decode_server_message(line)
        except msgspec.DecodeError as exc:
            raise Disconnected(f"the daemon sent something unreadable: {exc}") from None

    def read(self, timeout: float | None = None) -> p.ServerMessage:
        """The next pushed message (events, log lines); blocks up to ``timeout``."""
        if self._pending:
            return self._pending.popleft()
        self.sock.settimeout(timeout)
        try:
            return self._read_from(self._file)
        except ConnectionError as exc:
            raise Disconnected(str(exc)) from None

    def messages(self) -> Iterator[p.ServerMessage]:
        while True:
            yield self.read(None)

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> Any:
        """Ask and wait for the reply; the result decoded by the method's type. Raises
        RemoteError or Disconnected."""
        request_id = next(self._ids)
        line = p.encode(p.Request(id=request_id, method=method, params=params))
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(line)
            while True:
                message = self._read_from(self._file)
                if isinstance(message, p.Reply) and message.id == request_id:
                    break
                if isinstance(message, p.Reply) and message.error is not None:
                    raise RemoteError(message.error.code, message.error.message)
                self._pending.append(message)
        except (ConnectionError, BrokenPipeError) as exc:
            raise Disconnected(str(exc)) from None
        if message.error is not None:
            raise RemoteError(message.error.code, message.error.message)
        return p.decode_result(method, message.result)

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
