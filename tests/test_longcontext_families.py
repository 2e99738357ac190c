"""The long-context pipeline on tiny random models of each family: transformer, SSM and hybrid.

Nothing is downloaded: models are built from configs (`tests/conftest_hf.py`) with the small
byte-level BPE tokenizer trained there (vocabulary 400). That tokenizer stands in for GPT-NeoX's,
which real Mamba checkpoints use but which is not available offline; being small, it splits the
haystack into many short tokens, a harder case for the length fitter than a 50k vocabulary.
The answers of random models mean nothing: the tests check lengths, the stored grid, the family,
and that shared-prefix serving gives the answers a from-scratch run gives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from evalkit.backends import load_model
from evalkit.longcontext.fit import tolerance_for
from evalkit.requests import GenerateRequest
from evalkit.results.store import ResultsStore
from evalkit.runner import EvalConfig, evaluate
from evalkit.specs import default_catalogue
from tests.conftest_hf import save_tiny_model

FAMILIES = {
    "llama": "transformer",
    "mamba": "ssm",
    "mamba2": "ssm",
    "falcon_mamba": "ssm",
    "jamba": "hybrid",
    "zamba": "hybrid",
}

TASK = """\
name: tiny_grid
kind: long_context
long_context:
  generator: passkey
  haystack: prose
  lengths: [256, 512]
  depths: [0.0, 0.5, 1.0]
  max_new_tokens: 8
  beyond_window: run
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {kind: save_tiny_model(root, kind) for kind in FAMILIES}


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_the_grid_runs_and_is_stored_for_each_family(
    kind: str, models: dict[str, Path], tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny_grid.yaml").write_text(TASK, encoding="utf-8")
    backend: Any = load_model(f"hf:{models[kind]}")
    config = EvalConfig(results_dir=tmp_path / "results", use_cache=False, show_progress=False)
    (record,) = evaluate(
        [backend], ["tiny_grid"], config=config, catalogue=default_catalogue([tasks])
    ).records
    assert record.status == "ok", record.error
    assert record.model.family == FAMILIES[kind]
    matrix = record.long_context
    assert matrix is not None and matrix.lengths == [256, 512] and len(matrix.scores) == 3
    assert matrix.tokenizer is not None and re.fullmatch(r"\w+:[0-9a-f]{16}", matrix.tokenizer)
    window = record.model.context_window
    assert matrix.beyond_window == [n for n in (256, 512) if window is not None and n > window]

    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert len(samples) == 6
    requests = []
    for sample in samples:
        extra = sample.extra
        budget = extra["length"] - extra["generation_budget"]
        assert budget - tolerance_for(extra["length"]) <= extra["prompt_tokens"] <= budget
        requests.append(GenerateRequest(sample.prompt, ("\n",), 8))
    # shared-prefix serving (what the task used) answers as a plain, from-scratch run does
    from evalkit.backends._hf_generate import greedy_generate

    shared = backend.generate_shared(requests)
    pad_free = FAMILIES[kind] != "transformer"
    scratch = [
        greedy_generate(backend.model, backend.encoder, [r], 1, 1 << 20, pad_free=pad_free)[0]
        for r in requests
    ]
    assert shared == scratch
