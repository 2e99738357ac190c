"""`--batch-size auto`, out-of-memory halving and the response cache's model key, on the fake backend.

The fake's `oom_above=N` fails any batch of more than N requests as a full GPU does, so halving is
exercised without a GPU; its answers never depend on the batch size.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fabricate_results import run_main

from evalkit.backends.fake import FakeBackend, FakeOptions, SimulatedOutOfMemoryError
from evalkit.requests import LoglikelihoodRequest
from evalkit.results import ModelFacts, ResultsStore, RunConfig, RunRecord
from evalkit.runner import EvalConfig, evaluate
from evalkit.runner.cache import NullCache, cache_model_key
from evalkit.runner.execute import (
    AUTO_START_CPU,
    AUTO_START_GPU,
    auto_batch_start,
    execute,
    is_out_of_memory,
)
from evalkit.specs import Catalogue

HALVING = re.compile(r"out of memory at batch size (\d+)\D.*retrying at batch size (\d+)")


def config(results: Path, **overrides: object) -> EvalConfig:
    fields: dict[str, object] = {"results_dir": results, "show_progress": False}
    fields.update(overrides)
    return EvalConfig(**fields)  # type: ignore[arg-type]


def samples_by_task(results: Path) -> dict[str, list[dict[str, object]]]:
    store = ResultsStore(results)
    records, problems = store.read()
    assert problems == []
    return {r.task.name: [s.model_dump() for s in store.read_samples(r)] for r in records}


def halvings(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    found = [HALVING.search(r.getMessage()) for r in caplog.records if r.name == "evalkit.runner"]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m is not None]


def test_auto_with_oom_gives_the_same_samples_as_batch_one(
    toy_catalogue: Catalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference = tmp_path / "batch1"
    evaluate(
        ["fake"],
        suite="toy",
        config=config(reference, batch_size=1, use_cache=False),
        catalogue=toy_catalogue,
    )
    auto = tmp_path / "auto"
    with caplog.at_level(logging.INFO, logger="evalkit.runner"):
        summary = evaluate(
            ["fake,oom_above=4"],
            suite="toy",
            config=config(auto, batch_size="auto", use_cache=False),
            catalogue=toy_catalogue,
        )
    assert [r.status for r in summary.records] == ["ok"] * 4
    for record in summary.records:
        assert record.config.batch_size == "auto"
        assert record.config.batch_sizes and all(size <= 4 for size in record.config.batch_sizes)
    mc = next(r for r in summary.records if r.task.name == "toy_mc")
    assert mc.config.batch_sizes == [4]  # 16 multiple-choice requests: 64 -> 32 -> 16 -> 8 -> 4 fits
    assert halvings(caplog)[:4] == [(64, 32), (32, 16), (16, 8), (8, 4)]
    assert samples_by_task(auto) == samples_by_task(reference)


def test_a_fixed_batch_halves_until_it_fits(
    toy_catalogue: Catalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference = tmp_path / "batch1"
    evaluate(
        ["fake"], ["toy_mc"], config=config(reference, batch_size=1, use_cache=False), catalogue=toy_catalogue
    )
    halved = tmp_path / "halved"
    with caplog.at_level(logging.INFO, logger="evalkit.runner"):
        summary = evaluate(
            ["fake,oom_above=3"],
            ["toy_mc"],
            config=config(halved, batch_size=16, use_cache=False),
            catalogue=toy_catalogue,
        )
    (record,) = summary.records
    assert record.status == "ok"
    assert record.config.batch_size == 16 and record.config.batch_sizes == [2]
    assert halvings(caplog) == [(16, 8), (8, 4), (4, 2)]
    assert samples_by_task(halved) == samples_by_task(reference)


def test_oom_at_batch_one_is_an_error_record_and_the_run_goes_on(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    # toy_cloze's answers are cached first: the failing model then still completes it.
    evaluate(["fake"], ["toy_cloze"], config=config(tmp_path / "first"), catalogue=toy_catalogue)
    summary = evaluate(
        ["fake,oom_above=0"],
        ["toy_mc", "toy_cloze"],
        config=config(tmp_path / "second", batch_size=8),
        catalogue=toy_catalogue,
    )
    failed, cached = summary.records
    assert failed.task.name == "toy_mc" and failed.status == "error"
    assert failed.error is not None and "out of memory" in failed.error
    assert "SimulatedOutOfMemoryError" in failed.error
    assert cached.task.name == "toy_cloze" and cached.status == "ok"
    assert summary.exit_code == 1  # a failure while running, not bad input


def test_a_cached_rerun_records_no_batch_sizes(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    first = evaluate(
        ["fake"], ["toy_mc"], config=config(tmp_path / "a", batch_size=4), catalogue=toy_catalogue
    )
    assert first.records[0].config.batch_sizes == [4]
    again = evaluate(
        ["fake"], ["toy_mc"], config=config(tmp_path / "b", batch_size=4), catalogue=toy_catalogue
    )
    assert again.records[0].config.batch_size == 4
    assert again.records[0].config.batch_sizes == []  # every answer came from the cache
    assert again.records[0].metrics == first.records[0].metrics


def test_auto_keeps_the_size_that_worked_for_the_model(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend(options=FakeOptions(oom_above=5))
    requests = [LoglikelihoodRequest(f"context {i}", f" answer {i}") for i in range(40)]
    expected = FakeBackend().loglikelihood(requests, batch_size=1)
    used: set[int] = set()
    with caplog.at_level(logging.INFO, logger="evalkit.runner"):
        first = execute(
            backend,
            requests,
            cache=NullCache(),
            batch_size="auto",
            show_progress=False,
            used_batch_sizes=used,
        )
    assert first == expected and used == {4}  # 64 -> 32 -> 16 -> 8 -> 4
    assert len(halvings(caplog)) == 4
    caplog.clear()
    used.clear()
    with caplog.at_level(logging.INFO, logger="evalkit.runner"):
        second = execute(
            backend,
            requests,
            cache=NullCache(),
            batch_size="auto",
            show_progress=False,
            used_batch_sizes=used,
        )
    assert second == expected and used == {4}
    assert halvings(caplog) == []  # the second call starts at the size found by the first
    # another loaded model starts its own search
    other = FakeBackend(options=FakeOptions(oom_above=20))
    used.clear()
    execute(other, requests, cache=NullCache(), batch_size="auto", show_progress=False, used_batch_sizes=used)
    assert used == {16}  # 64 -> 32 -> 16


def test_errors_other_than_out_of_memory_are_not_retried() -> None:
    class Broken(FakeBackend):
        def loglikelihood(self, requests, batch_size=16):  # type: ignore[no-untyped-def]
            self.calls["loglikelihood"] += 1
            raise ValueError("a backend bug")

    backend = Broken()
    with pytest.raises(ValueError, match="a backend bug"):
        execute(
            backend, [LoglikelihoodRequest("a", " b")], cache=NullCache(), batch_size=16, show_progress=False
        )
    assert backend.calls["loglikelihood"] == 1


def test_out_of_memory_is_recognised_without_importing_torch_for_it() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert is_out_of_memory(SimulatedOutOfMemoryError("out of memory (simulated)"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only a RuntimeError is read by message
    import torch

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("no words that say so"))
    assert is_out_of_memory(torch.OutOfMemoryError("no words that say so"))


def test_the_fake_really_batches_and_answers_the_same_at_any_size() -> None:
    requests = [LoglikelihoodRequest(f"q{i}", f" a{i}") for i in range(10)]
    fake = FakeBackend(options=FakeOptions(oom_above=3))
    with pytest.raises(SimulatedOutOfMemoryError, match="batch of 4 requests"):
        fake.loglikelihood(requests, batch_size=4)
    assert fake.loglikelihood(requests, batch_size=3) == FakeBackend().loglikelihood(requests, batch_size=10)
    assert fake.loglikelihood(requests[:3], batch_size=64)  # a short call is a short batch
    assert fake.describe().fingerprint == FakeBackend().describe().fingerprint  # same answers, same model


def facts(**changes: object) -> ModelFacts:
    base: dict[str, object] = {
        "name": "m",
        "backend": "transformers",
        "source": "x",
        "architecture": "LlamaForCausalLM",
        "family": "transformer",
        "parameters": 1,
        "dtype": "float32",
        "quantization": None,
        "bytes_on_disk": 1,
        "fingerprint": "f" * 64,
        "context_window": 2048,
    }
    base.update(changes)
    return ModelFacts.model_validate(base)


def test_the_cache_key_never_crosses_numerics() -> None:
    cpu32 = facts()
    assert cache_model_key(cpu32) == cpu32.fingerprint  # existing CPU float32 caches stay valid
    assert cache_model_key(facts(dtype="bfloat16")) != cache_model_key(cpu32)
    cuda = facts(device="cuda")
    assert cache_model_key(cuda) != cache_model_key(cpu32)
    assert cache_model_key(facts(device="cuda:1")) == cache_model_key(cuda)  # the kind, not the index
    assert cache_model_key(facts(device="cuda", dtype="bfloat16")) != cache_model_key(cuda)
    assert cache_model_key(facts(device="cpu")) == cpu32.fingerprint
    assert auto_batch_start(cuda) == AUTO_START_GPU
    assert auto_batch_start(cpu32) == AUTO_START_CPU


def test_the_cli_takes_auto_and_refuses_other_words(
    toy_tasks: Path, tmp_path: Path, fresh_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    args = [
        "run",
        "-m",
        "fake",
        "-t",
        "toy_mc",
        "--task-dir",
        str(toy_tasks),
        "--results",
        str(results),
        "-q",
    ]
    code, _, err = run_main([*args, "-b", "auto"], capsys)
    assert code == 0, err
    line = (results / "records.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["config"]["batch_size"] == "auto"
    for bad in ("0", "x", "-2", "1.5"):
        code, out, err = run_main([*args, "-b", bad], capsys)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and "--batch-size" in err and repr(bad) in err
    # lm-eval tasks batch by themselves (no halving): auto is refused before any model loads
    code, out, err = run_main(
        ["run", "-m", "fake", "-t", "lmeval:arc_easy", "-b", "auto", "--results", str(results)], capsys
    )
    assert code == 2 and err.startswith("error: --batch-size auto") and "lmeval:arc_easy" in err


def test_a_record_with_auto_round_trips(toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path) -> None:
    results = tmp_path / "results"
    (record,) = evaluate(
        ["fake"], ["toy_mc"], config=config(results, batch_size="auto"), catalogue=toy_catalogue
    ).records
    assert RunRecord.model_validate_json(record.model_dump_json()) == record
    (stored,), _ = ResultsStore(results).read()
    assert stored == record and stored.config.batch_size == "auto"
    # a number stays a JSON number (records written before "auto" existed read and write unchanged)
    number = RunConfig.model_validate({**record.config.model_dump(), "batch_size": 16})
    assert json.loads(number.model_dump_json())["batch_size"] == 16
