"""Importing ``module:function`` job targets.

The check imports every target in a child process with a time limit, so that a module that
hangs, calls ``sys.exit`` or crashes the interpreter at import cannot take jobtui down; only
targets that passed are then imported into jobtui itself.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

_CHECK = r"""
import importlib, json, sys, traceback
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


def check_targets(specs: list[str], base_dir: str, timeout: float = 10.0) -> dict[str, str | None]:
    """Import each ``module:function`` in a child process; None for the ones that are fine,
    else what went wrong."""
    results: dict[str, str | None] = {}
    remaining = list(specs)
    while remaining:
        output, code = _run_check(remaining, base_dir, timeout)
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


def _run_check(specs: list[str], base_dir: str, timeout: float) -> tuple[str, int | None]:
    try:
        done = subprocess.run(
            # -P: without it, "-c" puts the current folder first on the import path, and a
            # json.py there (in /tmp, say) would run, as root perhaps, before the check.
            [sys.executable, "-P", "-c", _CHECK, base_dir, *specs],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        return (raw.decode(errors="replace") if isinstance(raw, bytes) else raw), None
    return done.stdout, done.returncode


def load_target(spec: str, base_dir: str) -> Callable[..., Any]:
    """Import ``module:function`` into this process (after `check_targets` said it is fine)."""
    if base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]
