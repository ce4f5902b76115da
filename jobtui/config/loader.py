"""Reading jobs.toml into job specifications, reporting every problem at once."""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any

from ..engine import InvalidJobOption, format_duration
from ..engine.collector import collector_paused
from ..engine.job import DEFAULT_OPTIONS, OPTION_NAMES, check_max_concurrency
from ..engine.process_inputs import NUL_IN_COMMAND
from ..engine.timezones import local_zone, resolve_timezone
from ..engine.triggers import TRIGGER_KEYS, make_trigger
from .hooks import HOOK_KEYS, attach_hooks
from .imports import Child, check_targets, discard_check, load_target, start_check
from .locator import Locator
from .problems import ConfigError, Problem
from .pyjobs import fit_run_mode, read_middleware
from .spec import Config, JobSpec
from .statedb import LEASE, state_location
from .syntax import parse_toml
from .trust import untrusted, untrusted_module

TARGET_KEYS = ("run", "command")
JOB_KEYS = frozenset({*TARGET_KEYS, *TRIGGER_KEYS, "timezone", "paused", *OPTION_NAMES, *HOOK_KEYS})
DEFAULT_KEYS = frozenset({"timezone", *OPTION_NAMES, *HOOK_KEYS})
SCHEDULER_KEYS = frozenset(
    {
        "timezone",
        "state",
        "max_concurrency",
        "stop_grace",
        "keep_runs",
        "keep_days",
        "lease",
        "middleware",
    }
)
TOP_KEYS = frozenset({"scheduler", "defaults", "jobs", "console"})
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: $ lets "id\n" through
TARGET_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MAX_FILE_BYTES = 1024 * 1024
# json.dumps(kept, sort_keys=True, default=str), without making the encoder again for each job
# (the fingerprint is stored: its text must not change).
_FINGERPRINT = json.JSONEncoder(sort_keys=True, default=str)
# What is said when the file cannot be read, or is not there (the console's banner tells
# these apart from a file that does not validate).
UNREADABLE = "cannot read it"
NO_FILE = "no such file"


