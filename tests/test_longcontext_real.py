"""Long context on the real bundled models: lengths in their own tokenizers, and the quick suite.

The length checks fit every generator at lengths up to 32k tokens in the SmolLM2 (49k BPE) and
Gemma-3 (262k SentencePiece) tokenizers without running the model; the end-to-end test runs
`evalkit run --model smollm2-135m --suite long-context-quick` as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.backends import load_model
from evalkit.longcontext.check import with_grid
from evalkit.longcontext.fit import tolerance_for
from evalkit.longcontext.runner import build_grid
from evalkit.results.store import ResultsStore
from evalkit.specs import default_catalogue

# every generator of the full suite (the loglikelihood variant shares passkey's generator)
GENERATOR_TASKS = [
    e.task for e in default_catalogue().suite("long-context").tasks if not e.task.endswith("_ll")
]


@pytest.mark.real
@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_lengths_land_within_tolerance_in_the_models_own_tokenizer(model: str) -> None:
    backend = load_model(model)
    catalogue = default_catalogue()
    for name in GENERATOR_TASKS:
        spec = with_grid(
            catalogue.task(name),
            [300, 1000, 4096, 32768],
            [0.0, 0.5, 1.0] if name not in ("common_words", "frequent_words", "assoc_recall") else None,
        )
        spec = spec.model_copy(
            update={"long_context": spec.long_context.model_copy(update={"beyond_window": "run"})}  # type: ignore[union-attr]
        )
        grid = build_grid(backend, spec)
        assert grid.cells, name
        for cell in grid.cells:
            assert cell.fitted is not None
            budget = cell.length - grid.settings.max_new_tokens
            longest = max(len(backend.prompt_token_ids(p)) for p in cell.prompts)  # type: ignore[attr-defined]
            assert longest == cell.fitted.prompt_tokens, (name, cell.length)
            assert budget - tolerance_for(cell.length) <= longest <= budget, (name, cell.length, longest)


@pytest.mark.real
def test_long_context_quick_suite_end_to_end_on_smollm2(tmp_path: Path) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from evalkit.cli.main import main; main()",
            "run",
            "--model",
            "smollm2-135m",
            "--suite",
            "long-context-quick",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    records, problems = ResultsStore(results).read()
    assert not problems
    suite = default_catalogue().suite("long-context-quick")
    assert sorted(r.task.name for r in records) == sorted(e.task for e in suite.tasks)
    for record in records:
        assert record.status == "ok", record.error
        matrix = record.long_context
        assert matrix is not None, record.task.name
        assert matrix.lengths and len(matrix.scores) == len(matrix.depths)
        assert "effective_context_length" in record.metrics
        assert matrix.tokenizer, record.task.name  # class and vocabulary hash of the tokenizer used
    passkey = next(r for r in records if r.task.name == "passkey")
    assert passkey.long_context is not None
    # SmolLM2-135M-Instruct finds a passkey in 256-1024 tokens of filler at every depth
    assert passkey.metrics["ruler_all"].value >= 0.5


@pytest.mark.real
def test_llamacpp_skips_lengths_beyond_its_n_ctx_instead_of_truncating(tmp_path: Path) -> None:
    from evalkit.backends.llamacpp import import_llama_cpp
    from evalkit.errors import BackendUnavailableError

    try:
        import_llama_cpp()  # whichever binding is installed (compiled or prebuilt)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    backend = load_model("llamacpp:smollm2-135m,n_ctx=512")
    spec = with_grid(default_catalogue().task("passkey"), [256, 1024], [0.0, 1.0])
    grid = build_grid(backend, spec)
    assert "runs without truncating" in grid.skipped["1024"]
    assert {cell.length for cell in grid.cells} == {256}
    for cell in grid.cells:
        assert cell.fitted is not None
        assert 256 - 12 - tolerance_for(256) <= cell.fitted.prompt_tokens <= 256 - 12
    assert grid.tokenizer.startswith("llama.cpp:")
