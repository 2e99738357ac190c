"""YAML loading that remembers where every key came from, so errors can name file:line.

Task, suite and gate-policy files only configure (the style guide: logic is registered by name in
Python), so this loader accepts plain mappings, lists and scalars and refuses, with file:line, what
would make a file mean more than it shows: tags other than the standard scalar ones (`!function`,
`!!python/name:...`, `!!set`), aliases and merge keys. It also refuses what would make loading a
denial of service: files over `MAX_BYTES`, nesting deeper than `MAX_DEPTH`. Values are built from
the parser's events in one pass without recursion (libyaml's parser where installed), each scalar
resolved and constructed once by PyYAML's safe resolver and constructor.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any, NoReturn

import yaml

from evalkit.errors import SpecError

Location = tuple[str | int, ...]

MAX_BYTES = 1 << 20  # 1 MiB: the largest built-in task file is a few kB
MAX_DEPTH = 64  # nested mappings/lists; real files use fewer than 6

_STANDARD = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR = f"{_STANDARD}map", f"{_STANDARD}seq", f"{_STANDARD}str"
# Implicitly resolved plain scalars constructed as typed values; every other implicit tag
# (timestamp, `=` value, `<<` merge outside a key) stays the text the author wrote.
_TYPED = {f"{_STANDARD}{name}" for name in ("int", "float", "bool", "null")}
_EXPLICIT_OK = _TYPED | {_STR}


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader, also reading YAML 1.2 exponent floats (`1e-3`) as numbers.

    YAML 1.1 makes `1e-3` a string; with strict numbers it would then be refused as "not a
    valid number" although the author plainly wrote one.
    """


_Loader.add_implicit_resolver(
    f"{_STANDARD}float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class LocatedYaml:
    """Parsed YAML plus the line (1-based) of each key path, e.g. ("dataset", "hub", "split")."""

    def __init__(self, path: Path, data: Any, lines: dict[Location, int]) -> None:
        self.path, self.data, self.lines = path, data, lines

    def line_of(self, location: Location) -> int:
        """The line of the deepest known prefix of `location` (1 if nothing matches)."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return 1

    def where(self, location: Location) -> str:
        return f"{self.path}:{self.line_of(location)}"


def load_located_yaml(path: Path) -> LocatedYaml:
    raw = _read(path)
    loader = None
    try:
        loader = _Loader(raw)  # PyYAML's pure-Python reader checks the first characters here
        data, lines = _Builder(path, loader).build()
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}:{_error_line(exc, raw)}: invalid YAML: {_problem(exc)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedYaml(path, data, lines)


def _read(path: Path) -> bytes:
    """The file's bytes, refused before reading when it is not a regular file or too large."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would block the read forever and a device can be endless.
            raise SpecError(f"{path}: not a regular file")
        if info.st_size > MAX_BYTES:
            raise SpecError(f"{path}: file is {info.st_size} bytes, over the {MAX_BYTES}-byte (1 MiB) limit")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: file is over the {MAX_BYTES}-byte (1 MiB) limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return raw


def _error_line(exc: yaml.YAMLError, raw: bytes) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # a ReaderError (e.g. a control character)
    return raw[:position].count(b"\n") + 1 if isinstance(position, int) else 1


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):  # the character is a code point (int) in both parsers
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return f"character U+{code:04X} is not allowed ({exc.reason})"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return str(problem)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_STANDARD) if tag.startswith(_STANDARD) else tag


class _Frame:
    """An open mapping or list: its value, key path, and (mappings) the key awaiting its value."""

    __slots__ = ("key", "location", "value")

    def __init__(self, value: dict[str, Any] | list[Any], location: Location) -> None:
        self.value, self.location = value, location
        self.key: str | None = None


