"""Hooks as a user meets them: a webhook, a healthcheck and hook commands against a local HTTP
server on 127.0.0.1, through the Host that headless mode and the console use."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobtui.alerts import HookFailure
from jobtui.config import load
from jobtui.engine import JobModified, Outcome, Run, RunFinished
from jobtui.host import Host
from jobtui.store import Store


class Endpoint:
    """A local HTTP server that records each request; ``answers`` lists the status codes to
    give in turn (then 200), ``delay`` makes every answer slow."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.answers: list[int] = []
        self.delay = 0.0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests.append((self.path, body))
                time.sleep(endpoint.delay)
                status = endpoint.answers.pop(0) if endpoint.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers (a hung service)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def write_jobs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


class Running:
    """A host on a jobs.toml, with its runs' ends and its hook failures collected."""

    def __init__(self, path: Path, *, store: Store | None = None) -> None:
        self.host = Host(load(path), store=store)
        self.host.alerts.backoff = 0.05  # the retries' timing is not what these tests are about
        self.finished: list[Run] = []
        self.failures: list[HookFailure] = []
        self.host.scheduler.subscribe(lambda e: self.finished.append(e.run), RunFinished)
        self.host.alerts.failed.append(self.failures.append)

    async def run_once(self, job_id: str) -> Run:
        count = len(self.finished)
        self.host.scheduler.run_now(job_id)
        await until(lambda: any(r.job_id == job_id for r in self.finished[count:]))
        await until(lambda: not self.host.alerts.busy)
        return next(r for r in self.finished[count:] if r.job_id == job_id)


