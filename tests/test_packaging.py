"""Packaging: the wheel ships every subpackage (an editable install hides a package missing from
pyproject), every third-party module evalkit imports is a declared dependency, and the README's
command reference is the CLI's current help."""

from __future__ import annotations

import ast
import io
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_evalkit_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "evalkit").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert on_disk - listed == set()


def test_package_data_covers_every_shipped_data_file() -> None:
    """Every non-Python file in a package folder (word lists, task YAML and data, site assets) is
    matched by that package's package-data, and each data folder is a listed package of its own (a
    folder that is not makes setuptools warn, and a later setuptools ignores it)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: REPO / Path(*name.split(".")) for name in setuptools["packages"]}
    folders.update({name: REPO / path for name, path in setuptools["package-dir"].items()})
    package_of = {folder.resolve(): name for name, folder in folders.items()}
    data = setuptools["package-data"]
    missing = []
    for root in (REPO / "evalkit", REPO / "tasks"):
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            package = package_of.get(path.parent.resolve())
            if package is None or not any(path.match(pattern) for pattern in data.get(package, [])):
                missing.append(str(path.relative_to(REPO)))
    assert missing == []
    assert list((REPO / "evalkit" / "longcontext" / "words").glob("*.txt"))


# -- every third-party import is a declared dependency ---------------------------------------------

# Import names whose distribution is spelled differently on PyPI; any other name is its own distribution
# (with "_" read as "-").
DISTRIBUTION_OF_IMPORT = {
    "yaml": "pyyaml",
    "llama_cpp": "llama-cpp-python",
    "optimum": "optimum-quanto",
    "lm_eval": "lm-eval",
}
# Installed first by the Makefile, pinned to the CPU build: declaring it would let pip pull a multi-GB
# CUDA build (see the comment in pyproject's dependencies).
INSTALLED_BEFORE_THE_PROJECT = {"torch"}


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "dev":  # tools, not something evalkit's code may import
            requirements.extend(extra)
    # A requirement starts with its distribution name: "numpy>=2.0", "optimum-quanto==0.2.7".
    return {_normalized(re.split(r"[\s\[<>=!~;@]", req, maxsplit=1)[0]) for req in requirements}


def _imported_top_level_names(source: str) -> set[str]:
    """Every module evalkit imports, at the top or inside a function, including
    `importlib.import_module("literal")`, as its top-level name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def third_party_imports() -> dict[str, list[str]]:
    """Top-level third-party module name -> the evalkit files that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "evalkit").rglob("*.py")):
        for name in _imported_top_level_names(path.read_text()):
            if name == "evalkit" or name in sys.stdlib_module_names:
                continue
            found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


def test_the_import_walk_sees_imports_inside_functions_and_import_module_calls() -> None:
    source = (
        "import os.path\nfrom a.b import c\nfrom . import d\n"
        "def f():\n    import numpy as np\n    from scipy.stats import binomtest\n"
        "    return importlib.import_module('llama_cpp')\n"
    )
    assert _imported_top_level_names(source) == {"os", "a", "numpy", "scipy", "llama_cpp"}


def test_every_third_party_import_is_a_declared_dependency_or_extra() -> None:
    declared = _declared_distributions()
    imports = third_party_imports()
    assert {"numpy", "scipy", "jinja2", "yaml", "torch"} <= imports.keys()  # the walk sees lazy imports
    undeclared = {
        name: files
        for name, files in imports.items()
        if name not in INSTALLED_BEFORE_THE_PROJECT
        and _normalized(DISTRIBUTION_OF_IMPORT.get(name, name)) not in declared
    }
    assert undeclared == {}, f"imported by evalkit but not declared in pyproject.toml: {undeclared}"


def test_torch_stays_out_of_the_declared_dependencies() -> None:
    assert "torch" not in _declared_distributions()


# -- the README's command reference is the CLI's own help ------------------------------------------


def _cog_check(readme: Path) -> tuple[int, str]:
    from cogapp import Cog

    cog = Cog()
    out = io.StringIO()
    cog.set_output(stdout=out, stderr=out)
    status = cog.main(["cog", "--check", "--diff", "--check-fail-msg", "run `make docs`", str(readme)])
    return status, out.getvalue()


def test_readme_command_reference_matches_the_cli_help() -> None:
    status, output = _cog_check(REPO / "README.md")
    assert status == 0, output


def test_the_reference_check_fails_when_an_option_drifts(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = (REPO / "README.md").read_text()
    assert "  --results DIRECTORY" in text
    readme.write_text(text.replace("  --results DIRECTORY", "  --results-dir DIRECTORY", 1))
    status, output = _cog_check(readme)
    assert status != 0 and "run `make docs`" in output


def test_the_reference_covers_every_command_and_subcommand() -> None:
    from evalkit.cli._reference import command_paths, command_reference
    from evalkit.cli.main import COMMANDS

    paths = command_paths()
    assert {path[0] for path in paths} == set(COMMANDS)
    assert ("tasks", "list") in paths and ("tasks", "show") in paths
    reference = command_reference()
    for path in paths:
        assert f"$ evalkit {' '.join(path)} --help\nUsage: evalkit {' '.join(path)} " in reference
