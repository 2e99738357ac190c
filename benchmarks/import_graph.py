"""Import structure of evalkit's top-level packages: cycles, and imports that go up the declared layers.

    .venv/bin/python benchmarks/import_graph.py              # the tree the venv imports (this checkout)
    .venv/bin/python benchmarks/import_graph.py --source DIR # another checkout, e.g. the last commit:
        git archive HEAD evalkit | tar -x -C /tmp/before && .venv/bin/python benchmarks/import_graph.py \
            --source /tmp/before

The layers are read from the layers contract in pyproject.toml's `[tool.importlinter]` (the one whose
container is `evalkit`), so this count and `lint-imports` judge against one picture. grimp builds the
graph from every import statement, those inside functions and `if TYPE_CHECKING:` blocks included: an
import hidden in a function still ties the packages together. Printed:

* cycles: elementary cycles in the graph of top-level packages (A -> B when a module of A imports one of B);
* upward: imports (importer module -> imported module) from a lower layer to a higher one;
* sideways: imports between siblings that a `|` layer declares independent;
* unlayered: top-level packages or modules that no layer names.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
ROOT = "evalkit"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    inside_function: bool


@dataclass(frozen=True)
class Layers:
    tier_of: dict[str, int]  # top-level package -> 0 for the highest layer, growing downwards
    independent: dict[str, int]  # package -> its tier, only for tiers whose siblings must not meet


def read_layers(pyproject: Path) -> Layers:
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers" and c.get("containers") == [ROOT])
    tier_of: dict[str, int] = {}
    independent: dict[str, int] = {}
    for tier, layer in enumerate(contract["layers"]):
        names = [name.strip().strip("()") for name in re.split(r"[|:]", layer)]
        for name in names:
            tier_of[f"{ROOT}.{name}"] = tier
            if "|" in layer:
                independent[f"{ROOT}.{name}"] = tier
    return Layers(tier_of, independent)


def top_level(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None  # the root `evalkit` itself is no layer


def imports_between_packages(graph: grimp.ImportGraph, source_root: Path) -> list[Import]:
    found: list[Import] = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            a, b = top_level(importer), top_level(imported)
            if a is None or b is None or a == b:
                continue
            details = graph.get_import_details(importer=importer, imported=imported)
            found.append(Import(importer, imported, all(_indented(source_root, d) for d in details)))
    return found


def _indented(source_root: Path, detail: grimp.DetailedImport) -> bool:
    """True when the import line sits inside a block (a function, a TYPE_CHECKING guard, a try)."""
    module = detail["importer"]
    base = source_root.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    line = path.read_text().splitlines()[detail["line_number"] - 1]
    return line[:1].isspace()


def elementary_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each simple cycle once, started at its smallest node (few nodes: a plain search is enough)."""
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                cycles.append([*path])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, help="folder that holds the evalkit package to analyse")
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml", help="declared layers")
    parser.add_argument("--quiet", action="store_true", help="print the counts only")
    args = parser.parse_args()
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))
    graph = grimp.build_graph(ROOT, cache_dir=None)
    spec = importlib.util.find_spec(ROOT)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{ROOT} is not importable from here; pass --source")
    source_root = Path(spec.origin).parent.parent
    layers = read_layers(args.pyproject)

    imports = imports_between_packages(graph, source_root)
    package_edges: dict[str, set[str]] = defaultdict(set)
    for item in imports:
        package_edges[top_level(item.importer) or ""].add(top_level(item.imported) or "")
    cycles = elementary_cycles(package_edges)

    upward, sideways = [], []
    for item in imports:
        a, b = top_level(item.importer) or "", top_level(item.imported) or ""
        if a in layers.tier_of and b in layers.tier_of and layers.tier_of[a] > layers.tier_of[b]:
            upward.append(item)
        elif a in layers.independent and layers.independent.get(b) == layers.independent[a]:
            sideways.append(item)
    packages = {p for m in graph.modules if (p := top_level(m))}
    unlayered = sorted(packages - layers.tier_of.keys())

    print(f"analysed: {source_root / ROOT}")
    print(f"top-level packages and modules: {len(packages)}; imports between them: {len(imports)}")
    print(f"cycles between top-level packages: {len(cycles)}")
    print(f"upward imports against the declared layers: {len(upward)}", end="")
    print(f" ({sum(i.inside_function for i in upward)} of them inside a function or block)")
    print(f"imports between independent siblings: {len(sideways)}")
    print(f"unlayered: {', '.join(unlayered) or 'none'}")
    if args.quiet:
        return
    for cycle in cycles:
        print("  cycle:", " -> ".join(p.removeprefix(f"{ROOT}.") for p in [*cycle, cycle[0]]))
    for label, found in (("upward", upward), ("sideways", sideways)):
        for item in found:
            where = " (inside a block)" if item.inside_function else ""
            print(f"  {label}: {item.importer} -> {item.imported}{where}")


if __name__ == "__main__":
    main()
