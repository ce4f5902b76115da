"""Importing ``module:function`` job targets.

The check imports every target in a child process with a time limit, so that a module that
hangs, calls ``sys.exit`` or crashes the interpreter at import cannot take jobtui down; only
targets that passed are then imported into jobtui itself.

Starting that Python takes ~25 ms, as long as the imports of a small job module; so the loader
starts it (``start_check``) as soon as the file is parsed and shows run targets, and the child
waits for the list of targets on its standard input while the jobs are checked.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

_CHECK = r"""
import importlib, json, os, sys, traceback
specs = json.loads(sys.stdin.read())
# The targets then see what they saw when they came as arguments: no input, and the specs
# after the folder in sys.argv.
devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
os.close(devnull)
sys.argv += specs
sys.path.insert(0, sys.argv[1])
for spec in sys.argv[2:]:
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except BaseException as exc:
        where = ""
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            where = f" ({frames[-1].filename}:{frames[-1].lineno})"
        text = f"importing {module_name} failed: {type(exc).__name__}: {exc}{where}"
        print(json.dumps([spec, text]), flush=True)
        continue
    origin = getattr(obj, "__file__", None) or module_name
    error = None
    for part in attr.split("."):
        if not hasattr(obj, part):
            error = f'module {module_name} ({origin}) has no attribute "{attr}"'
            break
        obj = getattr(obj, part)
    if error is None and not callable(obj):
        error = f"{spec} is a {type(obj).__name__}, not something jobtui can call"
    print(json.dumps([spec, error]), flush=True)
"""


Child = subprocess.Popen[str]


def _start(base_dir: str) -> Child:
    return subprocess.Popen(
        # -P: without it, "-c" puts the current folder first on the import path, and a
        # json.py there (in /tmp, say) would run, as root perhaps, before the check.
        [sys.executable, "-P", "-c", _CHECK, base_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def start_check(base_dir: str) -> Child | None:
    """A child for `check_targets`, started now; it imports nothing until given the targets.
    None if it could not be started (check_targets then starts one, and says why not)."""
    try:
        return _start(base_dir)
    except OSError:
        return None


def discard_check(child: Child | None) -> None:
    """End a child from `start_check` that was not given targets."""
    if child is not None:
        with child:  # closes its pipes and waits for it
            child.kill()


def check_targets(
    specs: list[str], base_dir: str, timeout: float = 10.0, started: Child | None = None
) -> dict[str, str | None]:
    """Import each ``module:function`` in a child process (``started``, from `start_check` with
    the same ``base_dir``, if given); None for the ones that are fine, else what went wrong."""
    results: dict[str, str | None] = {}
    remaining = list(specs)
    while remaining:
        output, code = _run_check(started or _start(base_dir), remaining, timeout)
        started = None
        for line in output.splitlines():
            try:
                spec, error = json.loads(line)
            except ValueError:
                continue  # the module printed something of its own
            results[spec] = error
        remaining = [spec for spec in remaining if spec not in results]
        if remaining:
            # The first unanswered target hung or ended the process; the rest get a new child.
            culprit = remaining.pop(0)
            module = culprit.partition(":")[0]
            if code is None:
                results[culprit] = (
                    f"importing {module} took longer than {timeout:g} s (does it hang?)"
                )
            else:
                results[culprit] = f"importing {module} ended the process (exit status {code})"
    return results


def _run_check(child: Child, specs: list[str], timeout: float) -> tuple[str, int | None]:
    """Give the child its targets; what it printed, and its exit status (None: timed out).
    As subprocess.run would: on a timeout, what it printed until then."""
    with child:
        try:
            output, _ = child.communicate(json.dumps(specs), timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            child.kill()
            child.wait()
            raw = exc.stdout or ""
            return (raw.decode(errors="replace") if isinstance(raw, bytes) else raw), None
        except BaseException:
            child.kill()
            raise
    return output, child.returncode


def load_target(spec: str, base_dir: str) -> Callable[..., Any]:
    """Import ``module:function`` into this process (after `check_targets` said it is fine)."""
    if base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]
