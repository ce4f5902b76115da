"""`jobtui status` on one `--headless` host of two sharing a PostgreSQL state shows the run
going on the other host, with its host, as real processes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .conftest import wait_until
from .test_cli import jobtui, write
from .test_hosts import named, start_host, stop_hosts

JOBS = """
[scheduler]
state = "{url}"
timezone = "UTC"

[jobs.copy]
command = "echo '::progress 40%'; echo '::status copying'; sleep 60"
cron = "0 0 1 1 *"
"""


def status(config: Path, *args: str) -> str:
    done = jobtui("status", str(config), *args, env=named(config.parent.name))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_on_one_host_shows_the_run_going_on_another(tmp_path, pg_cluster, pg_database):
    url = pg_cluster.url(pg_database)
    configs = {}
    for name in ("h1", "h2"):
        (tmp_path / name).mkdir()
        configs[name] = write(tmp_path / name / "jobs.toml", JOBS.format(url=url))
    hosts = {name: start_host(configs[name], name, tmp_path / f"{name}.log") for name in configs}
    try:
        for name in hosts:  # each daemon answers on its own state's socket
            wait_until(
                lambda n=name: jobtui("status", str(configs[n]), env=named(n)).returncode == 0
            )
        started = jobtui("run", "copy", str(configs["h2"]), env=named("h2"))
        assert started.returncode == 0, started.stderr

        def copy_on_h1() -> dict:
            record = json.loads(status(configs["h1"], "--json"))
            return next(job for job in record["jobs"] if job["id"] == "copy")

        wait_until(lambda: copy_on_h1()["running"] and copy_on_h1()["running"][0]["status"])
        (run,) = copy_on_h1()["running"]
        assert (run["host"], run["progress"], run["status"]) == ("h2", 0.4, "copying")
        summary = json.loads(status(configs["h1"], "--json"))["summary"]
        assert (summary["host"], summary["running"], summary["running_elsewhere"]) == ("h1", 1, 1)
        text = status(configs["h1"])
        assert "1 running (1 on other hosts)" in text
        assert " on h2 (manual)" in text and "copying" in text
    finally:
        stop_hosts(hosts.values(), signal.SIGTERM)
