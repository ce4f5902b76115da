"""The control socket's server: lets consoles and the `jobtui status`/`run`/... verbs watch and
steer a running scheduler (a headless daemon, or a console hosting one), speaking protocol.py.

It never slows the scheduler down for a client. Changed views are gathered on a steady flush
(every ``FLUSH_INTERVAL``), encoded once and written to every watching client; a client whose
unsent bytes pass a bound gets no more events but, once it caught up, a fresh snapshot; one
that stays behind for ``stall_timeout`` seconds is dropped. Requests of one client are handled
one at a time, and the next is read only after the reply was handed to the kernel, so a client
that sends without reading fills its own socket, not the daemon's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..engine import JobNotFound, Run, RunNotFound, SchedulerNotRunning
from . import protocol as p
from .broadcast import Broadcast
from .controller import JobView, LocalController, Summary
from .listen import bind

BEHIND_BYTES = 4 * 1024 * 1024  # unsent bytes after which a client gets a snapshot instead
LOG_CHUNK = 2000  # lines per log event
REFUSAL_DRAIN = 1.0  # seconds a refused client gets to read the refusal before the close

_logger = logging.getLogger("jobtui.control")
Log = Callable[..., None]  # log(event="...", **fields), as the headless EventLog writes


def _default_log(*, event: str, **fields: object) -> None:
    _logger.info("%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))


@dataclass(slots=True)
class _Follow:
    job_id: str
    run: Run
    position: int


@dataclass(eq=False, slots=True)
class _Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int
    uid: int
    watching: bool = False
    needs_snapshot: bool = False
    behind_since: float | None = None
    follows: dict[str, _Follow] = field(default_factory=dict)

    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class ControlServer:
    """Serves one scheduler (through its LocalController) on the state file's socket."""

    def __init__(
        self,
        controller: LocalController,
        *,
        host_kind: str = "headless",
        log: Log | None = None,
        env: dict[str, str] | None = None,
        flush_interval: float = p.FLUSH_INTERVAL,
        stall_timeout: float = p.STALL_TIMEOUT,
        behind_bytes: int = BEHIND_BYTES,
    ) -> None:
        self.controller = controller
        self.scheduler = controller.host.scheduler
        self.host_kind = host_kind
        self.log: Log = log or _default_log
        self.env = env
        self.flush_interval = flush_interval
        self.stall_timeout = stall_timeout
        self.behind_bytes = behind_bytes
        self.started_at = time.time()
        self.path: Path | None = None
        self._inode: int | None = None
        self._server: asyncio.Server | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._clients: set[_Client] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._broadcast: Broadcast | None = None

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> Path:
        """Bind the socket (replacing a dead daemon's) and start serving; returns its path.
        Raises ControlSocketError."""
        state_path = self.controller.host.config.state_path
        sock, path = bind(state_path, self.env)
        self.path = path
        self._inode = os.stat(path).st_ino
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=p.MAX_REQUEST_LINE
        )
        self._broadcast = Broadcast(self.controller)
        self._flusher = asyncio.create_task(self._flush_loop(), name="control-flush")
        self.log(event="control_listening", path=str(path))
        return path

    async def close(self) -> None:
        """Stop accepting, disconnect every client and remove the socket (if it is still
        ours: a successor may already have replaced it)."""
        if self._broadcast is not None:
            self._broadcast.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.writer.transport.abort()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            self.path = None

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- connections ----------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        client: _Client | None = None
        try:
            pid, uid = _peer(writer)
            if uid not in (os.getuid(), 0):
                self.log(event="control_refused", uid=uid, pid=pid)
                message = (
                    f"refused: this jobtui runs as uid {os.getuid()}; uid {uid} may not control it"
                )
                await _close_after(reader, writer, p.error_reply(None, "refused", message))
                return
            writer.transport.set_write_buffer_limits(high=256 * 1024)
            client = _Client(reader, writer, pid, uid)
            self._clients.add(client)
            client.send(p.encode(self._hello()))
            if await self._read_requests(client):
                # The client is done sending (it may have only shut down its side, as
                # `socat` does): what is still buffered for it goes out before the close.
                writer.close()
                with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                    await asyncio.wait_for(writer.wait_closed(), self.stall_timeout)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            if client is not None:
                self._clients.discard(client)
            writer.transport.abort()  # a no-op after a clean close; else frees the fd at once
            if task is not None:
                self._connections.discard(task)

    async def _read_requests(self, client: _Client) -> bool:
        """Answer the client's requests until it closes (True) or is dropped (False)."""
        reader = client.reader
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return True  # closed, possibly in the middle of a line: nothing to answer
            except asyncio.LimitOverrunError:
                limit = p.MAX_REQUEST_LINE
                message = f"a request line is at most {limit} bytes; closing"
                self.log(event="control_dropped", pid=client.pid, reason="line too long")
                await _close_after(
                    reader, client.writer, p.error_reply(None, "line_too_long", message)
                )
                return False
            if line.strip():
                client.send(await self._answer(client, line))
            try:
                await asyncio.wait_for(client.writer.drain(), self.stall_timeout)
            except TimeoutError:
                self.log(event="control_dropped", pid=client.pid, reason="not reading")
                return False

    async def _answer(self, client: _Client, line: bytes) -> bytes:
        request_id: int | str | None = None
        try:
            request = p.decode_request(line)
            request_id = request.id
            params = p.decode_params(request)
            handler = getattr(self, f"_do_{request.method}")
            result = handler(client, params)
            if asyncio.iscoroutine(result):
                result = await result
            return p.reply(request_id, result)
        except p.ProtocolError as exc:
            answer_id = exc.request_id if exc.request_id is not None else request_id
            return p.error_reply(answer_id, exc.code, exc.message)
        except JobNotFound as exc:
            return p.error_reply(request_id, "unknown_job", str(exc))
        except RunNotFound as exc:
            return p.error_reply(request_id, "unknown_run", str(exc))
        except SchedulerNotRunning as exc:
            return p.error_reply(request_id, "not_running", str(exc))
        except OSError as exc:
            return p.error_reply(request_id, "failed", str(exc))
        except Exception as exc:  # a bug must cost one reply, never the daemon
            _logger.exception("control request failed")
            return p.error_reply(request_id, "failed", f"{type(exc).__name__}: {exc}")

    def _hello(self) -> p.Hello:
        return p.Hello(
            protocol=p.PROTOCOL_VERSION,
            pid=os.getpid(),
            started_at=self.started_at,
            config_path=str(self.controller.config_path.resolve()),
            state_path=self.controller.host.config.state_shown,
            version=__version__,
            host=self.host_kind,
        )

    # -- methods --------------------------------------------------------------------------
    def _job_id(self, job_id: str) -> str:
        if job_id not in self.scheduler:
            raise JobNotFound(job_id)
        return job_id

    def _run(self, job_id: str, run_id: str) -> Run:
        job = self.scheduler.get(self._job_id(job_id))
        for run in (*job.active, job.last_run):
            if run is not None and run.run_id == run_id:
                return run
        raise RunNotFound(f'"{run_id}" is neither running nor the last run of "{job_id}"')

    def _do_watch(self, client: _Client, params: p.NoParams) -> None:
        if not client.watching:
            # The snapshot follows this reply on the next flush, which first brings what
            # every watcher was told up to date, so the snapshot and the events fit together.
            client.needs_snapshot = True
            client.watching = True

    def _do_jobs(self, client: _Client, params: p.NoParams) -> list[JobView]:
        return self.controller.jobs()

    def _do_job(self, client: _Client, params: p.JobParams) -> JobView | None:
        return self.controller.job(self._job_id(params.job_id))

    def _do_next_times(self, client: _Client, params: p.NextTimesParams) -> list[Any]:
        _check_range("n", params.n, p.MAX_NEXT_TIMES)
        return self.controller.next_times(self._job_id(params.job_id), params.n)

    async def _do_history(self, client: _Client, params: p.HistoryParams) -> list[Any]:
        _check_range("limit", params.limit, p.MAX_HISTORY)
        # No job check: a job gone from jobs.toml keeps its past runs in the store.
        return await asyncio.to_thread(self.controller.history, params.job_id, params.limit)

    def _do_log(self, client: _Client, params: p.LogParams) -> tuple[list[str], int]:
        _check_range("limit", params.limit, p.MAX_LOG_LINES)
        run = self._run(params.job_id, params.run_id)
        if not run.has_output:
            return [], max(params.start, 0)
        lines, position = run.output.since(params.start, params.limit)
        return [line.text for line in lines], position

    def _do_summary(self, client: _Client, params: p.NoParams) -> Summary:
        return self.controller.summary()

    def _do_config_line(self, client: _Client, params: p.JobParams) -> int | None:
        return self.controller.config_line(self._job_id(params.job_id))

    async def _do_why(self, client: _Client, params: p.JobParams) -> dict[str, Any] | None:
        job_id = self._job_id(params.job_id)
        why = await asyncio.to_thread(self.controller.why, job_id)  # reads history
        return None if why is None else why.to_dict()

    def _do_run_now(self, client: _Client, params: p.RunNowParams) -> str:
        run = self.scheduler.run_now(self._job_id(params.job_id), wait=False)  # as the console's
        self._touched()
        if params.follow:  # before any line could be missed, and without a race on the id
            client.follows[run.run_id] = _Follow(run.job_id, run, 0)
        return run.run_id

    def _touched(self) -> None:
        if self._broadcast is not None:
            self._broadcast.touched()

    def _do_pause(self, client: _Client, params: p.JobParams) -> None:
        self.controller.pause(self._job_id(params.job_id))
        self._touched()

    def _do_resume(self, client: _Client, params: p.JobParams) -> None:
        self.controller.resume(self._job_id(params.job_id))
        self._touched()

    def _do_cancel(self, client: _Client, params: p.JobParams) -> None:
        job_id = self._job_id(params.job_id)
        try:
            self.controller.cancel(job_id)
            self._touched()
        except RunNotFound:
            message = f'"{job_id}" has no running run to cancel'
            raise p.ProtocolError("unknown_run", message) from None

    def _do_remove(self, client: _Client, params: p.JobParams) -> None:
        self.controller.remove(self._job_id(params.job_id))
        self._touched()

    async def _do_reload(self, client: _Client, params: p.NoParams) -> bool:
        ok = await self.controller.reload()
        self._touched()
        return ok

    def _do_follow(self, client: _Client, params: p.FollowParams) -> None:
        run = self._run(params.job_id, params.run_id)
        client.follows[run.run_id] = _Follow(run.job_id, run, max(params.start, 0))

    def _do_unfollow(self, client: _Client, params: p.UnfollowParams) -> None:
        client.follows.pop(params.run_id, None)

    # -- pushing changes ------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self._flush()
            except Exception:  # one bad flush must not end the pushes for good
                _logger.exception("control flush failed")

    async def _flush(self) -> None:
        now = time.monotonic()
        broadcast = self._broadcast
        if broadcast is None:
            return
        watchers = [client for client in self._clients if client.watching]
        if watchers:
            events = broadcast.events(now)
            if events:
                await self._push(watchers, b"".join(events), now)
        else:
            broadcast.forget()
        snapshot: bytes | None = None
        for client in list(self._clients):
            caught_up = client.buffered() < self.behind_bytes // 4
            if client.needs_snapshot and caught_up:
                if snapshot is None:
                    snapshot = p.encode(broadcast.snapshot())
                client.send(snapshot)
                client.needs_snapshot = False
            if client.follows:
                self._pump_logs(client, now)
            if client.behind_since is None:
                continue
            if caught_up and not client.needs_snapshot:
                client.behind_since = None
            elif now - client.behind_since > self.stall_timeout:
                self.log(event="control_dropped", pid=client.pid, reason="not reading")
                client.writer.transport.abort()
                self._clients.discard(client)

    async def _push(self, watchers: list[_Client], data: bytes, now: float) -> None:
        """One write per client per flush, with a loop turn after each: a write that wakes a
        client costs about 0.1 ms, and ten of them in a row would hold up due jobs."""
        for client in watchers:
            if client.needs_snapshot or client not in self._clients:
                continue  # the snapshot it is owed will include this change
            if client.buffered() > self.behind_bytes:
                client.needs_snapshot = True
                client.behind_since = now
                continue
            client.send(data)
            await asyncio.sleep(0)

    def _pump_logs(self, client: _Client, now: float) -> None:
        for run_id, follow in list(client.follows.items()):
            if client.buffered() > self.behind_bytes // 2:
                # The rest waits for this client to read (nothing is dropped), unless it
                # reads nothing for the stall timeout.
                if client.behind_since is None:
                    client.behind_since = now
                return
            run = follow.run
            finished = run.is_finished  # first: lines written before the end are then read
            lines: list[str] = []
            position = follow.position
            if run.has_output:
                got, position = run.output.since(follow.position, LOG_CHUNK)
                lines = [line.text for line in got]
            done = finished and len(lines) < LOG_CHUNK
            if not lines and not done:
                continue
            event = p.LogEvent(
                job_id=follow.job_id,
                run_id=run_id,
                start=position - len(lines),
                lines=lines,
                next=position,
                done=done,
            )
            if done:
                event.outcome = run.outcome.value if run.outcome else None
                event.exit_code = run.exit_code
                event.error = run.error.first_line if run.error else None
                del client.follows[run_id]
            follow.position = position
            client.send(p.encode(event))


# -- helpers --------------------------------------------------------------------------------
def _check_range(name: str, value: int, most: int) -> None:
    if not 1 <= value <= most:
        raise p.ProtocolError("invalid_params", f"{name} must be from 1 to {most}, not {value}")


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int]:
    """The connecting process's pid and uid, from the kernel (SO_PEERCRED), not its word."""
    sock = writer.get_extra_info("socket")
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", data)
    return pid, uid


async def _close_after(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last: bytes
) -> None:
    """Send a last line, then close so that the client reads it. Closing with unread bytes
    from the client makes the kernel reset the connection, and the client then sees "connection
    reset" instead of the line: so shut our side down, read what it still sends (briefly),
    and only then close."""
    try:
        writer.write(last)
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(REFUSAL_DRAIN):
            await writer.drain()
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError, OSError, ValueError, asyncio.LimitOverrunError):
        pass
