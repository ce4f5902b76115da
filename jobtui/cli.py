"""The `jobtui` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui",
        description="A job scheduler for Python with a live terminal console.",
        epilog="As a library: from jobtui import Scheduler, Run  (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"jobtui {__version__}")
    parser.add_argument("file", nargs="?", help="a jobs.toml file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.file is None:
        build_parser().print_help()
        return 0
    print(
        "jobtui: this version is the scheduling engine only (use it from Python: "
        "from jobtui import Scheduler); reading jobs.toml is not in it yet",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
