"""The parts of jobs.toml about Python code beyond a job's own function: a job's ``run_mode``
(thread, async or process) and the scheduler's ``middleware``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine import InvalidJobOption
from ..engine.job import classify_target
from ..engine.middleware import Middleware, check_middleware
from ..engine.processes import RUN_MODES, check_run_mode
from .imports import check_targets, load_target
from .trust import untrusted_module

TARGET_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def fit_run_mode(target: Any, options: dict[str, Any], own: bool, job_id: str) -> str | None:
    """What is wrong with the job's run_mode for its target, or None. A run_mode that came
    from [defaults] and does not fit this kind of job (a command, or "thread" for an async
    function) is dropped: a default applies to the jobs it can apply to."""
    mode = options.get("run_mode")
    if mode not in RUN_MODES:
        return None  # no run_mode, or one the option check already reported
    try:
        kind, _ = classify_target(target, job_id)
        check_run_mode(kind, target, mode, job_id)
    except InvalidJobOption as exc:
        if own or (mode == "process" and callable(target)):
            return exc.reason
        del options["run_mode"]
    return None


def read_middleware(
    value: object, base: Path, timeout: float, report: Callable[[str], None]
) -> list[Middleware]:
    """[scheduler] middleware = ["module:function", ...]: each imported in a child process
    first (as job targets are), then here; what is wrong goes to ``report``."""
    if not isinstance(value, list) or not all(
        isinstance(item, str) and TARGET_SPEC.match(item.strip()) for item in value
    ):
        report(
            'expected a list of "module:function" async functions, such as '
            f'["myapp.middleware:timing"], got {value!r}'
        )
        return []
    specs = [item.strip() for item in value]
    errors = [found for spec in specs if (found := untrusted_module(spec.partition(":")[0], base))]
    if not errors and specs:
        errors = [error for error in check_targets(specs, str(base), timeout).values() if error]
    loaded: list[Middleware] = []
    for spec in specs if not errors else ():
        try:
            loaded.append(check_middleware(load_target(spec, str(base))))
        except InvalidJobOption:
            errors.append(f"{spec} is not an async function taking (run, call_next)")
    for error in errors:
        report(error)
    return loaded if not errors else []
