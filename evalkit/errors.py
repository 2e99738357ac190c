"""Errors a user can cause and fix.

Every `EvalkitError` is printed by the CLI as a single line and exits with its `exit_code`: 2 for
bad input (the default), 1 for a write that failed (`StoreWriteError`). Internal bugs are *not*
EvalkitErrors: they keep their traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvalkitError(Exception):
    """A problem with the user's input, files or environment (exit code 2)."""

    exit_code = 2


class SpecError(EvalkitError):
    """A task, suite or model specification is malformed."""


class UnknownNameError(EvalkitError):
    """A task, suite, model, metric or kind name is not registered."""

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        self.what, self.name = what, name
        known = sorted(set(known))
        hint = did_you_mean(name, known)
        if hint:
            message = f"unknown {what} {name!r}; did you mean {hint}?"
        else:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            message = f"unknown {what} {name!r}; known: {shown or '(none)'}"
        super().__init__(message)


class DataError(EvalkitError):
    """A dataset or results file is missing or unreadable."""


class BackendUnavailableError(EvalkitError):
    """A backend's optional dependency, model file or network access is missing."""


class NotWritableError(EvalkitError):
    """A folder or file evalkit must write to is under a file, not a folder, or not writable.

    Found before any work starts (exit code 2), so a run never ends unable to keep its results.
    """


class StoreWriteError(EvalkitError):
    """Results could not be written (a full disk, an I/O error); nothing partial was kept.

    Exit code 1, not 2: the input was fine, the machine failed the write.
    """

    exit_code = 1


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return up to three close matches as a quoted, comma-separated string ('' if none)."""
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return " or ".join(repr(m) for m in matches)
