"""Where evalkit keeps what it can recompute (one cache folder for every part), and the check that
a place evalkit will write to can be written, made before any work starts."""

from __future__ import annotations

import os
from collections.abc import Callable
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
