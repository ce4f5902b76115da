"""Who can change what jobtui runs. jobtui runs the commands and modules jobs.toml names with
its own rights (often root's), so, as cron and sshd do, it refuses a file that anyone else could
change: the file, the file a symlink points to and every folder on the way up to / must belong
to the user running jobtui or to root, and no one else may write them (a folder with the sticky
bit, such as /tmp, is fine: others cannot replace what is not theirs there). A group-writable
file or folder is refused too, for every user: a shared group is someone else."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import pwd
import stat
from pathlib import Path


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _writers(mode: int) -> tuple[str, str]:
    """Who besides the owner may write (in words, and as chmod letters); ("", "") if no one."""
    group, others = bool(mode & stat.S_IWGRP), bool(mode & stat.S_IWOTH)
    if group and others:
        return "group and others", "go"
    if others:
        return "others", "o"
    return ("its group", "g") if group else ("", "")


class _Check:
    def __init__(self) -> None:
        self.uid = os.geteuid()
        self.me = _name(self.uid)
        self.trusted = {0, self.uid}

    def owner(self, path: Path, info: os.stat_result) -> str | None:
        if info.st_uid in self.trusted:
            return None
        allowed = "root" if self.uid == 0 else f"you ({self.me}) or root"
        return (
            f"belongs to {_name(info.st_uid)}, not to {allowed}: {_name(info.st_uid)} could "
            f"change what jobtui runs as {self.me}, so jobtui refuses it (as cron does): "
            f"run `chown {self.me} {path}`"
        )

    def file(self, path: Path) -> str | None:
        info = os.stat(path)
        found = self.owner(path, info)
        if found is not None:
            return found
        who, letters = _writers(info.st_mode)
        if who:
            return (
                f"is writable by {who}; jobtui runs the commands in it, so it refuses the file "
                f"(as cron does): run `chmod {letters}-w {path}`"
            )
        return self.folders(path.parent)

    def folders(self, folder: Path) -> str | None:
        """Why a folder on the way from ``folder`` up to / lets someone else replace what is
        in it; None when none does."""
        for each in (folder, *folder.parents):
            info = os.stat(each)
            found = self.owner(each, info)
            if found is not None:
                return f"is in the folder {each}, which {found}"
            who, letters = _writers(info.st_mode)
            if who and not info.st_mode & stat.S_ISVTX:
                return (
                    f"is in {each}, a folder writable by {who} (mode "
                    f"{stat.S_IMODE(info.st_mode):04o}, no sticky bit): they could replace the "
                    f"file and jobtui would run it as {self.me}, so jobtui refuses it (as cron "
                    f"does): run `chmod {letters}-w {each}`"
                )
        return None

    def links(self, path: Path) -> str | None:
        """A symlink on the way is as good as the folder that holds it: whoever can write that
        folder can point the link elsewhere."""
        walked = Path("/")
        for part in Path(os.path.abspath(path)).parts[1:]:
            walked = walked / part
            info = os.lstat(walked)
            if not stat.S_ISLNK(info.st_mode):
                continue
            found = self.owner(walked, info) or self.folders(Path(os.path.realpath(walked.parent)))
            if found is not None:
                return f"is reached through the symlink {walked}, which {found}"
            walked = Path(os.path.realpath(walked))
        return None


def untrusted(path: Path) -> str | None:
    """Why someone other than the user running jobtui (and root) could change the file at
    ``path``, with the command that fixes it; None when no one else can."""
    check = _Check()
    real = Path(os.path.realpath(path))
    try:
        found = check.links(path)
        if found is None:
            found = check.file(real)
            if found is not None and real != Path(os.path.abspath(path)):
                found = f"is a symlink to {real}, which {found}"
    except OSError as exc:
        return f"cannot check who can change {exc.filename}: {exc.strerror}"
    return found


def untrusted_folder(folder: Path) -> str | None:
    """Why someone other than the user running jobtui (and root) could put a file into
    ``folder``; None when no one else can."""
    try:
        return _Check().folders(Path(os.path.realpath(folder)))
    except OSError as exc:
        return f"cannot check who can change {exc.filename}: {exc.strerror}"


def untrusted_module(name: str, base: Path) -> str | None:
    """Why someone else could change module ``name`` as it is imported from ``base`` (the
    folder of jobs.toml, first on the import path). Modules found elsewhere (the standard
    library, installed packages) are not jobs.toml's to vouch for. Nothing is imported here:
    an untrusted module must not run even once, not even in the import check."""
    search: list[str] | None = [str(base)]
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]), search)
        if spec is None:
            return None  # not beside jobs.toml; the import check reports what is missing
        files = [spec.origin] if spec.has_location and spec.origin else []
        if files and files[0].endswith(".py"):
            files.append(importlib.util.cache_from_source(files[0]))
        for file in files:
            if os.path.exists(file):
                found = untrusted(Path(file))
            elif os.path.isdir(os.path.dirname(file)):
                # No cached .pyc yet, but whoever can write __pycache__ can put one there
                # that Python then runs instead of the source.
                found = untrusted_folder(Path(os.path.dirname(file)))
            else:
                continue
            if found is not None:
                return f"module {name}: {file} {found}"
        search = list(spec.submodule_search_locations or [])
    return None
