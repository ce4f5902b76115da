"""The control server against bad and unlucky clients: each gets an error or is dropped, the
scheduler keeps its times, and no file descriptor or client record is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from jobtui.alerts.delivery import HookFailure
from jobtui.config import load
from jobtui.control import protocol as p
from jobtui.control.controller import HookFailed, LocalController
from jobtui.control.listen import ControlSocketError
from jobtui.control.paths import candidates
from jobtui.control.server import ControlServer
from jobtui.control.why import Why
from jobtui.engine import Run, RunStarted
from jobtui.host import Host

from .test_console import write

JOBS = """
[scheduler]
timezone = "UTC"

[jobs.backup]
command = "echo backing up"
every = "1h"
"""


class Served:
    """A host with a ticking job, its control server, and what a user would check."""

    def __init__(self, host: Host, server: ControlServer) -> None:
        self.host = host
        self.server = server
        self.lateness: list[float] = []
        host.scheduler.subscribe(self._started, RunStarted)

    def _started(self, event: RunStarted) -> None:
        run = event.run
        if run.job_id == "tick" and run.started_ts is not None:
            self.lateness.append(run.started_ts - run.scheduled_ts)

    @property
    def path(self) -> Path:
        assert self.server.path is not None
        return self.server.path

    async def connect(self) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=p.MAX_SERVER_LINE)
        client = Client(reader, writer)
        assert isinstance(await client.read(), p.Hello)
        return client

    async def settled(self, fds: int) -> None:
        """Every connection is gone and the fd count is back to ``fds``."""
        async with asyncio.timeout(10):
            while self.server.client_count or self.server._connections or _fds() != fds:
                await asyncio.sleep(0.02)  # polling for closes the loop has yet to run

    async def assert_on_time(self) -> None:
        async with asyncio.timeout(10):
            while len(self.lateness) < 5:  # the abuse may have been quicker than a few ticks
                await asyncio.sleep(0.02)
        # A 50 ms tick that started more than 0.2 s late would mean a client held the loop.
        assert max(self.lateness) < 0.2, sorted(self.lateness)[-5:]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = 0

    async def read(self) -> p.ServerMessage:
        async with asyncio.timeout(10):
            line = await self.reader.readline()
        assert line, "the server closed the connection"
        return p.decode_server_message(line)

    async def send_line(self, line: bytes) -> None:
        self.writer.write(line)
        await self.writer.drain()

    async def call(self, method: str, **params: object) -> p.Reply:
        self.ids += 1
        await self.send_line(p.encode(p.Request(id=self.ids, method=method, params=params)))
        while True:
            message = await self.read()
            if isinstance(message, p.Reply):
                assert message.id == self.ids
                return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_RUNTIME_DIR": str(tmp_path / "run")}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    host = Host(load(write(tmp_path / "jobs.toml", JOBS)))

    async def tick() -> None:
        pass

    host.scheduler.add_job(tick, id="tick", every=0.05)
    server = ControlServer(
        LocalController(host), env=_env(tmp_path), stall_timeout=1.0, behind_bytes=256 * 1024
    )
    served = Served(host, server)
    await host.start(watch=False)
    await server.start()
    try:
        yield served
    finally:
        await server.close()
        await host.stop(0)


async def test_bad_requests_get_error_replies_and_the_connection_goes_on(served):
    fds = _fds()
    client = await served.connect()
    bad = [
        (b"\x00\xff\xfe garbage \x80\n", "parse_error"),
        (b'{"type": "request", "id": 1, "method": \n', "parse_error"),
        (b'["not", "an", "object"]\n', "invalid_request"),
        (b'{"type": "request", "id": 2, "method": "explode"}\n', "unknown_method"),
        (b'{"type": "request", "id": 3, "method": "pause", "params": {"job_id": 7}}\n',
         "invalid_params"),
        (b'{"type": "request", "id": 4, "method": "pause", "params": {"job_id": "nope"}}\n',
         "unknown_job"),
        (b'{"type": "request", "id": 5, "method": "next_times",'
         b' "params": {"job_id": "backup", "n": 100000000}}\n', "invalid_params"),
        (b'{"type": "request", "id": 6, "method": "log",'
         b' "params": {"job_id": "backup", "run_id": "r0"}}\n', "unknown_run"),
        (b'{"type": "request", "id": 7, "method": "cancel", "params": {"job_id": "backup"}}\n',
         "unknown_run"),
    ]  # fmt: skip
    for line, code in bad:
        await client.send_line(line)
        reply = await client.read()
        assert isinstance(reply, p.Reply) and reply.error is not None, line
        assert reply.error.code == code, (line, reply.error)
    # The same connection still works, and the job was not touched.
    answer = await client.call("job", job_id="backup")
    view = p.decode_result("job", answer.result)
    assert view.id == "backup" and not view.paused
    await client.close()
    await served.settled(fds)
    await served.assert_on_time()


async def test_a_line_over_a_mebibyte_is_answered_then_the_client_is_dropped(served):
    fds = _fds()
    client = await served.connect()
    huge = b'{"type": "request", "id": 1, "method": "jobs", "pad": "' + b"x" * (2 << 20)
    client.writer.write(huge)  # no drain: the server stops reading after 1 MiB
    reply = await client.read()  # the reply arrives, not a connection reset
    assert isinstance(reply, p.Reply) and reply.error is not None
    assert reply.error.code == "line_too_long"
    async with asyncio.timeout(5):
        assert await client.reader.read() == b""  # then the server closes
    await client.close()
    await served.settled(fds)
    await served.assert_on_time()


async def test_two_hundred_clients_come_and_go_without_leaks(served):
    fds = _fds()
    for _ in range(200):
        client = await served.connect()
        reply = await client.call("summary")
        assert p.decode_result("summary", reply.result).jobs == 2
        await client.close()
    # Some leave mid-conversation, without reading their replies.
    for _ in range(20):
        client = await served.connect()
        client.writer.write(p.encode(p.Request(id=1, method="jobs")))
        client.writer.transport.abort()
    await served.settled(fds)
    await served.assert_on_time()


async def test_a_client_killed_mid_request_costs_nothing(served):
    fds = _fds()
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        's.sendall(b\'{"type": "request", "id": 1, "method": "pau\')\n'
        "print('sent', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(served.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.to_thread(proc.stdout.readline) == "sent\n"
        async with asyncio.timeout(5):
            while served.server.client_count != 1:
                await asyncio.sleep(0.02)
        proc.kill()
    finally:
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    await served.settled(fds)
    client = await served.connect()  # still serving
    assert (await client.call("summary")).error is None
    await client.close()
    await served.assert_on_time()


async def test_a_watcher_that_never_reads_is_dropped_and_others_keep_up(served):
    """Changes pile up for a client that stopped reading; past a bound it gets no more, and
    after the stall timeout it is dropped. A reading client sees every change meanwhile."""
    fds = _fds()
    scheduler = served.host.scheduler
    for number in range(300):
        scheduler.add_job("echo", id=f"job{number:03}", every=3600, description="x" * 200)
    # A plain socket the loop does not read for it (an asyncio client would buffer for it).
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(str(served.path))
    silent.sendall(p.encode(p.Request(id=1, method="watch")))
    reader = await served.connect()
    await reader.call("watch")
    seen: list[int] = []

    async def read_all() -> None:
        while True:
            message = await reader.read()
            if isinstance(message, p.Snapshot):
                seen.clear()
            if isinstance(message, p.JobsEvent):
                seen.append(message.seq)

    reading = asyncio.create_task(read_all())
    most_buffered = 0
    try:
        async with asyncio.timeout(20):
            while served.server.client_count > 1:  # the silent one is still there
                buffered = [client.buffered() for client in served.server._clients]
                most_buffered = max(most_buffered, *buffered)
                for number in range(300):  # every view changes: ~100 kB per flush
                    job_id = f"job{number:03}"
                    if scheduler.get(job_id).paused:
                        scheduler.resume(job_id)
                    else:
                        scheduler.pause(job_id)
                await asyncio.sleep(0.05)  # let flushes happen between the bursts
        assert len(seen) > 3
        assert seen == sorted(set(seen))  # in order, none twice
        # What waits for the silent one stays bounded: the limit plus one flush's events.
        assert most_buffered < served.server.behind_bytes + 512 * 1024
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    await reader.close()
    silent.close()
    await served.settled(fds)
    await served.assert_on_time()


async def test_a_client_that_fell_behind_is_resynced_with_a_snapshot(tmp_path):
    host = Host(load(write(tmp_path / "jobs.toml", JOBS)))
    for number in range(300):
        host.scheduler.add_job("echo", id=f"job{number:03}", every=3600, description="x" * 200)
    server = ControlServer(
        LocalController(host), env=_env(tmp_path), stall_timeout=30.0, behind_bytes=64 * 1024
    )
    await host.start(watch=False)
    await server.start()
    try:
        # A plain socket first: nothing reads it while the flushes go out.
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(str(server.path))
        raw.sendall(p.encode(p.Request(id=1, method="watch")))
        for _ in range(30):  # the client reads nothing while these flushes go out
            for number in range(300):
                job_id = f"job{number:03}"
                if host.scheduler.get(job_id).paused:
                    host.scheduler.resume(job_id)
                else:
                    host.scheduler.pause(job_id)
            await asyncio.sleep(0.05)
        final = {job.id: job.paused for job in host.scheduler.jobs()}
        reader, writer = await asyncio.open_unix_connection(sock=raw, limit=p.MAX_SERVER_LINE)
        messages: list[p.ServerMessage] = []
        async with asyncio.timeout(10):
            while True:  # now it reads: events, a snapshot, and events after it
                message = p.decode_server_message(await reader.readline())
                messages.append(message)
                snapshots = [m for m in messages if isinstance(m, p.Snapshot)]
                if len(snapshots) >= 2:
                    break
        first, resync = snapshots[:2]
        assert resync.seq > first.seq
        # The resync snapshot is today's picture, and numbering goes on from it.
        after = messages[messages.index(resync) + 1 :]
        assert {view.id: view.paused for view in resync.jobs} == final
        later = [m.seq for m in after if isinstance(m, p.JobsEvent | p.SummaryEvent)]
        assert later == list(range(resync.seq + 1, resync.seq + 1 + len(later)))
        writer.close()
    finally:
        await server.close()
        await host.stop(0)


async def test_a_dead_daemons_socket_is_replaced_a_live_one_never(tmp_path):
    env = _env(tmp_path)
    config = load(write(tmp_path / "jobs.toml", JOBS))
    path = candidates(config.state_path, env)[0]
    path.parent.mkdir(parents=True, mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # bound, never listening, then gone: what a killed daemon leaves
    dead.close()
    host = Host(config)
    server = ControlServer(LocalController(host), env=env)
    assert await server.start() == path
    try:
        second = ControlServer(LocalController(Host(config)), env=env)
        with pytest.raises(ControlSocketError, match="another jobtui answers"):
            await second.start()
        # The first one's socket is still there and answering.
        reader, writer = await asyncio.open_unix_connection(str(path))
        assert msgspec.json.decode(await reader.readline())["type"] == "hello"
        writer.close()
        assert path.stat().st_mode & 0o077 == 0  # nobody else may even connect
        assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
    finally:
        await server.close()
    assert not path.exists()  # removed at a clean shutdown


async def test_follow_streams_a_runs_lines_once_then_its_end(served):
    async def chatty(run: Run) -> None:
        for number in range(5):
            run.log(f"line {number}")
            await asyncio.sleep(0.02)  # lets flushes land mid-run; not a timing assertion

    served.host.scheduler.add_job(chatty, id="chatty")
    client = await served.connect()
    reply = await client.call("run_now", job_id="chatty", follow=True)
    run_id = p.decode_result("run_now", reply.result)
    lines: list[str] = []
    started = time.monotonic()
    while True:
        message = await client.read()
        assert isinstance(message, p.LogEvent) and message.run_id == run_id
        assert message.start == len(lines)  # numbered, no gaps, no repeats
        lines += message.lines
        if message.done:
            break
    assert lines == [f"line {number}" for number in range(5)]
    assert message.outcome == "succeeded"
    assert time.monotonic() - started < 5
    answer = await client.call("log", job_id="chatty", run_id=run_id, start=3)
    assert p.decode_result("log", answer.result) == (["line 3", "line 4"], 5)
    await client.close()


async def test_a_console_hosting_the_scheduler_serves_the_socket_too(tmp_path, monkeypatch):
    from jobtui.console.app import JobtuiApp

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    app = JobtuiApp(load(write(tmp_path / "jobs.toml", JOBS)), watch_file=False, grace=0,
                    serve=True)  # fmt: skip
    async with app.run_test() as pilot:
        path = app.server.path
        assert path is not None
        reader, writer = await asyncio.open_unix_connection(str(path))
        hello = p.decode_server_message(await reader.readline())
        assert isinstance(hello, p.Hello) and hello.host == "console"
        writer.write(p.encode(p.Request(id=1, method="pause", params={"job_id": "backup"})))
        reply = p.decode_server_message(await reader.readline())
        assert isinstance(reply, p.Reply) and reply.error is None
        view = app.controller.job("backup")
        assert view is not None and view.paused  # the hosting console's own view shows it
        writer.close()
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not path.exists()


async def test_a_client_that_sends_then_shuts_its_side_gets_every_byte(served):
    """`printf '...' | socat - UNIX-CONNECT:...`: the request, then end of input; the reply
    (here larger than the socket's buffers) must arrive whole before the server closes."""
    scheduler = served.host.scheduler
    for number in range(600):
        scheduler.add_job("echo", id=f"job{number:03}", every=3600, description="x" * 400)
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(served.path))
    raw.sendall(p.encode(p.Request(id=1, method="jobs")))
    raw.shutdown(socket.SHUT_WR)
    # Read only once the server has seen the end of input with the reply half sent. (The
    # pause only makes a lost tail likely when the server gets it wrong; a right server
    # passes whatever the timing.)
    await asyncio.sleep(0.3)

    def read_all() -> bytes:
        chunks = []
        while chunk := raw.recv(1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)

    data = await asyncio.to_thread(read_all)
    raw.close()
    hello, reply = data.splitlines()
    assert isinstance(p.decode_server_message(hello), p.Hello)
    answer = p.decode_server_message(reply)
    assert isinstance(answer, p.Reply)
    assert len(p.decode_result("jobs", answer.result)) == 602


