"""The engine is pure asyncio: importing it (or the library API) loads no console code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "jobtui" / "engine"
CONTROL = ENGINE.parent / "control"
FORBIDDEN = ("textual", "rich")


def _console_library_imports(paths: list[Path]) -> list[str]:
    offenders = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in FORBIDDEN
            ]
    return offenders


def test_engine_source_imports_no_console_library() -> None:
    assert _console_library_imports(sorted(ENGINE.rglob("*.py"))) == []


def test_the_control_layer_imports_no_console_library() -> None:
    """The controller's views and notices are what will cross a socket to a daemon: they
    must not need Textual or rich on the daemon's side."""
    assert _console_library_imports(sorted(CONTROL.rglob("*.py"))) == []
    code = (
        "import sys, jobtui.control.controller; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_library_import_loads_no_console_library() -> None:
    code = (
        "import sys; from jobtui import Scheduler, Run; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# bottom to top
LAYERS = ["engine", "config", "store", "alerts", "host", "control", "console", "cli"]
MODULE_LAYER = {
    "headless": "cli",
    "cli": "cli",
    "remote_cli": "cli",
    "__main__": "cli",
    "demo": "engine",
}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "jobtui" or len(parts) < 2:
        return None
    return MODULE_LAYER.get(parts[1], parts[1] if parts[1] in LAYERS else None)


def test_each_layer_imports_only_the_layers_beneath_it() -> None:
    package = ENGINE.parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        module = ".".join(relative.parts)
        own = _layer_of(module)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                # "jobtui.store.store" or "jobtui.store.__init__": level 1 is "jobtui.store"
                base = module.split(".")[: -node.level]
                target = ".".join([*base, node.module] if node.module else base)
            elif isinstance(node, ast.ImportFrom) and node.module:
                target = node.module
            else:
                continue
            other = _layer_of(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                offenders.append(f"{module} ({own}) imports {target} ({other})")
    assert offenders == []
