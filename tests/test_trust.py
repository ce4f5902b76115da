"""A jobs.toml someone else can change is refused, as cron refuses it: the real `jobtui` run as
root against files owned by `nobody` and folders anyone can write, and run as `nobody`."""

from __future__ import annotations

import importlib.util
import os
import pwd
import py_compile
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import Headless, finished

JOBTUI = [sys.executable, "-m", "jobtui.cli"]
NOBODY = pwd.getpwnam("nobody").pw_uid
STRANGER = 4242  # a uid no account has: a file of someone else's


def write(path: Path, text: str, *, owner: int = 0) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    os.chown(path, owner, -1)
    return path


def folder(path: Path) -> Path:
    """A folder only its owner can write, whatever umask the tests run under (002 makes
    group-writable ones, which jobtui refuses)."""
    path.mkdir()
    path.chmod(0o755)
    return path


def jobtui(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JOBTUI, *map(str, args)], capture_output=True, text=True, timeout=60)


GOOD = """
    [jobs.tick]
    command = "true"
    every = "1h"
"""


def test_a_file_owned_by_another_user_is_refused_by_every_command(tmp_path):
    path = write(tmp_path / "jobs.toml", GOOD, owner=NOBODY)
    expected = (
        f"{path}: belongs to nobody, not to root: nobody could change what jobtui runs as root, "
        f"so jobtui refuses it (as cron does): run `chown root {path}`"
    )
    for args in (["check"], ["list"], ["history"], [], ["--headless"]):
        done = jobtui(*args, path)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / ".jobtui").exists()  # refused before anything was created

    os.chown(path, 0, -1)
    assert jobtui("check", path).returncode == 0


def test_a_folder_on_the_way_that_others_can_write_is_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    folder(shared)
    folder(shared / "app")
    path = write(shared / "app" / "jobs.toml", GOOD)
    shared.chmod(0o777)
    done = jobtui("check", path)
    assert done.returncode == 2
    assert (
        f"is in {shared}, a folder writable by group and others (mode 0777, no sticky bit)"
        in done.stderr
    )
    assert f"run `chmod go-w {shared}`" in done.stderr

    # A group-writable folder (a 002 umask makes them) is someone else's to change too.
    shared.chmod(0o775)
    done = jobtui("check", path)
    assert done.returncode == 2 and f"run `chmod g-w {shared}`" in done.stderr

    # With the sticky bit (as /tmp has it), others cannot replace what is not theirs.
    shared.chmod(0o1777)
    assert jobtui("check", path).returncode == 0

    # A folder on the way that belongs to someone else is theirs to rearrange.
    shared.chmod(0o755)
    os.chown(shared, NOBODY, -1)
    done = jobtui("check", path)
    assert done.returncode == 2
    assert f"is in the folder {shared}, which belongs to nobody" in done.stderr


