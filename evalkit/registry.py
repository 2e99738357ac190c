"""One registry mechanism for everything evalkit looks up by name.

Task executors (kinds), backends, model aliases, document preprocessors and long-context
generators are each a `Registry`. Entries come from Python package **entry points**, one group
per registry (``evalkit.executors``, ``evalkit.backends``, ``evalkit.aliases``,
``evalkit.preprocessors``, ``evalkit.generators``): evalkit declares its own built-ins in its
``pyproject.toml`` exactly as an outside package declares its additions, so the path a plugin
takes is the path evalkit itself takes every day. Code can also `register()` an entry at run
time (tests, notebooks, a script that defines one task kind).

An entry point is loaded only when its name is asked for, so listing names costs no imports and
a plugin's heavy dependencies load only when it is used. Two distributions registering the same
name is an error that names both, never a silent last-one-wins.

    # an outside package's pyproject.toml
    [project.entry-points."evalkit.preprocessors"]
    shout = "my_evalkit_plugin:shout"
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from typing import Any, Generic, TypeVar, cast, overload

from evalkit.errors import EvalkitError, SpecError, UnknownNameError

T = TypeVar("T")

ENTRY_POINT_PREFIX = "evalkit."


@dataclass(frozen=True)
class Registration:
    """Where a registered name comes from (shown by `evalkit plugins` and in conflicts)."""

    name: str
    origin: str  # "evalkit", an outside distribution's name, or "runtime"
    target: str  # "module:attribute" of an entry point, or the registered object's qualified name


class Registry(Generic[T]):
    """Named entries of one sort, from entry points and run-time registrations.

    `what` names the sort in messages ("task kind", "backend"); `group` is the entry-point
    group (``evalkit.<group>``). `check` validates a loaded entry (a plugin that points at the
    wrong object fails with its name, not deep inside a run).
    """

    def __init__(self, what: str, group: str, check: Callable[[object], bool] | None = None) -> None:
        self.what = what
        self.group = ENTRY_POINT_PREFIX + group
        self._check = check
        self._runtime: dict[str, T] = {}
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()
        _BY_GROUP[self.group] = self

    # -- registering ----------------------------------------------------------------------

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Register `entry` under `name` at run time; without `entry`, a decorator."""

        def add(value: T) -> T:
            installed = _entry_points(self.group).get(name)
            if installed:
                by = " and ".join(f"{_origin(ep)} ({ep.value})" for ep in installed)
                raise SpecError(f"{self.what} {name!r} is already registered by {by}")
            with self._lock:
                existing = self._runtime.get(name)
                if existing is not None and existing is not value:
                    raise SpecError(f"{self.what} {name!r} is already registered ({_qualname(existing)})")
                self._runtime[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Forget a run-time registration (tests)."""
        with self._lock:
            self._runtime.pop(name, None)
            self._loaded.pop(name, None)

    # -- looking up -----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every registered name, sorted; loads nothing."""
        return sorted({*self._runtime, *_entry_points(self.group)})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._runtime or name in _entry_points(self.group))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The entry registered as `name`; `UnknownNameError` with suggestions when there is none."""
        if name in self._runtime:
            return self._runtime[name]
        if name in self._loaded:
            return self._loaded[name]
        found = _entry_points(self.group).get(name)
        if found is None:
            raise UnknownNameError(self.what, name, self.names())
        if len(found) > 1:
            origins = " and ".join(f"{_origin(ep)} ({ep.value})" for ep in found)
            raise SpecError(f"{self.what} {name!r} is registered twice: by {origins}; uninstall one")
        entry = _load(found[0], self.what)
        if self._check is not None and not self._check(entry):
            raise SpecError(
                f"{self.what} {name!r}: entry point {found[0].value} ({_origin(found[0])}) "
                f"is not a valid {self.what}"
            )
        self._loaded[name] = cast(T, entry)
        return cast(T, entry)

    def items(self) -> list[tuple[str, T]]:
        """Every entry, loaded, sorted by name (imports every plugin of this sort)."""
        return [(name, self.get(name)) for name in self.names()]

    def values(self) -> list[T]:
        return [entry for _, entry in self.items()]

    def registrations(self) -> list[Registration]:
        """Where each name comes from, sorted by name."""
        rows = [Registration(name, "runtime", _qualname(entry)) for name, entry in self._runtime.items()]
        for name, found in _entry_points(self.group).items():
            if name not in self._runtime:
                rows.extend(Registration(name, _origin(ep), ep.value) for ep in found)
        return sorted(rows, key=lambda row: (row.name, row.origin))


_BY_GROUP: dict[str, Registry[Any]] = {}


def names_in(group: str) -> list[str]:
    """The names registered in `group` (e.g. "executors"), for layers below the registry's owner.

    The spec loader checks a task's `kind` this way without importing the executors.
    """
    registry = _BY_GROUP.get(ENTRY_POINT_PREFIX + group)
    if registry is not None:
        return registry.names()
    return sorted(_entry_points(ENTRY_POINT_PREFIX + group))


_GROUPS: dict[str, dict[str, list[EntryPoint]]] | None = None
_GROUPS_LOCK = threading.Lock()


def _entry_points(group: str) -> dict[str, list[EntryPoint]]:
    """Entry points of every `evalkit.*` group, read from installed metadata once per process."""
    global _GROUPS
    with _GROUPS_LOCK:
        if _GROUPS is None:
            groups: dict[str, dict[str, list[EntryPoint]]] = {}
            # Every distribution's metadata, not `entry_points()`: that keeps only the first copy
            # of a name on sys.path, and a stale `evalkit.egg-info` in a checkout (the current
            # folder comes first) would hide the installed metadata and every built-in with it.
            for dist in distributions():
                for ep in dist.entry_points:
                    if ep.group.startswith(ENTRY_POINT_PREFIX):
                        same = groups.setdefault(ep.group, {}).setdefault(ep.name, [])
                        # The same target seen twice (two copies of one distribution) is one entry.
                        if all(other.value != ep.value for other in same):
                            same.append(ep)
            _GROUPS = groups
        return _GROUPS.get(group, {})


def refresh_entry_points() -> None:
    """Forget the entry points read so far (after installing a plugin in the same process)."""
    global _GROUPS
    with _GROUPS_LOCK:
        _GROUPS = None


def _load(ep: EntryPoint, what: str) -> object:
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must say which one, in one line
        raise PluginLoadError(
            f"{what} {ep.name!r}: cannot load entry point {ep.value} ({_origin(ep)}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class PluginLoadError(EvalkitError):
    """An entry point could not be imported (a broken or half-installed plugin)."""


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "unknown distribution"


def _qualname(entry: object) -> str:
    module = getattr(entry, "__module__", None) or type(entry).__module__
    name = getattr(entry, "__qualname__", None) or type(entry).__qualname__
    return f"{module}:{name}"