def load(path: str | os.PathLike[str], *, import_timeout: float = 10.0) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem found."""
    # Parsing and checking makes several objects per job that all outlive the load (10,000
    # jobs set off a full collection, ~20 ms, walking what was just made): see collector.py.
    with collector_paused():
        return _Loader(Path(path), import_timeout).load()


class _Loader:
    def __init__(self, path: Path, import_timeout: float) -> None:
        self.path = path
        self.shown = str(path)
        self.import_timeout = import_timeout
        self.problems: list[Problem] = []
        self.bad_defaults: set[str] = set()
        self.warnings: list[Problem] = []
        self.locator = Locator("")
        self.state_url: str | None = None
        self.lease = LEASE
        self.check_child: Child | None = None  # the import check's, started early

    # -- reporting ------------------------------------------------------------------------
    def problem(
        self,
        message: str,
        *,
        table: tuple[str, ...] = (),
        key: str | None = None,
        job: str | None = None,
        warning: bool = False,
    ) -> None:
        line, col = self.locator.key(table, key) if key else self.locator.table(*table)
        section = table[0] if table and table[0] != "jobs" else None
        found = Problem(
            self.shown, line, col, message, job=job, key=key, warning=warning, section=section
        )
        (self.warnings if warning else self.problems).append(found)

    def fail_now(
        self, message: str, line: int | None = None, col: int | None = None
    ) -> ConfigError:
        return ConfigError([Problem(self.shown, line, col, message)])

    # -- the file -------------------------------------------------------------------------
    def read(self) -> str:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise self.fail_now(NO_FILE) from None
        except OSError as exc:
            raise self.fail_now(f"{UNREADABLE}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise self.fail_now("is not a regular file")
        distrust = untrusted(self.path)
        if distrust is not None:
            raise self.fail_now(distrust)
        if info.st_size > MAX_FILE_BYTES:
            raise self.fail_now(f"is {info.st_size} bytes; a jobs file may be at most 1 MiB")
        try:
            data = self.path.read_bytes()
        except OSError as exc:  # a 0600 file of another user, an I/O error
            raise self.fail_now(f"{UNREADABLE}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise self.fail_now(
                f"byte {exc.start} is not valid UTF-8: save the file as UTF-8", line, col
            ) from None
        return text.removeprefix("\ufeff")

    # -- the tables -----------------------------------------------------------------------
    def load(self) -> Config:
        text = self.read()
        data = parse_toml(text, self.shown)
        jobs_found = data.get("jobs")
        if isinstance(jobs_found, dict) and any(
            isinstance(table, dict) and "run" in table for table in jobs_found.values()
        ):  # the import check's Python starts while the jobs are checked (see imports.py)
            self.check_child = start_check(str(self.path.parent.resolve()))
        try:
            return self.validate(data, text)
        finally:
            discard_check(self.check_child)  # unless imports() gave it the targets

    def validate(self, data: dict[str, Any], text: str) -> Config:
        self.locator = Locator(text)
        for key in data:
            if key not in TOP_KEYS:
                self.unknown(key, TOP_KEYS, table=(), what="table")
        scheduler = self.table(data, "scheduler")
        defaults = self.table(data, "defaults")
        zone, state_path, max_concurrency, stop_grace = self.scheduler(scheduler)
        keep_runs, keep_days = self.retention(scheduler)
        keymap = self.console(self.table(data, "console"))
        self.defaults(defaults, zone)
        jobs_table = self.table(data, "jobs")
        jobs: dict[str, JobSpec] = {}
        usable = {  # what each job inherits: [defaults] less the keys reported bad
            k: v for k, v in defaults.items() if k in DEFAULT_KEYS and k not in self.bad_defaults
        }
        for job_id, table in jobs_table.items():
            if not isinstance(table, dict):
                self.problem(
                    "each job is a table: write [jobs.NAME] and its keys below it",
                    table=("jobs",),
                    key=job_id,
                )
                continue
            spec = self.job(job_id, table, usable, zone)
            if spec is not None:
                jobs[job_id] = spec
        if not jobs_table and not self.problems:
            self.problem(
                "declares no jobs: add a [jobs.NAME] table with a command or run key", warning=True
            )
        self.imports(jobs)
        attach_hooks(self, defaults, jobs_table, jobs)
        middleware = read_middleware(
            scheduler.get("middleware", []), self.path.parent.resolve(), self.import_timeout,
            lambda text: self.problem(text, table=("scheduler",), key="middleware"),
        )  # fmt: skip
        if self.problems:
            found = sorted(self.problems + self.warnings, key=lambda p: (p.line or 0, p.col or 0))
            raise ConfigError(found)
        return Config(
            path=self.path,
            timezone=zone,
            state_path=state_path,
            max_concurrency=max_concurrency,
            stop_grace=stop_grace,
            jobs=jobs,
            warnings=self.warnings,
            keep_runs=keep_runs,
            keep_days=keep_days,
            keymap=keymap,
            state_url=self.state_url,
            lease=self.lease,
            middleware=middleware,
        )

    def table(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(f"[{name}] must be a table", key=name)
            return {}
        return value

    def unknown(
        self,
        key: str,
        accepted: frozenset[str],
        *,
        table: tuple[str, ...],
        what: str,
        job: str | None = None,
    ) -> None:
        close = difflib.get_close_matches(key, sorted(accepted), n=1, cutoff=0.6)
        hint = (
            f' (did you mean "{close[0]}"?)'
            if close
            else f"; accepted: {', '.join(sorted(accepted))}"
        )
        self.problem(f"unknown {what}{hint}", table=table, key=key, job=job)

    def scheduler(self, table: dict[str, Any]) -> tuple[tzinfo, Path, int | None, float]:
        where = ("scheduler",)
        for key in table:
            if key not in SCHEDULER_KEYS:
                self.unknown(key, SCHEDULER_KEYS, table=where, what="key")
        zone: tzinfo = local_zone()
        zone_name = table.get("timezone")
        if zone_name is not None:
            try:
                zone = resolve_timezone(zone_name)
            except InvalidJobOption as exc:
                self.problem(exc.reason, table=where, key="timezone")
        state = table.get("state", ".jobtui/state.db")
        if not isinstance(state, str) or not state.strip():
            self.problem("expected a file path as text", table=where, key="state")
            state = ".jobtui/state.db"
        self.state_url, state_path, self.lease = state_location(self, state, table, where)
        try:
            max_concurrency = check_max_concurrency(table.get("max_concurrency"))
        except InvalidJobOption as exc:
            self.problem(exc.reason, table=where, key="max_concurrency")
            max_concurrency = None
        stop_grace = 30.0
        if "stop_grace" in table:
            try:
                stop_grace = DEFAULT_OPTIONS.with_changes(
                    None, zone, kill_grace=table["stop_grace"]
                ).kill_grace
            except InvalidJobOption as exc:
                self.problem(exc.reason, table=where, key="stop_grace")
        return zone, state_path, max_concurrency, stop_grace

    def console(self, table: dict[str, Any]) -> dict[str, str]:
        """[console.keys]: binding id = "keys", such as run = "R" or quit = "q,ctrl+c"."""
        for key in table:
            if key != "keys":
                self.unknown(key, frozenset({"keys"}), table=("console",), what="key")
        keys = table.get("keys", {})
        if not isinstance(keys, dict):
            self.problem("expected a table of binding ids to keys", table=("console",), key="keys")
            return {}
        keymap = {}
        for binding_id, value in keys.items():
            if not isinstance(value, str) or not value.strip() or not value.isprintable():
                self.problem(
                    f'expected keys as text, such as "R" or "ctrl+r,f5", got {value!r}',
                    table=("console", "keys"),
                    key=binding_id,
                )
            else:
                keymap[binding_id] = value
        return keymap

    def retention(self, table: dict[str, Any]) -> tuple[int | None, float | None]:
        keep_runs = table.get("keep_runs", 1000)
        if isinstance(keep_runs, bool) or not isinstance(keep_runs, int) or keep_runs < 1:
            self.problem(
                f"expected a whole number of at least 1, got {keep_runs!r}",
                table=("scheduler",),
                key="keep_runs",
            )
            keep_runs = 1000
        keep_days = table.get("keep_days")
        if keep_days is not None and (
            isinstance(keep_days, bool) or not isinstance(keep_days, int | float) or keep_days <= 0
        ):
            self.problem(
                f"expected a number of days above 0, got {keep_days!r}",
                table=("scheduler",),
                key="keep_days",
            )
            keep_days = None
        return keep_runs, keep_days

    def defaults(self, table: dict[str, Any], zone: tzinfo) -> None:
        """Check [defaults] once, so that a bad default is reported once, not once per job."""
        where = ("defaults",)
        for key, value in table.items():
            if key in TRIGGER_KEYS or key in TARGET_KEYS:
                self.problem(f"{key} belongs to a job, not to [defaults]", table=where, key=key)
            elif key not in DEFAULT_KEYS:
                self.unknown(key, DEFAULT_KEYS, table=where, what="key")
            elif key == "timezone":
                try:
                    resolve_timezone(value)
                except InvalidJobOption as exc:
                    self.problem(exc.reason, table=where, key=key)
                    self.bad_defaults.add(key)
            elif key not in HOOK_KEYS:  # checked with the jobs' by attach_hooks
                try:
                    DEFAULT_OPTIONS.with_changes(None, zone, **{key: value})
                except InvalidJobOption as exc:
                    self.problem(exc.reason, table=where, key=key)
                    self.bad_defaults.add(key)

    # -- one job --------------------------------------------------------------------------
    def job(
        self, job_id: str, table: dict[str, Any], defaults: dict[str, Any], scheduler_zone: tzinfo
    ) -> JobSpec | None:
        where = ("jobs", job_id)
        before = len(self.problems)
        if not JOB_ID.match(job_id):
            self.problem(
                "a job id is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
                'or digit (use name = "..." for free text)',
                table=where,
                job=job_id,
            )
        for key in table:
            if key not in JOB_KEYS:
                self.unknown(key, JOB_KEYS, table=where, what="key", job=job_id)
        merged = dict(defaults)  # the usable ones, see validate
        merged.update({k: v for k, v in table.items() if k in JOB_KEYS})

        def origin(key: str) -> tuple[str, ...]:
            return where if key in table else ("defaults",)

        zone = scheduler_zone
        zone_name = merged.get("timezone")
        if zone_name is not None:
            try:
                zone = resolve_timezone(zone_name, job_id=job_id)
            except InvalidJobOption as exc:
                self.problem(exc.reason, table=origin("timezone"), key="timezone", job=job_id)
        target, target_text = self.target(job_id, table, where)
        triggers = {k: merged[k] for k in TRIGGER_KEYS if k in table}
        if len(triggers) > 1:
            names = list(triggers)
            self.problem(
                f"a job takes one trigger, got {' and '.join(names)}: keep one of them",
                table=where,
                key=names[1],
                job=job_id,
            )
        else:
            try:
                make_trigger(zone=zone, job_id=job_id, **triggers)
            except InvalidJobOption as exc:
                self.problem(exc.reason, table=where, key=exc.key, job=job_id)
        options = {k: v for k, v in merged.items() if k in OPTION_NAMES}
        if isinstance(options.get("cwd"), str) and "\0" not in options["cwd"]:
            options["cwd"] = str((self.path.parent / options["cwd"]).resolve())
        for key, value in options.items():
            try:
                DEFAULT_OPTIONS.with_changes(job_id, zone, **{key: value})
            except InvalidJobOption as exc:
                self.problem(exc.reason, table=origin(key), key=key, job=job_id)
        if "command" in table and target is not None:
            mode_problem = fit_run_mode(target, options, "run_mode" in table, job_id)
            if mode_problem:
                self.problem(mode_problem, table=origin("run_mode"), key="run_mode", job=job_id)
        paused = merged.get("paused", False)
        if not isinstance(paused, bool):
            self.problem(
                f"expected true or false, got {paused!r}", table=where, key="paused", job=job_id
            )
        self.check_at(job_id, triggers.get("at"), zone, where)
        if table.get("run_immediately") is True and not triggers:
            self.problem(
                "a job with no trigger never starts by itself, not even at start-up: add a "
                "trigger (every, cron or at), or remove run_immediately (the job then runs only "
                "when started by hand)",
                table=where,
                key="run_immediately",
                job=job_id,
                warning=True,
            )
        if len(self.problems) > before:
            return None
        kept = {k: v for k, v in {**merged, **triggers}.items() if k not in HOOK_KEYS}
        fingerprint = _FINGERPRINT.encode(kept)
        return JobSpec(
            id=job_id,
            target=target,
            target_text=target_text,
            target_key="run" if "run" in table else "command",
            trigger=triggers,
            options=options,
            timezone=zone_name,
            paused=paused,
            line=self.locator.table(*where)[0],
            fingerprint=fingerprint,
        )

    def target(self, job_id: str, table: dict[str, Any], where: tuple[str, ...]) -> tuple[Any, str]:
        given = [k for k in TARGET_KEYS if k in table]
        if not given:
            self.problem(
                'says nothing to run: add command = "..." (a shell command or a list) or '
                'run = "module:function"',
                table=where,
                job=job_id,
            )
            return None, ""
        if len(given) == 2:
            self.problem(
                "has both run and command: keep one of them", table=where, key="command", job=job_id
            )
            return None, ""
        key = given[0]
        value = table[key]
        if key == "command":
            parts = value if isinstance(value, list) else [value]
            if any(isinstance(part, str) and "\0" in part for part in parts):
                self.problem(NUL_IN_COMMAND, table=where, key=key, job=job_id)
                return None, ""
            if isinstance(value, str) and value.strip():
                return value, value
            if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
                return list(value), " ".join(value)
            self.problem(
                'expected a shell command as text, or a list such as ["pg_dump", "-f", "db.sql"]',
                table=where,
                key=key,
                job=job_id,
            )
            return None, ""
        if not isinstance(value, str) or not TARGET_SPEC.match(value.strip()):
            self.problem(
                f'expected "module:function" (such as "myapp.tasks:sync"), got {value!r}',
                table=where,
                key=key,
                job=job_id,
            )
            return None, ""
        return value.strip(), value.strip()

    def check_at(self, job_id: str, at: object, zone: tzinfo, where: tuple[str, ...]) -> None:
        if isinstance(at, date) and not isinstance(at, datetime):
            return  # make_trigger already said a date alone is not enough
        if isinstance(at, time):
            return
        if isinstance(at, datetime):
            moment = at if at.tzinfo else at.replace(tzinfo=zone)
            if moment < datetime.now(moment.tzinfo):
                ago = format_duration(datetime.now(moment.tzinfo).timestamp() - moment.timestamp())
                self.problem(
                    f"{moment.isoformat()} is {ago} in the past: the job runs once at start-up "
                    "(unless misfire_grace says it is too late), then never again",
                    table=where,
                    key="at",
                    job=job_id,
                    warning=True,
                )

    def imports(self, jobs: dict[str, JobSpec]) -> None:
        run_jobs = [spec for spec in jobs.values() if spec.target_key == "run"]
        if not run_jobs:
            return
        base = str(self.path.parent.resolve())
        modules = {s.target_text: s.target_text.partition(":")[0] for s in run_jobs}
        distrust = {text: untrusted_module(name, Path(base)) for text, name in modules.items()}
        trusted = sorted(text for text, found in distrust.items() if found is None)
        child, self.check_child = self.check_child, None
        if trusted:
            results = check_targets(trusted, base, self.import_timeout, started=child)
        else:
            discard_check(child)
            results = {}
        for spec in run_jobs:
            error = distrust[spec.target_text] or results.get(spec.target_text)
            if error is not None:
                self.problem(error, table=("jobs", spec.id), key="run", job=spec.id)
                del jobs[spec.id]
            else:
                spec.target = load_target(spec.target_text, base)
                # Whether the job's own table sets run_mode matters only when a run_mode is
                # set: asked only then, the locator's key scan is not made for every file.
                own = "run_mode" in spec.options and (
                    (("jobs", spec.id), "run_mode") in self.locator.keys
                )
                mode_problem = fit_run_mode(spec.target, spec.options, own, spec.id)
                if mode_problem:
                    where = ("jobs", spec.id) if own else ("defaults",)
                    self.problem(mode_problem, table=where, key="run_mode", job=spec.id)
                    del jobs[spec.id]