def test_a_symlink_is_checked_where_it_points_and_where_it_lies(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    folder(elsewhere)
    target = write(elsewhere / "jobs.toml", GOOD, owner=NOBODY)
    link = tmp_path / "jobs.toml"
    link.symlink_to(target)
    done = jobtui("check", link)
    assert done.returncode == 2
    assert f"{link}: is a symlink to {target}, which belongs to nobody" in done.stderr

    os.chown(target, 0, -1)
    assert jobtui("check", link).returncode == 0
    # The link itself lies in a folder others can write: they could point it elsewhere.
    linked = tmp_path / "linked"
    folder(linked)
    (linked / "jobs.toml").symlink_to(target)
    (tmp_path / "via").symlink_to(linked)
    linked.chmod(0o777)
    done = jobtui("check", tmp_path / "via" / "jobs.toml")
    assert done.returncode == 2
    assert f"is reached through the symlink {linked}/jobs.toml" in done.stderr


def test_a_run_module_beside_the_file_owned_by_another_user_is_refused_unimported(tmp_path):
    marker = tmp_path / "imported"
    module = write(
        tmp_path / "tasks.py",
        f"open({str(marker)!r}, 'w').close()\n\ndef sync():\n    pass\n",
        owner=NOBODY,
    )
    path = write(tmp_path / "jobs.toml", '[jobs.sync]\nrun = "tasks:sync"\nevery = "1h"\n')
    done = jobtui("check", path)
    assert done.returncode == 2
    where = f'{path}:2:1: job "sync", key "run"'
    assert f"{where}: module tasks: {module} belongs to nobody" in done.stderr
    assert not marker.exists()  # not even the import check ran it

    # Python would run a cached .pyc in place of the source: it is checked too.
    os.chown(module, 0, -1)
    cached = Path(importlib.util.cache_from_source(str(module)))
    py_compile.compile(str(module), cfile=str(cached))
    os.chown(cached, NOBODY, -1)
    done = jobtui("check", path)
    assert done.returncode == 2
    assert f"{where}: module tasks: {cached} belongs to nobody" in done.stderr
    assert not marker.exists()

    os.chown(cached, 0, -1)
    assert jobtui("check", path).returncode == 0
    assert marker.exists()

    # A package's __init__ runs too, and a module inside a folder others can write is theirs.
    package = tmp_path / "pkg"
    folder(package)
    write(package / "__init__.py", "")
    write(package / "jobs.py", "def sync():\n    pass\n")
    write(path, '[jobs.sync]\nrun = "pkg.jobs:sync"\nevery = "1h"\n')
    package.chmod(0o777)
    done = jobtui("check", path)
    assert done.returncode == 2
    assert f"module pkg.jobs: {package}/__init__.py is in {package}, a folder" in done.stderr


def test_a_reload_of_a_file_that_became_untrusted_is_refused_and_the_old_jobs_run_on(tmp_path):
    config = write(tmp_path / "jobs.toml", '[jobs.tick]\ncommand = "echo tick"\nevery = "1s"\n')
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: finished(ev, "tick"))
        # Replaced (saved by rename) with a file of someone else's that adds a job.
        replacement = write(
            tmp_path / "jobs.toml.new",
            '[jobs.tick]\ncommand = "echo tick"\nevery = "1s"\n'
            '[jobs.evil]\ncommand = "echo evil"\nevery = "1s"\n',
            owner=NOBODY,
        )
        replacement.replace(config)
        events = headless.wait_for(lambda ev: any(e["event"] == "reload_failed" for e in ev))
        failure = next(e for e in events if e["event"] == "reload_failed")
        assert "belongs to nobody" in failure["problem"]
        seen = len(finished(events, "tick"))
        events = headless.wait_for(lambda ev: len(finished(ev, "tick")) > seen)
        assert not finished(events, "evil")
    finally:
        headless.proc.kill()
        headless.proc.wait(timeout=10)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder nobody can read (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def as_nobody(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The interpreter may live under /root (mode 0700): the capability to search folders lets
    # nobody reach it. It changes nothing the check looks at (owners and modes, not access).
    setpriv = [
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
    ]  # fmt: skip
    return subprocess.run(
        [*setpriv, *JOBTUI, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_a_user_runs_their_own_and_roots_files_but_not_another_users(open_folder):
    mine = write(open_folder / "mine.toml", GOOD, owner=NOBODY)
    roots = write(open_folder / "roots.toml", GOOD)
    theirs = write(open_folder / "theirs.toml", GOOD, owner=STRANGER)
    assert as_nobody("check", mine, cwd=open_folder).returncode == 0
    assert as_nobody("check", roots, cwd=open_folder).returncode == 0
    done = as_nobody("check", theirs, cwd=open_folder)
    assert done.returncode == 2
    assert (
        f"{theirs}: belongs to uid {STRANGER}, not to you (nobody) or root: uid {STRANGER} could "
        "change what jobtui runs as nobody" in done.stderr
    )


def test_the_import_check_runs_nothing_from_the_current_folder(tmp_path):
    # Run from a folder others may fill (as /tmp is): a json.py there must not run as root.
    here = tmp_path / "here"
    folder(here)
    marker = tmp_path / "imported"
    write(here / "json.py", f"open({str(marker)!r}, 'w').close()\nfrom json import *\n")
    write(tmp_path / "tasks.py", "def sync():\n    pass\n")
    path = write(tmp_path / "jobs.toml", '[jobs.sync]\nrun = "tasks:sync"\nevery = "1h"\n')
    # -P as the `jobtui` script runs: `python -m` itself would import from the current folder.
    command = [sys.executable, "-P", "-m", "jobtui.cli", "check", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=here)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_a_pycache_folder_others_can_write_is_refused_before_a_pyc_is_there(tmp_path):
    # Whoever can write __pycache__ can put a .pyc there later, and Python runs it in place of
    # the source: an empty one others can write is as bad as a planted file.
    module = write(tmp_path / "tasks.py", "def sync():\n    pass\n")
    path = write(tmp_path / "jobs.toml", '[jobs.sync]\nrun = "tasks:sync"\nevery = "1h"\n')
    cache = Path(importlib.util.cache_from_source(str(module))).parent
    cache.mkdir()
    cache.chmod(0o777)
    done = jobtui("check", path)
    assert done.returncode == 2
    assert f"module tasks: {cache}/" in done.stderr
    assert f"is in {cache}, a folder writable by group and others" in done.stderr
    cache.chmod(0o755)
    assert jobtui("check", path).returncode == 0
