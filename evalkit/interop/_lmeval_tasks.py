"""Finding and loading one lm-eval task: names, users' task folders, and data offline.

Three costs of lm-eval shape this module. Indexing its ~15k task YAML files takes
seconds, so that index is built once per process, and a task found in a user's own
folder is loaded from an index of that folder alone. Loading a dataset from an
unreachable hub retries for half a minute, so when a quick probe finds the hub
unreachable the load runs in the Hugging Face offline mode and fails at once.
And lm-eval's errors name neither the task nor the fix, so they are translated here.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.errors import DataError, SpecError, UnknownNameError
from evalkit.hub import hub_offline, hub_reachable

if TYPE_CHECKING:
    from lm_eval.api.task import Task
    from lm_eval.tasks import TaskManager

INCLUDE_ENV = "EVALKIT_LMEVAL_INCLUDE"

PathLike = str | Path


def include_paths(include_path: PathLike | Sequence[PathLike] | None) -> tuple[Path, ...]:
    """The user's task folders: the keyword's, then $EVALKIT_LMEVAL_INCLUDE's (os.pathsep-separated)."""
    given: list[tuple[PathLike, str]] = []
    if isinstance(include_path, str | Path):
        given.append((include_path, "include_path"))
    elif include_path is not None:
        given += [(path, "include_path") for path in include_path]
    env_value = os.environ.get(INCLUDE_ENV, "")
    given += [(part, f"${INCLUDE_ENV}") for part in env_value.split(os.pathsep) if part.strip()]
    paths = []
    for raw, source in given:
        path = Path(raw).expanduser().resolve()
        if not path.is_dir():
            raise DataError(f"lm-eval task folder {str(raw)!r} (from {source}) is not a directory")
        paths.append(path)
    return tuple(dict.fromkeys(paths))


def task_manager(paths: tuple[Path, ...], include_defaults: bool) -> TaskManager:
    """An lm-eval TaskManager over `paths` (and lm-eval's built-in tasks when include_defaults).

    The built-in index takes seconds, so managers that include it are kept for the process;
    one over the user's folders alone is rebuilt each time, so new or renamed YAML files show up.
    """
    return _full_task_manager(paths) if include_defaults else _build_task_manager(paths, False)


@functools.cache
def _full_task_manager(paths: tuple[Path, ...]) -> TaskManager:
    return _build_task_manager(paths, True)


def _build_task_manager(paths: tuple[Path, ...], include_defaults: bool) -> TaskManager:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in paths] or None, include_defaults=include_defaults)


def load_task(name: str, paths: tuple[Path, ...]) -> tuple[Task, str | None]:
    """Build the lm-eval task called `name` with its data; return it and its YAML file.

    Raises UnknownNameError for a name lm-eval does not know, SpecError for a group or tag,
    and DataError when its dataset cannot be loaded.
    """
    from lm_eval.tasks._index import Kind

    manager = None
    if paths:
        # A user's own leaf task needs nothing from lm-eval's 15k built-in YAML files.
        own = task_manager(paths, include_defaults=False)
        entry = own.task_index.get(name)
        if entry is not None and entry.kind in (Kind.TASK, Kind.PY_TASK):
            manager = own
    if manager is None:
        manager = task_manager(paths, include_defaults=True)
        if name not in manager.task_index:
            raise UnknownNameError("lm-eval task", name, manager.all_tasks)
    entry = manager.task_index[name]
    if entry.kind in (Kind.GROUP, Kind.TAG):
        # Refused before any data is loaded: one outcome holds one task's metrics and samples.
        members = sorted(entry.tags) if entry.kind == Kind.TAG else _group_members(entry.cfg, entry.yaml_path)
        raise SpecError(
            f"lm-eval name {name!r} is a {entry.kind.name.lower()} of several tasks; "
            f"run its tasks one by one as lmeval:<task> ({_shorten(members)})"
        )
    tasks = _load_with_data(manager, name)["tasks"]
    if len(tasks) != 1:
        raise SpecError(f"lm-eval name {name!r} expands to {len(tasks)} tasks ({_shorten(sorted(tasks))})")
    yaml_path = str(entry.yaml_path) if entry.yaml_path else None
    return next(iter(tasks.values())), yaml_path


def _group_members(cfg: dict[str, Any] | None, yaml_path: Path | None) -> list[str]:
    if cfg is None and yaml_path is not None:
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(yaml_path, resolve_func=False)
    listed = (cfg or {}).get("task") or []
    names = [item if isinstance(item, str) else item.get("task") or item.get("group") for item in listed]
    return [str(n) for n in names if n]


def _shorten(names: Sequence[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _load_with_data(manager: TaskManager, name: str) -> Any:
    """Build the task (lm-eval loads its dataset here), offline when the hub cannot be reached."""
    import datasets.exceptions

    offline = not hub_reachable()
    context = hub_offline() if offline else contextlib.nullcontext()
    try:
        with context:
            return manager.load([name])
    except (OSError, datasets.exceptions.DatasetsError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        where = " offline (huggingface.co is unreachable)" if offline else ""
        raise DataError(
            f"lm-eval task {name!r}: its dataset could not be loaded{where}: {detail}. "
            "Provide the data locally: write a task YAML with dataset_path: json|csv|parquet|arrow and "
            "dataset_kwargs: {data_files: ...} pointing at files, and pass its folder with include_path= or "
            f"${INCLUDE_ENV}; or fill the Hugging Face datasets cache on a connected machine and run with "
            "HF_DATASETS_OFFLINE=1"
        ) from exc