async def test_a_failed_run_posts_one_webhook_after_its_retries(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    path = write_jobs(
        tmp_path,
        f"""
[jobs.backup]
command = "echo copying; echo disk full >&2; exit 3"
retries = 2
retry_backoff = "10ms"
webhook = "{endpoint.url}/hook"
""",
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        run = await running.run_once("backup")
    finally:
        await running.host.stop()
    assert run.outcome is Outcome.FAILED and run.attempt == 3
    assert endpoint.paths() == ["/hook"]  # one call for the occurrence, not one per attempt
    payload = json.loads(endpoint.requests[0][1])
    assert payload["job_id"] == "backup"
    assert payload["outcome"] == "failed"
    assert payload["event"] == "failure"
    assert payload["exit_code"] == 3
    assert payload["attempt"] == 3
    assert "disk full" in payload["output_tail"]
    assert payload["text"].startswith("jobtui: backup failed after 3 attempts")
    assert payload["started_at"] and payload["finished_at"] and payload["scheduled_for"]


async def test_webhook_on_chooses_the_events_and_success_is_quiet_by_default(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    path = write_jobs(
        tmp_path,
        f"""
[jobs.quiet]
command = "true"
webhook = "{endpoint.url}/quiet"

[jobs.chatty]
command = "true"
webhook = "{endpoint.url}/chatty"
webhook_on = ["success"]
""",
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        await running.run_once("quiet")
        await running.run_once("chatty")
    finally:
        await running.host.stop()
    assert endpoint.paths() == ["/chatty"]
    assert json.loads(endpoint.requests[0][1])["outcome"] == "succeeded"


async def test_healthcheck_pings_start_then_success_or_the_exit_code_with_the_output(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    path = write_jobs(
        tmp_path,
        f"""
[jobs.good]
command = "echo all fine"
healthcheck = "{endpoint.url}/ping/0f8e7a9c-1234-4bcd-9abc-0123456789ab"

[jobs.bad]
command = "echo broken; exit 4"
healthcheck = "{endpoint.url}/ping/bad-uuid?rid=1"

[jobs.loud]
command = [{json.dumps(sys.executable)}, "-c", "for i in range(2000): print('line', i, 'y' * 100)"]
healthcheck = "{endpoint.url}/ping/loud"
""",
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        await running.run_once("good")
        await running.run_once("bad")
        await running.run_once("loud")
    finally:
        await running.host.stop()
    uuid = "0f8e7a9c-1234-4bcd-9abc-0123456789ab"
    assert endpoint.paths() == [
        f"/ping/{uuid}/start",
        f"/ping/{uuid}",
        "/ping/bad-uuid/start?rid=1",
        "/ping/bad-uuid/4?rid=1",
        "/ping/loud/start",
        "/ping/loud",
    ]
    bodies = [body for _, body in endpoint.requests]
    assert bodies[1] == b"all fine"
    assert bodies[3] == b"broken"
    assert len(bodies[5]) <= 100_000  # healthchecks.io keeps 100 kB: the tail is what matters
    assert bodies[5].rstrip().endswith(b"line 1999 " + b"y" * 100)


async def test_a_hook_retries_with_backoff_and_a_failed_hook_changes_no_outcome(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    endpoint.answers = [500, 503]  # then 200
    path = write_jobs(
        tmp_path,
        f"""
[jobs.flaky]
command = "exit 1"
webhook = "{endpoint.url}/flaky"

[jobs.doomed]
command = "exit 1"
webhook = "{endpoint.url}/doomed"
""",
    )
    store = Store.open(tmp_path / "state.db")
    running = Running(path, store=store)
    await running.host.start(watch=False)
    try:
        flaky = await running.run_once("flaky")
        assert endpoint.paths() == ["/flaky"] * 3 and running.failures == []
        endpoint.answers = [500, 500, 500]
        doomed = await running.run_once("doomed")
    finally:
        await running.host.stop()
    assert flaky.outcome is Outcome.FAILED and doomed.outcome is Outcome.FAILED
    [failure] = running.failures
    assert failure.job_id == "doomed" and "HTTP 500" in failure.message
    assert failure.hook == f"webhook {endpoint.url}/doomed"
    from jobtui.store.history import read_context

    notes = read_context(tmp_path / "state.db", "doomed")["events"]
    assert [note["kind"] for note in notes] == ["hook_failed"]
    assert "HTTP 500" in notes[0]["detail"]


async def test_a_dead_endpoint_delays_no_other_run(tmp_path: Path, silent_port: int) -> None:
    path = write_jobs(
        tmp_path,
        f"""
[jobs.alerting]
command = "exit 2"
webhook = "http://127.0.0.1:{silent_port}/never-answers"
hook_timeout = "2s"

[jobs.ticker]
command = "true"
every = "100ms"
""",
    )
    running = Running(path)
    running.host.alerts.attempts = 1
    await running.host.start(watch=False)
    try:
        running.host.scheduler.run_now("alerting")
        await until(lambda: any(r.job_id == "alerting" for r in running.finished))
        await until(lambda: running.host.alerts.busy)
        before = sum(r.job_id == "ticker" for r in running.finished)
        started = time.monotonic()
        await until(lambda: running.failures != [])  # the webhook hangs for its 2 s timeout
        waited = time.monotonic() - started
        ticks = sum(r.job_id == "ticker" for r in running.finished) - before
    finally:
        await running.host.stop()
    alerting = [r for r in running.finished if r.job_id == "alerting"]
    assert [r.outcome for r in alerting] == [Outcome.FAILED]
    assert "no answer within 2s" in running.failures[0].message
    # The ticker kept its 100 ms cadence while the hook hung (a blocked loop would give ~0).
    assert ticks >= int(waited / 0.1) - 4


async def test_hook_commands_get_the_run_in_their_environment(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen.json"
    script = (
        "import json, os, sys; "
        "keys = [k for k in os.environ if k.startswith('JOBTUI_')]; "
        "env = {k: os.environ[k] for k in keys}; "
        "env['tail'] = open(os.environ['JOBTUI_OUTPUT_FILE']).read(); "
        f"json.dump(env, open({str(seen)!r}, 'w'))"
    )
    path = write_jobs(
        tmp_path,
        f"""
[defaults]
on_failure = [{json.dumps(sys.executable)}, "-c", {json.dumps(script)}]

[jobs.report]
command = "echo half done; exit 5"
""",
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        run = await running.run_once("report")
    finally:
        await running.host.stop()
    env = json.loads(seen.read_text())
    assert env["JOBTUI_JOB"] == "report"
    assert env["JOBTUI_RUN_ID"] == run.run_id
    assert env["JOBTUI_OUTCOME"] == "failed"
    assert env["JOBTUI_EXIT_CODE"] == "5"
    assert env["JOBTUI_ERROR"]
    assert env["JOBTUI_SCHEDULED_FOR"].startswith(run.scheduled_for.isoformat()[:19])
    assert env["tail"] == "half done"
    assert not Path(env["JOBTUI_OUTPUT_FILE"]).exists()  # removed once the hook is done


async def test_a_hook_command_that_hangs_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = write_jobs(
        tmp_path,
        f"""
[jobs.hung]
command = "exit 1"
on_failure = "sleep 60 & echo $! > {pids}; sleep 60"
hook_timeout = "300ms"
""",
    )
    running = Running(path)
    running.host.alerts.attempts = 1
    await running.host.start(watch=False)
    try:
        started = time.monotonic()
        run = await running.run_once("hung")
        took = time.monotonic() - started
    finally:
        await running.host.stop()
    assert run.outcome is Outcome.FAILED
    assert took < 5
    [failure] = running.failures
    assert failure.hook == "on_failure" and "killed" in failure.message
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the hook's background child outlived its timeout")


async def test_skipped_and_missed_occurrences_call_on_missed(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    path = write_jobs(
        tmp_path,
        f"""
[jobs.slow]
command = "sleep 0.35"
every = "100ms"
webhook = "{endpoint.url}/missed"
on_success = "true"
""",
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        await until(lambda: len(endpoint.requests) >= 2)
    finally:
        await running.host.stop()
    payloads = [json.loads(body) for _, body in endpoint.requests]
    assert {p["outcome"] for p in payloads} <= {"skipped", "missed"}
    assert payloads[0]["event"] == "missed"
    assert "still running" in payloads[0]["reason"]
    assert payloads[0]["text"].startswith("jobtui: slow skipped the occurrence of")


def test_check_reports_bad_alert_keys_with_their_line(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path,
        """
[defaults]
webhook_on = ["failure", "crashed"]

[jobs.a]
command = "true"
webhook = "hooks.example.com/x"
healthcheck = "https://user:secret@hc.example:99999/0f8e7a9c-1234-4bcd-9abc-0123456789ab"

[jobs.b]
command = "true"
webhook_on = ["success"]
""",
    )
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{path}:3:1: [defaults], key \"webhook_on\": unknown event 'crashed'" in result.stderr
    assert f'{path}:7:1: job "a", key "webhook": expected an http:// or https:// URL' in (
        result.stderr
    )
    assert f'{path}:8:1: job "a", key "healthcheck"' in result.stderr
    assert "secret" not in result.stderr and "0f8e7a9c" not in result.stderr
    assert f'{path}:12:1: warning: job "b", key "webhook_on": has no effect without' in (
        result.stderr
    )


def test_headless_logs_a_failed_hook_with_its_secrets_masked(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    from tests.test_cli import Headless

    endpoint.answers = [500] * 10
    path = write_jobs(
        tmp_path,
        f"""
[jobs.nightly]
command = "exit 9"
every = "1h"
run_immediately = true
webhook = "{endpoint.url}/hook?token=sekrit"
""",
    )
    headless = Headless(path)
    try:
        events = headless.wait_for(lambda ev: any(e["event"] == "hook_failed" for e in ev))
        headless.proc.terminate()
        assert headless.proc.wait(timeout=30) == 0
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()
    [failure] = [e for e in events if e["event"] == "hook_failed"]
    assert failure["job"] == "nightly"
    assert failure["hook"] == f"webhook {endpoint.url}/hook?token=***"
    assert failure["error"] == "HTTP 500 Internal Server Error (after 3 attempts)"
    assert len(endpoint.requests) == 3
    assert "sekrit" not in "\n".join(headless.lines)
    [run] = [e for e in events if e["event"] == "run_finished"]
    assert run["outcome"] == "failed"  # the hook's failure is not the run's


async def test_an_edited_hook_applies_at_once_and_leaves_the_schedule_alone(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    job = '[jobs.nightly]\ncommand = "exit 1"\ncron = "30 2 * * *"\nwebhook = "{}"\n'
    path = write_jobs(tmp_path, job.format(f"{endpoint.url}/old"))
    running = Running(path)
    modified: list[object] = []
    running.host.scheduler.subscribe(modified.append, JobModified)
    await running.host.start(watch=False)
    try:
        await running.run_once("nightly")
        write_jobs(tmp_path, job.format(f"{endpoint.url}/new"))
        assert await running.host.reload()
        await running.run_once("nightly")
    finally:
        await running.host.stop()
    assert endpoint.paths() == ["/old", "/new"]
    assert modified == []  # the job was not redefined: its plan and counters stand


async def test_after_a_crash_no_hook_command_is_left_running(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = write_jobs(
        tmp_path,
        f'[jobs.j]\ncommand = "exit 1"\non_failure = "sleep 60 & echo $! > {pids}; wait"\n',
    )
    running = Running(path)
    await running.host.start(watch=False)
    try:
        running.host.scheduler.run_now("j")
        await until(lambda: pids.exists() and pids.read_text().strip() != "")
        # The command can write its pid before the delivery, on the same loop, has taken note
        # of its process group: a crash in that instant is out of reach, and not what is tested.
        await until(lambda: bool(running.host.alerts.command_groups))
        child = int(pids.read_text())
        running.host.kill_leftovers()  # what the CLI calls when the loop died under it
        await until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child))
    finally:
        await running.host.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