async def test_why_answers_over_the_socket_as_in_process(served):
    served.host.scheduler.run_now("backup")
    async with asyncio.timeout(10):
        while served.host.scheduler.get("backup").last_run is None:
            await asyncio.sleep(0.02)  # the manual run finishing
    client = await served.connect()
    reply = await client.call("why", job_id="backup")
    answer = p.decode_result("why", reply.result)
    local = await asyncio.to_thread(served.server.controller.why, "backup")
    assert local is not None and Why.from_dict(answer) == local
    assert local.next_text.startswith("next: ") and local.lines[0].kind == "ran"
    unknown = await client.call("why", job_id="nope")
    assert unknown.error is not None and unknown.error.code == "unknown_job"
    await client.close()


async def test_a_failed_hook_reaches_watchers_as_a_hook_failed_event(served):
    client = await served.connect()
    await client.call("watch")
    assert isinstance(await client.read(), p.Snapshot)
    failure = HookFailure("backup", "r1", "webhook https://hooks.example/***", "HTTP 500", 0.0)
    for listener in served.host.alerts.failed:  # as the alerts' delivery task tells them
        listener(failure)
    async with asyncio.timeout(10):  # other events keep coming: the tick job runs
        while not isinstance(message := await client.read(), p.HookFailedEvent):
            pass
    assert message.notice() == HookFailed("backup", "webhook https://hooks.example/***: HTTP 500")
    await client.close()
