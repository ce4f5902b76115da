"""Regenerate screenshots/: the console on the demo jobs.toml, on a frozen clock.

python -m jobtui.console.screenshots [--out screenshots] [--jobs jobs.toml]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ..config import load
from ..control.client import RemoteController
from ..control.controller import LocalController
from ..control.server import ControlServer
from ..engine import VirtualClock
from ..host import Host
from .app import JobtuiApp
from .widgets.job_table import JobTable

FROZEN = datetime(2026, 3, 28, 23, 58, 30, tzinfo=UTC)
SIZE = (132, 34)


async def shoot(jobs: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    async def session(name: str, keys: list[str], select: str | None = None) -> None:
        config = load(jobs)
        config.timezone = UTC  # the same pictures on every machine
        app = JobtuiApp(config, clock=VirtualClock(FROZEN), watch_file=False, grace=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            if select is not None:
                table = app.screen.query_one(JobTable)
                table.move_cursor(row=table.get_row_index(select))
                await pilot.pause()
            for key in keys:
                await pilot.press(key)
            await pilot.pause(0.3)
            app.refresh_screen()
            await pilot.pause()
            written.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    await session("main", [])
    await session("detail", ["enter"], select="nightly")
    await session("confirm", ["d"], select="heartbeat")
    await session("help", ["question_mark"])
    written.append(await attached(jobs, out))
    written.append(write_manifest(out, written))
    return written


async def attached(jobs: Path, out: Path) -> Path:
    """The console attached to a daemon: here, a host and its control server in this process,
    on the same frozen clock, with its socket in a folder of its own."""
    config = load(jobs)
    config.timezone = UTC
    clock = VirtualClock(FROZEN)
    host = Host(config, clock=clock)
    local = LocalController(host)
    with tempfile.TemporaryDirectory() as runtime:
        server = ControlServer(local, env={"XDG_RUNTIME_DIR": runtime})
        await host.start(watch=False)
        socket = await server.start()
        try:
            remote = RemoteController(config.path, UTC, sockets=lambda: [socket], wall=clock.wall)
            app = JobtuiApp(config, attach=remote)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.3)
                if remote.hello is not None:
                    remote.hello.pid = 4242  # the same picture from every run of this script
                app.refresh_screen()
                await pilot.pause()
                shot = Path(app.save_screenshot("attached.svg", str(out)))
                await app.shut_down()
        finally:
            await server.close()
            local.close()
            await host.stop(0)
    return shot


def sources_digest() -> str:
    """A hash of the console's sources (code and styles, and the controller whose views the
    screens show): what the pictures depend on."""
    package = Path(__file__).parent.parent
    digest = hashlib.sha256()
    for folder in (package / "console", package / "control"):
        for path in sorted(folder.rglob("*")):
            if (
                path.suffix in (".py", ".tcss")
                and path.is_file()
                and "__pycache__" not in path.parts
            ):
                digest.update(path.relative_to(package).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def write_manifest(out: Path, shots: list[Path]) -> Path:
    """Record which console sources the pictures were made from, so that a stale set of
    screenshots can be told from a fresh one."""
    manifest = out / "MANIFEST.txt"
    manifest.write_text(
        "Made by `python -m jobtui.console.screenshots` from the demo jobs.toml,\n"
        f"on a frozen clock at {FROZEN.isoformat()}, {SIZE[0]}x{SIZE[1]} cells.\n"
        f"console sources: sha256 {sources_digest()}\n"
        + "".join(f"{shot.name}\n" for shot in shots)
    )
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--jobs", type=Path, default=Path("jobs.toml"))
    args = parser.parse_args()
    for path in asyncio.run(shoot(args.jobs, args.out)):
        print(path)


if __name__ == "__main__":
    main()
