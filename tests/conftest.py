"""Shared fixtures: an isolated cache, and a folder of toy tasks over local data files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# In CI a test that skips because a dependency, model, data or browser is missing is a failure:
# a broken install must not go green by skipping. Locally a skip stays a skip (and says why).
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# The one exception: the gpu tier (tests/test_gpu.py) on a machine without a GPU. No GPU is not a
# broken install; a GPU test that skips for any other reason (a missing model) still fails.
NO_CUDA_REASON = "no CUDA device"


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not IN_CI or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ") == NO_CUDA_REASON:
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.fixture(autouse=True, scope="session")
def _evalkit_cache_dir() -> None:
    # Converted models are slow to build, so the test cache persists between runs (it is
    # keyed by file hashes); it is kept apart from the user's own ~/.cache/evalkit.
    os.environ.setdefault("EVALKIT_CACHE_DIR", str(REPO / ".cache" / "test-cache"))


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty response cache for tests that count backend calls."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache))
    return cache


MC_DOCS = [
    {"question": "What color is the sky?", "options": ["blue", "green", "red"], "answer": 0},
    {"question": "Which is a fruit?", "options": ["carrot", "apple"], "answer": 1},
    {"question": "2 + 2 =", "options": ["3", "4", "5", "22"], "answer": 1},
    {"question": "Water freezes at", "options": ["0 C", "100 C"], "answer": 0},
    {"question": "The opposite of hot is", "options": ["cold", "warm", "big"], "answer": 0},
    {"question": "Cats say", "options": ["woof", "meow"], "answer": 1},
]


def write_toy_tasks(root: Path) -> Path:
    """Write toy tasks of every kind (local jsonl data) and a suite; returns the folder."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    with (data / "mc.jsonl").open("w") as handle:
        for doc in MC_DOCS:
            handle.write(json.dumps({"choices": doc["options"], "gold": doc["answer"], **doc}) + "\n")
    with (data / "cloze.jsonl").open("w") as handle:
        for text, target in [("The cat sat on the", "mat"), ("Once upon a", "time"), ("Hello", "world")]:
            handle.write(json.dumps({"text": text, "target": target}) + "\n")
    with (data / "qa.jsonl").open("w") as handle:
        for question, answer in [
            ("Capital of France?", "Paris"),
            ("3 times 3?", "9"),
            ("Color of snow?", "white"),
        ]:
            handle.write(json.dumps({"question": question, "answers": [answer]}) + "\n")
    with (data / "prose.jsonl").open("w") as handle:
        for text in [
            "The quick brown fox jumps over the lazy dog.",
            "A stitch in time saves nine, they say.",
        ]:
            handle.write(json.dumps({"text": text}) + "\n")
    (root / "toy_mc.yaml").write_text(
        "name: toy_mc\n"
        "kind: multiple_choice\n"
        "summary: toy multiple choice\n"
        "dataset:\n"
        "  mirrors:\n"
        "    - {format: jsonl, path: data/mc.jsonl, split: test}\n"
        'template: "Question: {question}\\nAnswer:"\n'
        "metrics: [acc, acc_norm]\n"
    )
    (root / "toy_cloze.yaml").write_text(
        "name: toy_cloze\nkind: loglikelihood\ndataset:\n  mirrors:\n"
        "    - {format: jsonl, path: data/cloze.jsonl, split: test}\n"
        'template: "{text}"\nmetrics: [acc, perplexity]\n'
    )
    (root / "toy_gen.yaml").write_text(
        "name: toy_gen\nkind: generate\ndataset:\n  mirrors:\n"
        "    - {format: jsonl, path: data/qa.jsonl, split: test}\n"
        'template: "Q: {question}\\nA:"\ngeneration: {stop: ["\\n"], max_tokens: 8}\n'
        "metrics: [exact_match, contains]\n"
    )
    (root / "toy_ppl.yaml").write_text(
        "name: toy_ppl\nkind: perplexity\ndataset:\n  mirrors:\n"
        "    - {format: jsonl, path: data/prose.jsonl, split: test}\n"
        "metrics: [word_perplexity, byte_perplexity, bits_per_byte]\n"
    )
    (root / "suites").mkdir(exist_ok=True)
    (root / "suites" / "toy.yaml").write_text(
        "suite: toy\nsummary: every kind, tiny\ntasks:\n"
        "  - {task: toy_mc}\n  - {task: toy_cloze}\n  - {task: toy_gen}\n  - {task: toy_ppl}\n"
    )
    return root


@pytest.fixture
def toy_tasks(tmp_path: Path) -> Path:
    return write_toy_tasks(tmp_path / "tasks")


@pytest.fixture
def toy_catalogue(toy_tasks: Path):  # type: ignore[no-untyped-def]
    from evalkit.specs import Catalogue

    return Catalogue([toy_tasks])
