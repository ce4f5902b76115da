"""The control socket's protocol: what crosses the socket comes back as it left, and bad lines
get the error code a client can act on."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from jobtui.control.controller import JobView, RunView, Summary
from jobtui.control.paths import (
    MAX_SOCKET_PATH,
    SocketFolderError,
    candidates,
    make_private_folder,
)
from jobtui.control.protocol import (
    ConfigInfo,
    Hello,
    JobsEvent,
    LogEvent,
    ProtocolError,
    Reply,
    Request,
    Snapshot,
    decode_params,
    decode_request,
    decode_result,
    decode_server_message,
    encode,
    encode_result,
    error_reply,
    reply,
)
from jobtui.engine import JobState, Outcome


def _run(**changes) -> RunView:
    fields = dict(
        run_id="r1", job_id="backup", manual=True, attempt=2, scheduled_ts=100.0,
        started_ts=101.5, finished_ts=None, outcome=None, progress=0.25,
        status_message="copying \u00e9t\u00e9 \x1b[31m", error_type=None, error_message=None,
        error_line=None, reason="", pid=4242,
    )  # fmt: skip
    fields.update(changes)
    return RunView(**fields)


def _job(**changes) -> JobView:
    last = _run(run_id="r0", finished_ts=103.0, outcome=Outcome.FAILED, error_type="OSError",
                error_message="disk full\nmore", error_line="OSError: disk full")  # fmt: skip
    fields = dict(
        id="backup", name="Backup", description="nightly", trigger="every 10m",
        timezone="Europe/Paris", target="rsync -a /src /dst", options=(("timeout", "1h"),),
        state=JobState.RUNNING, paused=False, pause_reason="", disabled_reason="",
        next_fire=200.0, next_run_ts=200.0, last_run=last, running=(_run(),),
    )  # fmt: skip
    fields.update(changes)
    return JobView(**fields)


def test_views_cross_the_socket_unchanged() -> None:
    job = _job()
    summary = Summary("jobs.toml", 1, 1, 3, 0, "")
    snapshot = Snapshot(
        seq=7, jobs=[job, _job(id="idle", running=(), last_run=None, state=JobState.PAUSED)],
        summary=summary,
        config=ConfigInfo(path="/srv/jobs.toml", name="jobs.toml", state_path="/s", timezone="UTC"),
        reload_problems=["jobs.toml:3:1: bad"],
    )  # fmt: skip
    line = encode(snapshot)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # a newline inside text is escaped
    back = decode_server_message(line)
    assert back == snapshot
    assert isinstance(back, Snapshot)
    assert back.jobs[0].state is JobState.RUNNING
    assert back.jobs[0].last_run is not None and back.jobs[0].last_run.outcome is Outcome.FAILED
    assert back.jobs[0].current_run == _run()  # the view's own properties work on the copy


def test_where_a_run_runs_crosses_the_socket_and_an_older_peer_reads_around_it() -> None:
    """Hosts sharing a PostgreSQL state: each run says which host it is on, the summary this
    host's name and how many run elsewhere. Additive: a daemon that predates the fields is
    read as one host, and a client that predates them decodes the new lines all the same."""
    job = _job(running=(_run(host="web-2"),), last_run=_run(run_id="r0", host="web-1"))
    summary = Summary("jobs.toml", 1, 1, 0, 0, "", host="web-1", running_elsewhere=1)
    event = JobsEvent(seq=4, views=[job])
    back = decode_server_message(encode(event))
    assert back == event
    assert isinstance(back, JobsEvent) and back.views[0].running[0].host == "web-2"
    assert decode_result("summary", encode_result(summary)) == summary

    older_line = encode(JobsEvent(seq=5, views=[_job()])).replace(b',"host":""', b"")
    assert b'"host"' not in older_line
    older = decode_server_message(older_line)
    assert isinstance(older, JobsEvent) and older.views[0].running[0].host == ""

    @dataclass(frozen=True, slots=True)
    class OlderRunView:  # RunView as a client from before the field has it
        run_id: str
        progress: float | None

    old_client = msgspec.json.decode(encode(_run(host="web-2")), type=OlderRunView)
    assert old_client == OlderRunView("r1", 0.25)


def test_events_and_hello_round_trip() -> None:
    messages = [
        Hello(
            protocol=1,
            pid=1,
            started_at=5.0,
            config_path="/a",
            state_path="/b",
            version="1",
            host="headless",
        ),
        JobsEvent(seq=3, views=[_job()], removed=["old"], order=["backup"]),
        LogEvent(job_id="backup", run_id="r1", start=10, lines=["a", ""], next=12, done=True),
    ]
    for message in messages:
        assert decode_server_message(encode(message)) == message


def test_replies_carry_exactly_one_of_result_and_error() -> None:
    ok = decode_server_message(reply(4, None))
    assert isinstance(ok, Reply) and ok.error is None
    assert b'"result":null' in reply(4, None)
    assert decode_result("pause", ok.result) is None
    failed = decode_server_message(error_reply(4, "unknown_job", 'no job "x"'))
    assert isinstance(failed, Reply) and failed.error is not None
    assert failed.error.code == "unknown_job"
    assert b"result" not in error_reply(4, "unknown_job", "x")


def test_results_decode_to_the_methods_types() -> None:
    when = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    times = decode_server_message(reply(1, [when]))
    assert isinstance(times, Reply)
    assert decode_result("next_times", times.result) == [when]
    job = decode_server_message(reply(2, _job()))
    assert isinstance(job, Reply)
    assert decode_result("job", job.result) == _job()
    log = decode_server_message(reply(3, (["one", "two"], 2)))
    assert isinstance(log, Reply)
    assert decode_result("log", log.result) == (["one", "two"], 2)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"\xff\xfe\x00garbage", "parse_error"),
        (b'{"type": "request", "id": 1, "method": "pause"', "parse_error"),
        (b"[1, 2]", "invalid_request"),
        (b'{"type": "request", "id": 1, "method": 5}', "invalid_request"),
        (b'{"type": "hello", "id": 1}', "invalid_request"),
    ],
)
def test_bad_lines_name_their_fault(line: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert caught.value.code == code


def test_an_invalid_request_still_gets_its_id_back() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(b'{"type": "request", "id": 9, "method": 5}')
    assert caught.value.request_id == 9


@pytest.mark.parametrize(
    ("request_", "code", "named"),
    [
        (Request(id=1, method="explode"), "unknown_method", "explode"),
        (Request(id=1, method="pause", params={"job_id": 3}), "invalid_params", "job_id"),
        (Request(id=1, method="pause"), "invalid_params", "job_id"),
        (Request(id=1, method="next_times", params={"job_id": "a", "n": "5"}), "invalid_params",
         "n"),
        (Request(id=1, method="jobs", params={"surprise": 1}), "invalid_params", "surprise"),
    ],
)  # fmt: skip
def test_bad_params_name_the_parameter(request_: Request, code: str, named: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_params(request_)
    assert caught.value.code == code
    assert named in caught.value.message
    assert caught.value.request_id == 1


def test_a_request_round_trips() -> None:
    line = encode(Request(id="a", method="log", params={"job_id": "j", "run_id": "r"}))
    request = decode_request(line)
    params = decode_params(request)
    assert (request.id, params.job_id, params.start, params.limit) == ("a", "j", 0, 1000)  # type: ignore[attr-defined]


# -- socket paths ---------------------------------------------------------------------------
def test_socket_paths_follow_xdg_runtime_dir_then_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / ".jobtui" / "state.db"
    first, beside, fallback = candidates(state, {"XDG_RUNTIME_DIR": str(tmp_path / "run")})
    assert first.parent == tmp_path / "run" / "jobtui"
    assert beside == tmp_path / ".jobtui" / ".jobtui-control" / "state.db.sock"
    assert fallback.parent == Path(f"/tmp/jobtui-{os.getuid()}")
    # Two state files never share a socket; the same file, reached another way, does.
    other = candidates(tmp_path / "other.db", {"XDG_RUNTIME_DIR": str(tmp_path / "run")})[0]
    assert other != first
    same = candidates(tmp_path / "x" / ".." / ".jobtui" / "state.db",
                      {"XDG_RUNTIME_DIR": str(tmp_path / "run")})[0]  # fmt: skip
    assert same == first
    assert candidates(state, {})[0] == beside


def test_too_long_socket_paths_are_skipped(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "state.db"
    paths = candidates(deep, {})
    assert all(len(os.fsencode(path)) <= MAX_SOCKET_PATH for path in paths)
    assert paths == [Path(f"/tmp/jobtui-{os.getuid()}") / paths[0].name]


def test_the_socket_folder_is_private(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "jobtui"
    make_private_folder(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)
    with pytest.raises(SocketFolderError, match="written by other users"):
        make_private_folder(folder)
    folder.chmod(0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(SocketFolderError, match="belongs to uid 65534"):
        make_private_folder(folder)


def test_clients_ignore_sockets_in_folders_others_control(tmp_path: Path) -> None:
    import socket

    from jobtui.control.paths import existing, trusted

    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run")}
    path = candidates(tmp_path / "state.db", env)[0]
    make_private_folder(path.parent)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    try:
        assert existing(tmp_path / "state.db", env) == [path]
        path.parent.chmod(0o777)  # anyone could have put it there
        assert existing(tmp_path / "state.db", env) == []
        path.parent.chmod(0o700)
        os.chown(path.parent, 65534, 65534)  # a service user's folder: root may reach it
        assert existing(tmp_path / "state.db", env) == [path]
    finally:
        listener.close()
    # Anyone else trusts only their own folders and root's.
    os.chown(path.parent, 0, 0)
    assert trusted(path.parent, me=65534)
    os.chown(path.parent, 1, 1)  # the daemon user's: not nobody's, not root's
    assert not trusted(path.parent, me=65534)
    os.chown(path.parent, 65534, 65534)
    assert trusted(path.parent, me=65534)
