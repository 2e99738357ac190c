"""The registry mechanism, end to end: an outside package adds a preprocessor and a backend.

`examples/plugin` is a real package with entry points in its pyproject.toml. Installing it would
write a `*.dist-info` folder with an `entry_points.txt`; the test writes exactly that folder
(from the example's own pyproject, so the two cannot drift) beside the package source, puts both
on PYTHONPATH and runs the evalkit CLI in a fresh interpreter, as a user would after `pip install`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evalkit.errors import SpecError, UnknownNameError
from evalkit.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin"


def install_as_dist_info(pyproject: Path, site: Path) -> None:
    """What pip writes for a package: METADATA and entry_points.txt in NAME-VERSION.dist-info."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = project["name"].replace("-", "_")
    info = site / f"{name}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))


def run_cli(args: list[str], pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    command = [sys.executable, "-c", "from evalkit.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


@pytest.fixture
def plugin_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install_as_dist_info(EXAMPLE / "pyproject.toml", site)
    return site


def write_shouting_task(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [
        {"question": "is the sky blue?", "choices": ["yes", "no"], "gold": 0},
        {"question": "is fire cold?", "choices": ["yes", "no"], "gold": 1},
    ]
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "shouted.yaml").write_text(
        "name: shouted\nkind: multiple_choice\npreprocess: shout\n"
        "dataset:\n  mirrors:\n    - {format: jsonl, path: qa.jsonl, split: test}\n"
        'template: "Q: {question}\\nA:"\nmetrics: [acc]\n'
    )


def test_an_outside_package_adds_a_preprocessor_and_a_backend(plugin_site: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_shouting_task(tasks)
    results = tmp_path / "results"
    path = [plugin_site, EXAMPLE]
    args = ["run", "-m", "uniform:bytes", "-t", "shouted", "--task-dir", str(tasks)]
    done = run_cli([*args, "--results", str(results), "-q"], path, tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((results / "records.jsonl").read_text().splitlines()[0])
    assert record["model"]["backend"] == "uniform" and record["model"]["architecture"] == "Uniform"
    assert record["config"]["executor"] == "multiple_choice"
    samples = [json.loads(line) for line in (results / record["samples_file"]).read_text().splitlines()]
    assert [s["prompt"] for s in samples] == ["Q: IS THE SKY BLUE?\nA:", "Q: IS FIRE COLD?\nA:"]
    # Every byte equally likely: "yes" and "no" differ only in length, so the shorter wins.
    assert [s["response"] for s in samples] == [
        [pytest.approx(-4 * 5.545177), pytest.approx(-3 * 5.545177)]
    ] * 2

    listed = run_cli(["plugins"], path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "shout" in listed.stdout and "evalkit-plugin-example" in listed.stdout
    assert "evalkit_plugin_example:load_uniform" in listed.stdout


def test_without_the_package_its_names_are_unknown_with_suggestions(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_shouting_task(tasks)
    done = run_cli(["run", "-m", "fake", "-t", "shouted", "--task-dir", str(tasks)], [], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error:")
    assert "unknown preprocessor 'shout'" in done.stderr and "shouted.yaml:3" in done.stderr


def test_two_packages_claiming_one_name_is_an_error_naming_both(plugin_site: Path, tmp_path: Path) -> None:
    clash = tmp_path / "clash"
    (clash / "clash_pkg").mkdir(parents=True)
    (clash / "clash_pkg" / "__init__.py").write_text("def arc(doc):\n    return doc\n")
    (clash / "pyproject.toml").write_text(
        '[project]\nname = "clash-pkg"\nversion = "1.0"\n'
        '[project.entry-points."evalkit.preprocessors"]\narc = "clash_pkg:arc"\n'
    )
    install_as_dist_info(clash / "pyproject.toml", plugin_site)
    probe = "from evalkit.sources import get_preprocessor; get_preprocessor('arc')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(clash)])}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "preprocessor 'arc' is registered twice" in done.stderr
    assert "evalkit (evalkit.sources.preprocessors:arc)" in done.stderr and "clash-pkg" in done.stderr


def test_runtime_registration_and_its_conflicts() -> None:
    registry: Registry[int] = Registry("number", "test-numbers")
    assert registry.register("one", 1) == 1
    registry.register("one", 1)  # the same object again is fine
    with pytest.raises(SpecError, match=r"number 'one' is already registered"):
        registry.register("one", 2)
    assert registry.get("one") == 1 and "one" in registry and registry.names() == ["one"]
    with pytest.raises(UnknownNameError, match=r"unknown number 'onr'; did you mean 'one'\?"):
        registry.get("onr")
    registry.unregister("one")
    assert registry.names() == []


def test_builtins_are_registered_through_evalkits_own_entry_points() -> None:
    from evalkit.backends import ALIASES, BACKENDS
    from evalkit.kinds import EXECUTORS
    from evalkit.longcontext import GENERATORS
    from evalkit.sources import PREPROCESSORS

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    for registry in (EXECUTORS, BACKENDS, ALIASES, PREPROCESSORS, GENERATORS):
        declared = pyproject[registry.group]
        assert registry.names() == sorted(declared), registry.group
        for row in registry.registrations():
            assert row.origin == "evalkit" and row.target == declared[row.name]
        registry.values()  # every built-in loads and passes its registry's check
