"""YAML loading that remembers where every key came from, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalkit.errors import SpecError

Location = tuple[str | int, ...]


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{line}: invalid YAML: {problem}") from None
    lines: dict[Location, int] = {(): 1}
    data = _to_python(node, (), lines, path) if node is not None else None
    return LocatedYaml(path, data, lines)


def _to_python(node: yaml.Node, location: Location, lines: dict[Location, int], path: Path) -> Any:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                yaml.safe_load(yaml.serialize(key_node))
                if not isinstance(key_node, yaml.ScalarNode)
                else key_node.value
            )
            if isinstance(key, str) and key == "<<":
                raise SpecError(f"{path}:{key_node.start_mark.line + 1}: YAML merge keys are not supported")
            if key in result:
                raise SpecError(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            child = (*location, key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, lines, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*location, i), lines, path) for i, item in enumerate(node.value)]
    # Scalars: let the safe constructor resolve ints, floats, bools and nulls; tags that
    # would construct Python objects (e.g. !!python/object) are rejected by SafeLoader.
    try:
        return yaml.safe_load(yaml.serialize(node))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}:{node.start_mark.line + 1}: {exc}") from None
