"""The task catalogue: built-in task and suite files plus the user's own folders.

Only file names are listed up front; a task file is parsed when it is asked for, so
`evalkit tasks list` and `evalkit run` never pay for files they do not use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.errors import SpecError, UnknownNameError
from evalkit.specs.task import SuiteSpec, TaskSpec, load_suite_file, load_task_file

TASK_PATH_ENV = "EVALKIT_TASK_PATH"


def builtin_task_dir() -> Path:
    """The `tasks/` folder shipped with evalkit (installed as the `evalkit.tasks` package)."""
    from importlib.resources import files

    return Path(str(files("evalkit.tasks")))


@dataclass
class Catalogue:
    directories: list[Path]
    _task_files: dict[str, Path] = field(default_factory=dict)
    _suite_files: dict[str, Path] = field(default_factory=dict)
    # name -> every file defining it, when two of the user's folders both do (which one was meant?)
    _ambiguous: dict[str, list[Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A user's folder may shadow a built-in task or suite (deliberately: a patched copy); two of
        # the user's folders defining the same name is ambiguous and an error when the name is used.
        builtin = _resolved(builtin_task_dir())
        shadowable = (builtin, _resolved(builtin / "suites"))
        for directory in self.directories:
            for kind, files, paths in (
                ("task", self._task_files, sorted(directory.glob("*.yaml"))),
                ("suite", self._suite_files, sorted((directory / "suites").glob("*.yaml"))),
            ):
                for path in paths:
                    earlier = files.get(path.stem)
                    if earlier is not None and _resolved(earlier.parent) not in shadowable:
                        self._ambiguous.setdefault(f"{kind} {path.stem}", [earlier]).append(path)
                    files[path.stem] = path

    def _unambiguous(self, kind: str, name: str) -> None:
        paths = self._ambiguous.get(f"{kind} {name}")
        if paths:
            shown = " and ".join(str(path) for path in paths)
            raise SpecError(f"{kind} {name!r} is defined twice: {shown}; rename one or drop one folder")

    @property
    def task_names(self) -> list[str]:
        return sorted(self._task_files)

    @property
    def suite_names(self) -> list[str]:
        return sorted(self._suite_files)

    def task(self, name: str) -> TaskSpec:
        self._unambiguous("task", name)
        path = self._task_files.get(name)
        if path is None:
            raise UnknownNameError("task", name, self._task_files)
        spec = load_task_file(path)
        if spec.name != name:
            raise SpecError(f"{path}:1: task name {spec.name!r} must match the file name {name!r}")
        return spec

    def suite(self, name: str) -> SuiteSpec:
        self._unambiguous("suite", name)
        path = self._suite_files.get(name)
        if path is None:
            raise UnknownNameError("suite", name, self._suite_files)
        suite = load_suite_file(path)
        for entry in suite.tasks:
            if entry.task not in self._task_files and not entry.task.startswith("lmeval:"):
                raise UnknownNameError(f"task (in suite file {path})", entry.task, self._task_files)
        return suite

    def task_path(self, name: str) -> Path:
        self._unambiguous("task", name)
        if name not in self._task_files:
            raise UnknownNameError("task", name, self._task_files)
        return self._task_files[name]


def default_catalogue(extra_dirs: list[Path] | None = None) -> Catalogue:
    directories = [builtin_task_dir()]
    for entry in os.environ.get(TASK_PATH_ENV, "").split(os.pathsep):
        if entry:
            directories.append(Path(entry))
    directories.extend(extra_dirs or [])
    return Catalogue(directories)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
