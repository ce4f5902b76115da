"""Which console `jobtui jobs.toml` opens: attached to the jobtui that already runs the file's
state (a daemon, or another console), or one that hosts the scheduler itself.

The state file has one owner (its lock); whoever owns it answers on the state file's control
socket. So: a socket that answers means attach; none means this console becomes the owner. A
socket file without a live daemon behind it (connect fails) counts as none.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..config import Config, ConfigError, load
from ..control.client import RemoteController
from ..control.protocol import Hello
from ..control.sync_client import Disconnected, NoDaemon, RemoteError, SyncClient
from ..engine.printable import printable, printable_text
from ..host import open_store
from ..store import StateStore, StoreError

# A daemon takes the state's lock before its socket answers: a console that finds the lock
# taken waits this long for the socket before it gives up.
STARTING_DAEMON_WAIT = 3.0
PROBE_TIMEOUT = 2.0  # a daemon answers its hello at once, even while busy


def open_console(path: Path, *, attach_only: bool = False) -> int:
    """Run the console on jobs.toml at ``path``; the exit status. ``attach_only``: never
    host, fail (1) when nothing runs the file."""
    command = "jobtui attach" if attach_only else "jobtui"
    try:
        config = load(path)
    except ConfigError as exc:
        print(printable_text(str(exc)), file=sys.stderr)
        return 2
    try:
        found = find_daemon(config)
        if found is None and attach_only:
            print(nothing_runs(config, command), file=sys.stderr)
            return 1
        if found is None:
            try:
                store = open_store(config)
            except StoreError as exc:
                # The owner may be a daemon starting up: its socket comes after its lock.
                found = wait_for_daemon(config, STARTING_DAEMON_WAIT)
                if found is None:
                    print(f"jobtui: {printable_text(str(exc))}", file=sys.stderr)
                    return 1
            else:
                return host_console(config, store)
    except RemoteError as exc:  # another user's daemon, or another version's
        print(f"{command}: the jobtui running {printable(str(path))} will not talk to this one: "
              f"{printable(str(exc))}", file=sys.stderr)  # fmt: skip
        return 1
    return attached_console(config)


def find_daemon(config: Config) -> Hello | None:
    """The greeting of the jobtui that runs this config's state, if one answers. Raises
    RemoteError when it answers but refuses this user or speaks another protocol."""
    try:
        with SyncClient.connect(config.state_path, timeout=PROBE_TIMEOUT) as client:
            return client.hello
    except (NoDaemon, Disconnected, TimeoutError):
        return None


def wait_for_daemon(config: Config, timeout: float) -> Hello | None:
    deadline = time.monotonic() + timeout
    while True:
        found = find_daemon(config)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)  # polling for a socket that is about to appear, with a deadline


def nothing_runs(config: Config, command: str) -> str:
    path = printable(str(config.path))
    return (
        f"{command}: nothing runs {path}: no jobtui answers for its state "
        f"{printable(config.state_shown)}.\n"
        f"Start one with `jobtui {path} --headless` (or a systemd unit running that), "
        f"or open `jobtui {path}` to run the jobs in a console."
    )


def attached_console(config: Config) -> int:
    from .app import JobtuiApp

    remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
    app = JobtuiApp(config, attach=remote)
    app.run()
    return app.return_code or 0


def host_console(config: Config, store: StateStore) -> int:
    from .app import JobtuiApp

    # Quitting the console asks first, and the user has then chosen to stop the runs: they are
    # cancelled at once (commands: SIGTERM, then SIGKILL after kill_grace), not waited for.
    app = JobtuiApp(config, store=store, grace=0, serve=True, tune_runtime=True)
    try:
        app.run()
        # Textual reports a crash (say, a stylesheet it cannot read) and returns normally: the
        # exit status must still say it failed, for systemd, scripts and CI.
        return app.return_code or 0
    finally:
        if app.host is not None:
            app.host.kill_leftovers()
