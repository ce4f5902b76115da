"""Cron expressions with the Vixie/Debian rules, including across DST transitions.

croniter parses and iterates the expression over *naive* local wall time, where it is exact. This
module then maps each wall-time match onto real instants in the job's zone with Debian cron's DST
rules, which croniter gets wrong (it fires a fixed-time job twice on a fall-back night):

- a job whose minute and hour fields do not start with ``*`` runs at a *specific time*: a match
  that falls in a DST gap runs once, at the first instant after the gap; a match in the repeated
  hour of a fall-back night runs once, at its first occurrence;
- any other job follows real time: matches in a gap do not exist, matches in the repeated hour
  happen twice (25 hourly runs on the long day, 23 on the short one).

The field syntax is checked here before croniter sees it, so that an error can say which field
and value are wrong and what is accepted.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from .errors import InvalidTrigger

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTH_NAMES = list(calendar.month_name)[1:]
_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
# The largest UTC offset change any zone makes at one transition, with room to spare.
_SHIFT_WINDOW = timedelta(hours=3)
_ITEM = re.compile(r"^(?P<range>\*|\?|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[^/]*))?$")


class _Field:
    __slots__ = ("high", "low", "name", "names")

    def __init__(self, name: str, low: int, high: int, names: list[str] | None = None) -> None:
        self.name = name
        self.low = low
        self.high = high
        self.names = names

    def accepted(self) -> str:
        text = f"{self.low}-{self.high}"
        if self.names:
            text += f" or names ({self.names[0]}-{self.names[-1]})"
        return text

    def value(self, token: str, expr: str) -> int:
        if self.names and token in self.names:
            return self.names.index(token) + (1 if self.name == "month" else 0)
        if not token.isdigit():
            raise _error(expr, f'{self.name} field: cannot read "{token}"; use {self.accepted()}')
        number = int(token)
        if not self.low <= number <= self.high:
            raise _error(expr, f"{self.name} {number} is out of range {self.accepted()}")
        return number


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTHS)
_DOW = _Field("day-of-week", 0, 7, DAYS)


def _error(expr: str, why: str) -> InvalidTrigger:
    return InvalidTrigger(f'cron "{expr}": {why}', key="cron")


class CronExpression:
    """A validated cron expression; ``next_after`` gives real instants in a given zone."""

    __slots__ = ("_croniter_text", "_iterator", "fields", "has_seconds", "specific_time", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidTrigger(
                f'expected a cron expression such as "30 2 * * *", got {text!r}', key="cron"
            )
        self.text = " ".join(text.split())
        expr = self.text.lower()
        if expr.startswith("@"):
            if expr == "@reboot":
                raise _error(
                    self.text,
                    "@reboot is not a schedule; use run_immediately = true with a trigger, "
                    "or a job with no trigger that you run on demand",
                )
            if expr not in MACROS:
                raise _error(
                    self.text, f"unknown macro; accepted: {', '.join(sorted(set(MACROS)))}"
                )
            expr = MACROS[expr]
        parts = expr.split()
        if len(parts) not in (5, 6):
            raise _error(
                self.text,
                f"has {len(parts)} fields; write 5 (minute hour day-of-month month day-of-week) "
                "or 6 with seconds first",
            )
        self.has_seconds = len(parts) == 6
        fields = parts if self.has_seconds else ["0", *parts]
        second, minute, hour, dom, month, dow = fields
        self._check(second, _SECOND)
        self._check(minute, _MINUTE)
        self._check(hour, _HOUR)
        self._check(dom, _DOM, allow_last=True)
        self._check(month, _MONTH)
        dow = self._check_dow(dow)
        self.fields = (second, minute, hour, dom, month, dow)
        self.specific_time = not minute.startswith("*") and not hour.startswith("*")
        self._croniter_text = " ".join(self.fields if self.has_seconds else self.fields[1:])
        self._iterator: croniter | None = None
        self._check_fires()

    # -- validation -----------------------------------------------------------------------
    def _check(self, field: str, spec: _Field, *, allow_last: bool = False) -> None:
        for item in field.split(","):
            if allow_last and item == "l":
                continue
            self._check_item(item, spec)

    def _check_item(self, item: str, spec: _Field) -> None:
        match = _ITEM.match(item)
        if not match:
            raise _error(
                self.text,
                f'{spec.name} field: cannot read "{item}"; use *, a value, a range a-b, '
                f"a step */n or a-b/n, with values {spec.accepted()}",
            )
        rng, step = match.group("range"), match.group("step")
        if rng == "?" and spec not in (_DOM, _DOW):
            raise _error(self.text, f'{spec.name} field: "?" is only allowed in the day fields')
        if rng not in ("*", "?"):
            bounds = rng.split("-")
            values = [spec.value(b, self.text) for b in bounds]
            if len(values) == 2 and values[0] > values[1]:
                raise _error(
                    self.text,
                    f"{spec.name} range {bounds[0]}-{bounds[1]} goes backwards; "
                    f"write the smaller value first",
                )
        if step is not None:
            if not step.isdigit() or int(step) == 0:
                raise _error(
                    self.text, f'{spec.name} field: step "/{step}" must be a whole number above 0'
                )
            if int(step) > spec.high - spec.low + 1:
                raise _error(
                    self.text,
                    f"{spec.name} step /{step} is larger than the field's range {spec.accepted()}",
                )

    def _check_dow(self, field: str) -> str:
        """Check the day-of-week field and return it in croniter's spelling."""
        items = []
        for item in field.split(","):
            if "#" in item:
                day, _, nth = item.partition("#")
                _DOW.value(day, self.text)
                if not nth.isdigit() or not 1 <= int(nth) <= 5:
                    raise _error(
                        self.text,
                        f'day-of-week "{item}": the number after # is the week of the month, 1-5',
                    )
                items.append(item)
            elif item.endswith("l") and item != "l":
                day = item[:-1]
                number = _DOW.value(day, self.text)
                items.append(f"l{number % 7}")  # croniter spells "last Friday" as L5
            elif item == "l":
                raise _error(
                    self.text,
                    'day-of-week "L" needs a day: write 5L (or friL) for the last Friday',
                )
            else:
                self._check_item(item, _DOW)
                items.append(item)
        return ",".join(items)

    def _check_fires(self) -> None:
        _, _, _, dom, month, dow = self.fields
        dom_values = _plain_values(dom, _DOM)
        day_and = dom.startswith("*") or dow.startswith("*")
        if dom_values and day_and:
            months = _plain_values(month, _MONTH) or list(range(1, 13))
            smallest = min(dom_values)
            if all(_MAX_DAYS[m - 1] < smallest for m in months):
                names = _join([MONTH_NAMES[m - 1] for m in months])
                verb = "has" if len(months) == 1 else "have"
                raise _error(self.text, f"never fires: {names} {verb} no {_ordinal(smallest)}")
        try:
            self._naive_iter(datetime(2000, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            raise _error(self.text, "never fires: no date matches it within 50 years") from None
        except (CroniterError, ValueError) as exc:
            raise _error(self.text, f"cannot be read: {exc}") from None

    # -- iteration ------------------------------------------------------------------------
    def _naive_iter(self, start: datetime) -> croniter:
        # Building a croniter costs four times a step, so one is kept and moved to each start.
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = croniter(
                self._croniter_text,
                start,
                # The stubs type ret_type as float only; croniter accepts datetime too.
                ret_type=datetime,  # type: ignore[arg-type]
                implement_cron_bug=True,  # Vixie: dom and dow are ANDed when either starts with *
                second_at_beginning=self.has_seconds,
            )
        else:
            iterator.set_current(start, force=True)
        return iterator

    def next_after(self, after: datetime, zone: tzinfo) -> datetime:
        """The first instant strictly after ``after`` (aware) at which this fires in ``zone``."""
        after = after.astimezone(UTC)
        local = after.astimezone(zone)
        naive = local.replace(tzinfo=None, fold=0)
        start = naive.replace(microsecond=0)
        # Fast path: no DST transition between `after` and the next wall-time match, and the
        # match itself is an ordinary instant, so wall time maps 1:1 onto real time.
        match = self._naive_iter(start).get_next(datetime)
        instants = _instants(match, zone)
        if (
            len(instants) == 1
            and instants[0] > after
            and instants[0] - after <= timedelta(days=1)
            and instants[0].astimezone(zone).utcoffset() == local.utcoffset()
            and not _is_ambiguous(naive, zone)
        ):
            return instants[0]
        return self._next_after_slow(after, naive, zone)

    def _next_after_slow(self, after: datetime, naive: datetime, zone: tzinfo) -> datetime:
        iterator = self._naive_iter(naive.replace(microsecond=0) - _SHIFT_WINDOW)
        best: datetime | None = None
        best_naive: datetime | None = None
        while True:
            match = iterator.get_next(datetime)
            if best_naive is not None and match > best_naive + _SHIFT_WINDOW:
                assert best is not None
                return best
            for instant in self._instants_for(match, zone):
                if instant > after and (best is None or instant < best):
                    best = instant
                    best_naive = instant.astimezone(zone).replace(tzinfo=None)

    def _instants_for(self, match: datetime, zone: tzinfo) -> list[datetime]:
        instants = _instants(match, zone)
        if not self.specific_time:
            return instants
        if not instants:  # in a DST gap: the first instant after it
            return [_gap_end(match, zone)]
        return instants[:1]

    def gap_shifted(self, instant: datetime, zone: tzinfo) -> datetime | None:
        """The wall time (naive) that a DST gap swallowed if this fixed-time expression ran at
        ``instant`` only because of it (02:30 on a night that jumps from 02:00 to 03:00 runs at
        03:00); None if ``instant`` is an ordinary match."""
        if not self.specific_time:
            return None
        instant = instant.astimezone(UTC)
        local = instant.astimezone(zone).replace(tzinfo=None, fold=0)
        iterator = self._naive_iter(local.replace(microsecond=0) - _SHIFT_WINDOW)
        while (match := iterator.get_next(datetime)) <= local:
            if not _instants(match, zone) and _gap_end(match, zone) == instant:
                return match
        return None

    def describe(self) -> str:
        return cron_words(self.text)

    def __repr__(self) -> str:
        return f"CronExpression({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronExpression) and other._croniter_text == self._croniter_text

    def __hash__(self) -> int:
        return hash(self._croniter_text)


def _instants(naive: datetime, zone: tzinfo) -> list[datetime]:
    """The real instants (UTC) at which wall time ``naive`` occurs in ``zone``: 0, 1 or 2."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != naive:
        return []  # skipped by a DST gap
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return [first] if second == first else [first, second]


def _is_ambiguous(naive: datetime, zone: tzinfo) -> bool:
    return len(_instants(naive.replace(microsecond=0), zone)) == 2


def _gap_end(naive: datetime, zone: tzinfo) -> datetime:
    """The first real instant after the DST gap that swallowed wall time ``naive``."""
    probe = naive.replace(second=0)
    for _ in range(48 * 60):
        probe += timedelta(minutes=1)
        instants = _instants(probe, zone)
        if instants:
            return instants[0]
    raise AssertionError(f"no end to the DST gap at {naive} in {zone}")


def _plain_values(field: str, spec: _Field) -> list[int] | None:
    """The values of a field made only of numbers/names (no ranges, steps, L or #)."""
    if field.startswith(("*", "?")):
        return None
    values = []
    for item in field.split(","):
        if not (item.isdigit() or (spec.names and item in spec.names)):
            return None
        values.append(spec.value(item, field))
    return values


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_DAYS = {"0": "Sunday", "1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday",
         "5": "Friday", "6": "Saturday", "7": "Sunday", "mon": "Monday", "tue": "Tuesday",
         "wed": "Wednesday", "thu": "Thursday", "fri": "Friday", "sat": "Saturday",
         "sun": "Sunday"}  # fmt: skip
_MACROS = {"@hourly": "every hour", "@daily": "at 00:00 every day",
           "@midnight": "at 00:00 every day", "@weekly": "at 00:00 every Sunday",
           "@monthly": "at 00:00 on day 1 of every month",
           "@yearly": "at 00:00 on January 1", "@annually": "at 00:00 on January 1"}  # fmt: skip


def cron_words(expression: str) -> str:
    """Common cron shapes in words (\"at 02:30 every day\"); anything else as written."""
    text = expression.strip()
    if text.lower() in _MACROS:
        return _MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        return f"cron {text}"
    minute, hour, dom, month, dow = parts
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"every hour at :{int(minute):02d}"
    if minute.startswith("*/") and hour == "*" and dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour.isdigit() and month == "*":
        at = f"at {int(hour):02d}:{int(minute):02d}"
        if dom == "*" and dow == "*":
            return f"{at} every day"
        if dom == "*" and dow.lower() in _DAYS:
            return f"{at} every {_DAYS[dow.lower()]}"
        if dom == "*" and dow.lower() in ("1-5", "mon-fri"):
            return f"{at} on weekdays"
        if dow == "*" and dom.isdigit():
            return f"{at} on day {dom} of every month"
    return f"cron {text}"
