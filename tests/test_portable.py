"""Portable locators: stored records name files by package, cache, task folder or name + sha256,
never by a path of the machine that wrote them (a results folder can be shared as it is)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.paths import portable_locator, resolve_locator, task_file_locator
from evalkit.specs import builtin_task_dir

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- the helper -----------------------------------------------------------------------------------


def test_builtin_task_files_are_named_by_package_and_resolve_back() -> None:
    arc = builtin_task_dir() / "arc_easy.yaml"
    assert task_file_locator(arc) == "evalkit.tasks:arc_easy.yaml"
    assert portable_locator(builtin_task_dir() / "suites" / "quick.yaml") == "evalkit.tasks:suites/quick.yaml"
    assert resolve_locator("evalkit.tasks:arc_easy.yaml") == arc.resolve()
    # A built-in task's own data, anchored at its folder as the source facts state it.
    data = builtin_task_dir() / "data" / "demo_qa.jsonl"
    assert portable_locator(data, relative_to=("task", builtin_task_dir())) == "task:data/demo_qa.jsonl"
    assert portable_locator(data) == "evalkit.tasks:data/demo_qa.jsonl"


def test_a_file_in_an_installed_package_is_package_and_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    # A name no real wheel uses, so the package is found here and nowhere else.
    weights = _write(site / "evalkit_test_weights" / "models" / "tiny.Q4_1.gguf")
    metadata = _write(site / "evalkit_test_weights-0.1.2.dist-info" / "RECORD")
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    assert portable_locator(weights) == "evalkit_test_weights:models/tiny.Q4_1.gguf"
    assert resolve_locator("evalkit_test_weights:models/tiny.Q4_1.gguf") == weights.resolve()
    # Not a package folder: only the name is kept.
    assert portable_locator(metadata) == "file:RECORD"


def test_a_cached_file_is_relative_to_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    gemma = _write(tmp_path / "cache" / "gguf" / "gemma-3-270m-q4_k_m.gguf")
    assert portable_locator(gemma) == "cache:gguf/gemma-3-270m-q4_k_m.gguf"
    assert resolve_locator("cache:gguf/gemma-3-270m-q4_k_m.gguf") == gemma


def test_a_hub_snapshot_file_is_repo_commit_and_file(tmp_path: Path) -> None:
    # The hub cache links snapshot files to content-named blobs: the snapshot path names the file.
    repo = tmp_path / "hub" / "models--unsloth--gemma-3-270m-it-GGUF"
    blob = _write(repo / "blobs" / "5f1c")
    link = repo / "snapshots" / "abc123" / "gemma.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    assert portable_locator(link) == "unsloth/gemma-3-270m-it-GGUF@abc123:gemma.gguf"
    assert resolve_locator(portable_locator(link)) is None  # no folder on this machine is implied


def test_anything_else_keeps_only_its_name_and_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = _write(tmp_path / "models" / "y.gguf", b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert portable_locator(model, sha256=digest) == f"file:y.gguf@sha256:{digest}"
    assert portable_locator("models/y.gguf") == "file:y.gguf"  # relative to the working folder
    assert portable_locator(tmp_path / "my-model") == "file:my-model"  # a model folder
    # Outside the anchor folder (an absolute or ../ data path): the name, not a climbing path.
    outside = _write(tmp_path / "shared" / "qa.jsonl")
    assert portable_locator(outside, relative_to=("task", tmp_path / "tasks")) == "file:qa.jsonl"
    inside = _write(tmp_path / "tasks" / "data" / "qa.jsonl")
    assert portable_locator(inside, relative_to=("task", tmp_path / "tasks")) == "task:data/qa.jsonl"


def test_a_users_task_file_is_named_by_its_task_folder(tmp_path: Path) -> None:
    task = _write(tmp_path / "my-tasks" / "qa.yaml")
    nested = _write(tmp_path / "lm" / "group" / "toy.yaml")
    assert task_file_locator(task) == "taskdir:my-tasks/qa.yaml"
    assert task_file_locator(str(task)) == "taskdir:my-tasks/qa.yaml"
    assert task_file_locator(nested, roots=[tmp_path / "lm"]) == "taskdir:lm/group/toy.yaml"
    assert task_file_locator(None) is None


@pytest.mark.parametrize(
    "locator",
    ["task:data/qa.jsonl", "taskdir:mine/qa.yaml", "file:y.gguf", "evalkit.tasks:../../pyproject.toml", "x"],
)
def test_locators_without_a_place_on_this_machine_resolve_to_nothing(locator: str) -> None:
    assert resolve_locator(locator) is None


def test_an_absolute_path_from_an_older_record_still_resolves(tmp_path: Path) -> None:
    assert resolve_locator(str(tmp_path / "tasks" / "qa.yaml")) == tmp_path / "tasks" / "qa.yaml"


# --- where records are built ----------------------------------------------------------------------


def test_hf_model_folder_and_gguf_file_are_recorded_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache: Path
) -> None:
    from evalkit.backends import _hf_load

    loaded_model = SimpleNamespace(config=SimpleNamespace())

    def from_pretrained(location: str, dtype: str, **extra: str) -> tuple[Any, Any]:
        return loaded_model, object()

    monkeypatch.setattr(_hf_load, "_from_pretrained", from_pretrained)
    monkeypatch.setattr(_hf_load, "_convert_gguf", from_pretrained)
    monkeypatch.setattr(_hf_load, "_save_conversion", lambda model, tokenizer, folder: None)
    monkeypatch.setattr(_hf_load, "gguf_quant_type", lambda path: "Q4_K_M")
    folder = tmp_path / "home" / "me" / "my-model"
    _write(folder / "config.json", b"{}")
    _write(folder / "model.safetensors", b"tensors")
    assert _hf_load.load_local_dir(folder, "float32").source == "file:my-model"
    gguf = _write(tmp_path / "home" / "me" / "tiny.gguf", b"GGUF weights")
    digest = hashlib.sha256(b"GGUF weights").hexdigest()
    assert _hf_load.load_gguf(gguf, "float32").source == f"file:tiny.gguf@sha256:{digest}"


def test_site_shows_a_builtin_spec_by_its_locator_and_no_unknown_file() -> None:
    from evalkit.site._task_page import _spec_text

    assert "name: arc_easy" in _spec_text("evalkit.tasks:arc_easy.yaml")
    assert _spec_text("taskdir:tasks/arc_easy.yaml") == ""
    assert _spec_text("evalkit.tasks:../pyproject.toml") == ""


def _leaks(results: Path, places: list[str]) -> list[str]:
    """Every (file, place) where a stored line names one of `places`."""
    found = []
    for path in sorted(results.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(results)}: {place}" for place in places if place in text]
    return found


def test_stored_records_and_sample_logs_name_no_machine_path(
    toy_tasks: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    from evalkit.cli.main import cli

    (toy_tasks / "haystack.txt").write_text("One sentence here. Another sentence there. " * 40)
    (toy_tasks / "toy_passkey.yaml").write_text(
        "name: toy_passkey\nkind: long_context\nlong_context:\n  generator: passkey\n"
        "  params: {digits: 5}\n  haystack: haystack.txt\n  lengths: [64, 128]\n  depths: [0.5]\n"
        "  samples: 1\n  max_new_tokens: 8\n"
    )
    results = tmp_path / "results"
    tasks = "toy_mc,toy_cloze,toy_gen,toy_ppl,toy_passkey,demo_qa,demo_prose"
    outcome = CliRunner().invoke(
        cli, ["run", "-m", "fake", "-t", tasks, "--task-dir", str(toy_tasks), "--results", str(results), "-q"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "stored 7 record(s)" in outcome.output

    from evalkit.results import ResultsStore

    stored, problems = ResultsStore(results).read()
    assert problems == []
    records = {record.task.name: record for record in stored}
    assert records["toy_mc"].task.spec_file == "taskdir:tasks/toy_mc.yaml"
    assert records["toy_mc"].task.source.location == "task:data/mc.jsonl"
    assert records["demo_qa"].task.spec_file == "evalkit.tasks:demo_qa.yaml"
    assert records["demo_qa"].task.source.location == "task:data/demo_qa.jsonl"
    assert records["toy_passkey"].task.source.location.startswith("haystack=file:haystack.txt:")

    places = [str(tmp_path), str(tmp_path.resolve()), str(REPO), "site-packages"]
    home = Path.home()
    if len(home.parts) > 1:  # HOME "/" would match every path
        places.append(str(home))
    assert _leaks(results, places) == []


def test_the_committed_reference_results_hold_no_machine_path() -> None:
    """results/ is published with the project: no checkout path, home folder or site-packages in it."""
    results = Path(__file__).resolve().parents[1] / "results"
    forbidden = [str(results.parent), "site-packages", "/root/", "/home/", "/tmp/"]
    for path in [results / "records.jsonl", *sorted((results / "samples").glob("*.jsonl"))]:
        text = path.read_text(encoding="utf-8")
        for fragment in forbidden:
            assert fragment not in text, f"{path.name} holds {fragment!r}"