class _Builder:
    """Python values and key lines from one document's events, with an explicit stack."""

    def __init__(self, path: Path, loader: Any) -> None:
        self.path, self.loader = path, loader
        self.lines: dict[Location, int] = {(): 1}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0

    def build(self) -> tuple[Any, dict[Location, int]]:
        while self.loader.check_event():
            event = self.loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self._fail(event, "expected one YAML document, found a second")
            elif isinstance(event, yaml.AliasEvent):
                self._fail(event, f"YAML aliases (*{event.anchor}) are not supported; write the value out")
            elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                self._node(event)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                self.stack.pop()
        return self.root, self.lines

    def _node(self, event: Any) -> None:
        line = event.start_mark.line + 1
        parent = self.stack[-1] if self.stack else None
        if parent is not None and isinstance(parent.value, dict) and parent.key is None:
            self._key(parent, event, line)
            return
        if parent is None:
            location: Location = ()
        elif isinstance(parent.value, list):
            location = (*parent.location, len(parent.value))
        else:
            assert parent.key is not None
            location = (*parent.location, parent.key)
        self.lines.setdefault(location, line)
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            value = self._scalar(event, line)
        else:
            is_map = isinstance(event, yaml.MappingStartEvent)
            self._check_collection_tag(event, _MAP if is_map else _SEQ)
            if len(self.stack) >= MAX_DEPTH:
                self._fail(event, f"nested deeper than {MAX_DEPTH} levels")
            value = {} if is_map else []
        if parent is None:
            self.root = value
        elif isinstance(parent.value, list):
            parent.value.append(value)
        else:
            assert parent.key is not None
            parent.value[parent.key] = value
            parent.key = None
        if not isinstance(event, yaml.ScalarEvent):
            self.stack.append(_Frame(value, location))

    def _key(self, parent: _Frame, event: Any, line: int) -> None:
        if not isinstance(event, yaml.ScalarEvent):
            self._fail(event, "a mapping key must be a plain string, not a mapping or list")
        if event.tag not in (None, "!"):
            self._check_scalar_tag(event)
        # Keys are kept as written (`1:` is the key "1"): every key in these files names something.
        key = str(event.value)
        assert isinstance(parent.value, dict)
        if key == "<<":
            self._fail(event, "YAML merge keys are not supported")
        if key in parent.value:
            self._fail(event, f"duplicate key {key!r}")
        parent.key = key
        self.lines[(*parent.location, key)] = line

    def _scalar(self, event: yaml.ScalarEvent, line: int) -> Any:
        if event.tag in (None, "!"):  # no tag, or `!` (non-specific): resolve as PyYAML's safe loader does
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag not in _TYPED:
                return event.value
        else:
            tag = self._check_scalar_tag(event)
            if tag == _STR:
                return event.value
        node = yaml.ScalarNode(tag, event.value, style=event.style)  # marks: errors are reported here
        try:
            return self.loader.yaml_constructors[tag](self.loader, node)
        except (ValueError, KeyError, TypeError, yaml.YAMLError):
            # `!!int abc`, `!!bool maybe`, an integer of more than 4300 digits
            shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
            raise SpecError(f"{self.path}:{line}: {shown!r} is not a valid {_short_tag(tag)}") from None

    def _check_scalar_tag(self, event: yaml.ScalarEvent) -> str:
        tag = str(event.tag)
        if tag not in _EXPLICIT_OK:
            self._refuse_tag(event, tag)
        return tag

    def _check_collection_tag(self, event: Any, standard: str) -> None:
        if event.tag not in (None, "!", standard):
            self._refuse_tag(event, str(event.tag))

    def _refuse_tag(self, event: Any, tag: str) -> NoReturn:
        self._fail(
            event,
            f"YAML tag {_short_tag(tag)!r} is not supported: these files hold plain values only "
            "(code is registered by name in Python, never loaded from YAML)",
        )

    def _fail(self, event: Any, message: str) -> NoReturn:
        raise SpecError(f"{self.path}:{event.start_mark.line + 1}: {message}")
