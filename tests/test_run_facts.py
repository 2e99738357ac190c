"""Records state what ran: each executor's own limit (and its unit), seed, batch sizes, shots and
documents — not the command-line options it ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.backends.fake import FakeBackend
from evalkit.results import ResultsStore, RunRecord
from evalkit.runner import EvalConfig, evaluate
from evalkit.specs import Catalogue, default_catalogue
from tests.conftest import MC_DOCS
from tests.test_interop_lmeval import MC_DOCS as LM_MC_DOCS
from tests.test_interop_lmeval import MC_YAML, _write_task
from tests.test_longcontext_task import PASSKEY, write_task

EFFICIENCY = """\
name: tiny_efficiency
kind: efficiency
efficiency:
  prompt_lengths: [16]
  context_lengths: [16]
  decode_tokens: 2
  warmup: 0
  min_repetitions: 1
  min_seconds: 0.0
  isolate: false
"""


def run_one(catalogue: Catalogue, task: str, tmp_path: Path, **options: object) -> RunRecord:
    fields: dict[str, object] = {"results_dir": tmp_path / "results", "show_progress": False}
    fields.update(options)
    summary = evaluate([FakeBackend()], [task], config=EvalConfig(**fields), catalogue=catalogue)  # type: ignore[arg-type]
    (record,) = summary.records
    assert record.status == "ok", record.error
    stored, problems = ResultsStore(tmp_path / "results").read()
    assert problems == [] and stored[-1] == record  # what the caller got is what was stored
    return record


def test_a_document_task_states_its_limit_shots_seed_and_batch(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    record = run_one(toy_catalogue, "toy_mc", tmp_path, limit=4, batch_size=3, seed=7)
    config = record.config
    assert (config.executor, config.limit, config.limit_unit) == ("multiple_choice", 4, "documents")
    assert config.num_documents == 4 == record.task.num_samples
    assert (config.batch_size, config.batch_sizes) == (3, [3])
    # Zero shots: nothing was sampled, so no seed drove this run whatever --seed said.
    assert (config.num_fewshot, config.seed) == (0, None)

    with_shots = run_one(toy_catalogue, "toy_mc", tmp_path, num_fewshot=2, seed=7)
    assert (with_shots.config.num_fewshot, with_shots.config.seed) == (2, 7)
    assert with_shots.config.num_documents == len(MC_DOCS) and with_shots.config.limit is None


def test_a_rerun_from_the_cache_sends_no_batch(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    run_one(toy_catalogue, "toy_cloze", tmp_path)
    again = run_one(toy_catalogue, "toy_cloze", tmp_path, force=True)
    assert again.config.batch_size == 16 and again.config.batch_sizes == []


def test_long_context_states_samples_per_cell_and_batch_one(tmp_path: Path, fresh_cache: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    record = run_one(default_catalogue([tasks]), "tiny_passkey", tmp_path, limit=1, seed=5, batch_size=8)
    config = record.config
    assert (config.executor, config.limit, config.limit_unit) == ("long_context", 1, "samples_per_cell")
    assert (config.seed, config.batch_size, config.batch_sizes) == (5, 1, [1])
    assert config.num_documents == 3 * 3 == record.task.num_samples  # 3 depths x 3 lengths x 1 sample


def test_efficiency_takes_no_limit_and_no_batch(tmp_path: Path, fresh_cache: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, EFFICIENCY)
    record = run_one(default_catalogue([tasks]), "tiny_efficiency", tmp_path, limit=3, batch_size=8)
    config = record.config
    assert (config.executor, config.limit, config.limit_unit) == ("efficiency", None, "none")
    assert (config.batch_size, config.batch_sizes, config.num_documents) == (None, [], 0)
    assert config.seed == 1234  # the task's own token seed
    assert record.efficiency is not None and record.efficiency.settings.seed == 1234


@pytest.mark.parametrize("seed", [0, 99])
def test_lmeval_records_the_seed_it_ran_with(
    seed: int, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _write_task(tmp_path / "lm", "toy_lm_mc", MC_YAML, LM_MC_DOCS)
    monkeypatch.setenv("EVALKIT_LMEVAL_INCLUDE", str(folder))
    record = run_one(default_catalogue(), "lmeval:toy_lm_mc", tmp_path, seed=seed, batch_size=4)
    config = record.config
    assert (config.executor, config.seed, config.batch_sizes) == ("lmeval", seed, [4])
    assert config.num_documents == len(LM_MC_DOCS) and record.task.name == "lmeval:toy_lm_mc"
