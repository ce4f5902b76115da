"""Printing bench/engine.py's results: tables with a column per system, and each target with its
value, its bound and whether it was met. Measuring is engine.py's business."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Results = dict[str, dict[str, float]]  # system -> metric -> value
# (label, value or None when not measured, "max"/"min"/"info", bound, how to print the value)
Check = tuple[str, float | None, str, float | None, str]


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's median over the rounds (a busy moment of a shared machine is one round)."""
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def table(
    title: str,
    systems: list[str],
    labels: dict[str, str],
    rows: list[tuple[str, str, Results, str]],
) -> None:
    """One row per metric, one column per system; "-" where a system was not measured."""
    print(f"\n{title}")
    header = f"  {'metric':<26}" + "".join(f"{labels[s]:>18}" for s in systems)
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, key, results, fmt in rows:
        cells = "".join(
            f"{format(results[s][key], fmt) if s in results else '-':>18}" for s in systems
        )
        print(f"  {label:<26}{cells}")


def verdict(value: float, kind: str, bound: float | None) -> str:
    if bound is None or kind == "info":
        return ""
    return "met" if (value <= bound if kind == "max" else value >= bound) else "MISSED"


def target_table(
    title: str,
    systems: list[str],
    labels: dict[str, str],
    rows: list[tuple[str, str, float, Callable[[str], float | None], str]],
) -> None:
    """Each target (label, "max"/"min", bound, value per system, format) with every system's
    value and whether it meets it: the floor and the peers are judged by the same bound."""
    print(f"\n{title}")
    print(f"  {'target':<34}" + "".join(f"{labels[s]:>20}" for s in systems))
    for label, kind, bound, value_of, fmt in rows:
        cells = []
        for system in systems:
            value = value_of(system)
            if value is None:
                cells.append(f"{'-':>20}")
                continue
            cell = f"{format(value, fmt)} {verdict(value, kind, bound):>6}"
            cells.append(f"{cell:>20}")
        print(f"  {label:<34}" + "".join(cells))


def check_list(title: str, checks: list[Check]) -> None:
    print(f"\n{title}")
    for label, value, kind, bound, fmt in checks:
        if value is None:
            print(f"  {label:<34}{'-':>12}   (needs --baseline REV)")
            continue
        if bound is None or kind == "info":
            target = "(information)"
        else:
            target = f"{'<=' if kind == 'max' else '>='} {format(bound, fmt)}"
        print(f"  {label:<34}{format(value, fmt):>12}   target {target:<16} "
              f"{verdict(value, kind, bound)}")  # fmt: skip


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    return float(a[key]) / float(b[key]) if b[key] else float("inf")
