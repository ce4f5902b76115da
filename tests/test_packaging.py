"""What a user installs: the wheel and sdist hold every file the package reads at run time, and
`python -m jobtui` is the `jobtui` command.

An editable install reads files from the checkout, so a stylesheet missing from the wheel passed
every other test while the installed console died at start-up. This builds the real artefacts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jobtui"
LEFTOVERS = (".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".jobtui")


def package_tree() -> set[str]:
    """Every file under jobtui/ that ships, as a path from the project root."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy without build leftovers: setuptools adds whatever a stale jobtui.egg-info/SOURCES.txt
    # lists (an editable install writes one), which hid this very defect in the checkout.
    source = tmp_path_factory.mktemp("source") / "jobtui"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LEFTOVERS))
    out = tmp_path_factory.mktemp("dist")
    # build makes the sdist, then the wheel from the unpacked sdist: a file the sdist leaves out
    # is missing from the wheel too, as it would be for `pip install jobtui` from PyPI.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_wheel_holds_every_file_of_the_package(dist: Path) -> None:
    (wheel,) = dist.glob("jobtui-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(package_tree() - shipped)
    assert missing == [], f"{wheel.name} leaves out {missing}: declare them as package data"
    assert "jobtui/console/app.tcss" in shipped  # the stylesheet the console cannot start without


def test_the_sdist_holds_every_file_of_the_package(dist: Path) -> None:
    (sdist,) = dist.glob("jobtui-*.tar.gz")
    with tarfile.open(sdist) as archive:
        # "jobtui-0.1.0/jobtui/console/app.tcss" -> "jobtui/console/app.tcss"
        shipped = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = sorted(package_tree() - shipped)
    assert missing == [], f"{sdist.name} leaves out {missing}: declare them as package data"


def test_python_dash_m_jobtui_is_the_jobtui_command(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "jobtui", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.startswith("jobtui ")
    bad = tmp_path / "jobs.toml"
    bad.write_text('[jobs.a]\ncommand = "true"\nevery = "5x"\n')
    bad.chmod(0o644)
    check = subprocess.run(
        [sys.executable, "-m", "jobtui", "check", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 2  # exit codes come through, not just output
    assert f'{bad}:3:1: job "a", key "every"' in check.stderr
