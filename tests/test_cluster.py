"""The Ray executor (`evalkit run --executor ray`): records identical to the local executor's.

One local Ray serves the whole test session (starting one costs 4-8 s and ~700 MB). What is checked:
every document kind, a long-context grid and an efficiency task give the same records on Ray (2
workers, 3 shards) as locally; a worker killed mid-unit costs a retry, not a result; a unit that
keeps failing gives an error record and the run goes on; a rerun sends only what the cache lacks
(and the driver's cache rows are the local executor's); bad input fails with one line and exit 2.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fabricate_results import run_main

from evalkit.backends.fake import FakeBackend
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, RollingRequest
from evalkit.results import RunRecord
from evalkit.results.store import ResultsStore
from evalkit.runner import EvalConfig, evaluate
from evalkit.runner.cluster import ClusterError, ClusterOptions
from evalkit.runner.cluster._units import shard_requests
from evalkit.specs import Catalogue

ray = pytest.importorskip("ray", reason="ray not installed")

TWO_WORKERS = ClusterOptions(workers=2, shards=3)

PASSKEY = """\
name: tiny_passkey
kind: long_context
long_context:
  generator: passkey
  haystack: noise
  lengths: [256, 512]
  depths: [0.0, 0.5, 1.0]
  samples: 2
  max_new_tokens: 8
"""

EFFICIENCY = """\
name: tiny_eff
kind: efficiency
efficiency:
  prompt_lengths: [16, 32]
  context_lengths: [16]
  decode_tokens: 2
  warmup: 0
  min_repetitions: 2
  min_seconds: 0.0
"""


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """One local Ray (2 CPUs) for the session, started the way `evalkit run --executor ray` starts one."""
    from evalkit.runner.cluster import ray_runtime

    with ray_runtime(None, num_cpus=2):
        yield


@pytest.fixture
def tasks(toy_tasks: Path) -> Path:
    (toy_tasks / "tiny_passkey.yaml").write_text(PASSKEY)
    (toy_tasks / "tiny_eff.yaml").write_text(EFFICIENCY)
    return toy_tasks


def run(
    tmp: Path, name: str, tasks: Path, selected: list[str], *, model: str = "fake", **config: Any
) -> list[RunRecord]:
    options = {"results_dir": tmp / name, "show_progress": False, "use_cache": False, **config}
    summary = evaluate([model], selected, config=EvalConfig(**options), catalogue=Catalogue([tasks]))
    return summary.records


def comparable(record: RunRecord, results: Path) -> dict[str, Any]:
    """What must not depend on where a record was computed (the efficiency figures are timings)."""
    samples = [s.model_dump() for s in ResultsStore(results).read_samples(record)]
    timed = record.task.kind == "efficiency"
    return {
        "status": (record.status, record.error),
        "model": record.model.model_dump(),
        "task": record.task.model_dump(),
        "metrics": None if timed else {k: v.model_dump() for k, v in record.metrics.items()},
        "long_context": record.long_context.model_dump() if record.long_context else None,
        "samples": samples,
        "batch_sizes": record.config.batch_sizes,
    }


DOCUMENT_TASKS = ["toy_mc", "toy_cloze", "toy_gen", "toy_ppl"]

LMEVAL_GENERATE = """\
task: toy_lm_gen
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: generate_until
test_split: test
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 8, do_sample: false, temperature: 0.0}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
"""


def test_ray_records_are_identical_to_local_ones(local_ray: None, tasks: Path, tmp_path: Path) -> None:
    selected = [*DOCUMENT_TASKS, "tiny_passkey", "tiny_eff"]
    local = run(tmp_path, "local", tasks, selected)
    spread = run(tmp_path, "ray", tasks, selected, cluster=TWO_WORKERS)
    assert [r.status for r in spread] == ["ok"] * len(selected), [r.error for r in spread]
    assert [r.task.name for r in spread] == selected
    for here, there in zip(local, spread, strict=True):
        assert comparable(there, tmp_path / "ray") == comparable(here, tmp_path / "local"), here.task.name
    efficiency = spread[-1].efficiency
    assert efficiency is not None and efficiency.isolated and efficiency.decode_tokens_per_s
    assert spread[-1].host.hostname == socket.gethostname()  # measured on a worker of this machine


def test_a_worker_killed_mid_unit_costs_a_retry_not_a_result(
    local_ray: None, tasks: Path, tmp_path: Path
) -> None:
    model = "fake,delay_s=0.4"  # each batch takes 0.4 s: time to find the worker and kill it
    local = run(tmp_path, "local", tasks, ["toy_mc"], model=model)
    with kill_first_worker_serving() as killed:
        spread = run(tmp_path, "ray", tasks, ["toy_mc"], model=model, cluster=TWO_WORKERS)
    assert killed, "no worker was seen serving a unit"
    assert spread[0].status == "ok", spread[0].error
    assert comparable(spread[0], tmp_path / "ray") == comparable(local[0], tmp_path / "local")


def test_a_unit_that_keeps_failing_is_an_error_record_and_the_run_goes_on(
    local_ray: None, tasks: Path, tmp_path: Path
) -> None:
    # Every worker that is sent the document "Cats say" exits at once, as if killed.
    options = ClusterOptions(workers=2, shards=3, retries=1)
    records = run(
        tmp_path, "ray", tasks, ["toy_mc", "toy_cloze"], model="fake,exit_on=Cats say", cluster=options
    )
    failed, next_task = records
    assert failed.status == "error" and failed.task.name == "toy_mc"
    assert failed.error is not None and "UnitFailedError" in failed.error
    assert (
        "failed 2 time(s)" in failed.error
        and ") was lost: " in failed.error
        and "--retries 1" in failed.error
    )
    assert next_task.status == "ok" and next_task.task.num_samples == 3  # replacement workers served it


def test_a_unit_past_the_unit_timeout_is_abandoned_not_waited_for(
    local_ray: None, tasks: Path, tmp_path: Path
) -> None:
    options = ClusterOptions(workers=2, shards=3, retries=0, unit_timeout_s=0.5)
    started = time.monotonic()
    (record,) = run(tmp_path, "ray", tasks, ["toy_mc"], model="fake,delay_s=30", cluster=options)
    assert time.monotonic() - started < 20  # not the 30 s a batch takes
    assert record.status == "error" and record.error is not None
    assert "did not finish within 0.5 s (--unit-timeout)" in record.error


def test_an_lmeval_task_runs_whole_on_a_worker(
    local_ray: None, tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lmeval = tmp_path / "lmeval"
    lmeval.mkdir()
    (lmeval / "toy_lm_gen.jsonl").write_text(
        "".join(
            f'{{"question": "{q}", "answer": "{a}"}}\n'
            for q, a in [("Capital of France?", "Paris"), ("3x3?", "9")]
        )
    )
    (lmeval / "toy_lm_gen.yaml").write_text(LMEVAL_GENERATE.format(data=lmeval / "toy_lm_gen.jsonl"))
    monkeypatch.setenv("EVALKIT_LMEVAL_INCLUDE", str(lmeval))  # workers get the driver's EVALKIT_* variables
    local = run(tmp_path, "local", tasks, ["lmeval:toy_lm_gen"])
    spread = run(tmp_path, "ray", tasks, ["lmeval:toy_lm_gen"], cluster=TWO_WORKERS)
    assert spread[0].status == "ok", spread[0].error
    assert comparable(spread[0], tmp_path / "ray") == comparable(local[0], tmp_path / "local")


def test_a_rerun_sends_only_what_the_cache_lacks(
    local_ray: None, tasks: Path, tmp_path: Path, fresh_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A driver killed after some units finished: their answers are cached, the rest are not.
    run(tmp_path, "first", tasks, ["toy_mc"], use_cache=True, limit=3, cluster=TWO_WORKERS)
    with caplog.at_level(logging.DEBUG, logger="evalkit.cluster"):
        run(tmp_path, "rerun", tasks, ["toy_mc"], use_cache=True, cluster=TWO_WORKERS)
    (line,) = [r.getMessage() for r in caplog.records if "answered by the cache" in r.getMessage()]
    # What the local executor computes for the first three documents, and for all six.
    asked = [local_calls(tasks, limit=3), local_calls(tasks, limit=None)]
    assert line == f"toy_mc: {asked[0]} of {asked[1]} distinct requests answered by the cache; " + (
        f"{asked[1] - asked[0]} sent in 3 unit(s)"
    )


def local_calls(tasks: Path, *, limit: int | None) -> int:
    backend = FakeBackend("fake")
    config = EvalConfig(results_dir=None, show_progress=False, use_cache=False, limit=limit)
    evaluate([backend], ["toy_mc"], config=config, catalogue=Catalogue([tasks]))
    return backend.calls["loglikelihood"]


def test_the_driver_cache_serves_a_later_local_run_entirely(
    local_ray: None, tasks: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    run(tmp_path, "ray", tasks, DOCUMENT_TASKS, use_cache=True, cluster=TWO_WORKERS)
    backend = FakeBackend("fake")
    config = EvalConfig(results_dir=None, show_progress=False)
    summary = evaluate([backend], DOCUMENT_TASKS, config=config, catalogue=Catalogue([tasks]))
    assert [r.status for r in summary.records] == ["ok"] * 4
    assert backend.calls == {"loglikelihood": 0, "generate": 0, "loglikelihood_rolling": 0}


# -- bad input: one line, exit 2 ----------------------------------------------------------------


def test_ray_options_need_the_ray_executor(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for option in (
        ["--workers", "2"],
        ["--address", "127.0.0.1:6379"],
        ["--retries", "0"],
        ["--shards", "3"],
    ):
        code, _, err = run_main(
            ["run", "-m", "fake", "-t", "toy_mc", "--task-dir", str(tasks), *option], capsys
        )
        assert code == 2 and err.count("\n") == 1, err
        assert f"{option[0]} needs --executor ray" in err


def test_an_unreachable_address_fails_at_once(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    args = ["run", "-m", "fake", "-t", "toy_mc", "--task-dir", str(tasks), "--results", str(tmp_path / "r")]
    code, _, err = run_main([*args, "--executor", "ray", "--address", f"127.0.0.1:{port}"], capsys)
    assert code == 2 and err.startswith("error: --address 127.0.0.1:") and err.count("\n") == 1, err
    assert time.monotonic() - started < 30
    code, _, err = run_main([*args, "--executor", "ray", "--address", "nowhere"], capsys)
    assert code == 2 and "expected HOST:PORT" in err


def test_ray_missing_says_how_to_install_it(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    args = ["run", "-m", "fake", "-t", "toy_mc", "--task-dir", str(tasks), "--results", str(tmp_path / "r")]
    code, _, err = run_main([*args, "--executor", "ray"], capsys)
    assert (code, err) == (2, "error: --executor ray needs Ray: pip install 'evalkit[ray]'\n")


def test_a_loaded_backend_cannot_go_to_workers(tasks: Path) -> None:
    config = EvalConfig(results_dir=None, cluster=TWO_WORKERS)
    with pytest.raises(ClusterError, match=r"give specs such as .* not a loaded FakeBackend"):
        evaluate([FakeBackend("fake")], ["toy_mc"], config=config, catalogue=Catalogue([tasks]))


def test_more_workers_than_the_cluster_holds(local_ray: None, tasks: Path, tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"--workers 3: the cluster has room for 2 worker\(s\)"):
        run(tmp_path, "ray", tasks, ["toy_mc"], cluster=ClusterOptions(workers=3))
    with pytest.raises(ClusterError, match="not enough for one worker"):
        run(tmp_path, "ray", tasks, ["toy_mc"], cluster=ClusterOptions(cpus_per_worker=4))


# -- units and the proxy, without Ray --------------------------------------------------------------


def test_shards_interleave_context_groups_and_keep_each_context_whole() -> None:
    ordered = [
        LoglikelihoodRequest("long context A", " x"),
        LoglikelihoodRequest("long context A", " y"),
        LoglikelihoodRequest("context B", " x"),
        LoglikelihoodRequest("ctx C", " x"),
        LoglikelihoodRequest("ctx C", " z"),
        GenerateRequest("context B", ("\n",), 4),
        RollingRequest("some text"),
    ]
    units = shard_requests(ordered, 3)
    assert units == [
        [ordered[0], ordered[1], ordered[5]],
        [ordered[2], ordered[6]],
        [ordered[3], ordered[4]],
    ]
    assert shard_requests(ordered, 3) == units  # deterministic
    assert shard_requests(ordered, 10) == [
        ordered[0:2],
        ordered[2:3],
        ordered[3:5],
        ordered[5:6],
        ordered[6:7],
    ]
    assert shard_requests(ordered, 1) == [ordered]


def test_the_proxy_declares_exactly_the_workers_capabilities() -> None:
    from evalkit.backends.capabilities import PrefixReuse, PromptTokens, TimingProbe
    from evalkit.runner.cluster._proxy import backend_proxy

    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Worker:
        def call(self, method: str, args: tuple[Any, ...]) -> Any:
            calls.append((method, args))
            return {"prompt_token_ids": [1, 2, 3], "vocab_size": 256}[method]

    facts = FakeBackend("fake").describe()
    plain = backend_proxy(Worker(), facts, frozenset())
    assert not isinstance(plain, PromptTokens | PrefixReuse | TimingProbe)
    full = backend_proxy(Worker(), facts, frozenset({"prompt_tokens", "prefix_reuse", "timing_probe"}))
    assert isinstance(full, PromptTokens) and isinstance(full, PrefixReuse) and isinstance(full, TimingProbe)
    assert full.describe() == facts
    assert full.prompt_token_ids("abc") == [1, 2, 3] and full.prompt_token_ids("abc") == [1, 2, 3]
    assert full.vocab_size == 256
    assert calls == [("vocab_size", ()), ("prompt_token_ids", ("abc",))]  # pure answers: asked once


# -- a real model ----------------------------------------------------------------------------------


@pytest.mark.real
def test_smollm2_on_two_workers_agrees_with_local(local_ray: None, tmp_path: Path) -> None:
    from evalkit.specs import default_catalogue

    def scored(results: Path, **config: Any) -> list[Any]:
        options = {"results_dir": results, "show_progress": False, "use_cache": False, "limit": 4, **config}
        (record,) = evaluate(
            ["smollm2-135m"], ["arc_easy"], config=EvalConfig(**options), catalogue=default_catalogue()
        ).records
        assert record.status == "ok", record.error
        return [(s.response, s.scores) for s in ResultsStore(results).read_samples(record)]

    local = scored(tmp_path / "local")
    spread = scored(tmp_path / "ray", cluster=ClusterOptions(workers=2, shards=2))
    assert len(local) == len(spread) == 4
    for (logprobs, scores), (remote_logprobs, remote_scores) in zip(local, spread, strict=True):
        assert remote_logprobs == pytest.approx(logprobs, abs=1e-4)  # threads differ: so may the last bits
        assert remote_scores == scores


# -- helpers ---------------------------------------------------------------------------------------


class kill_first_worker_serving:
    """Kills (SIGKILL) the first of this process's Ray workers seen serving a unit; lists its pid."""

    def __init__(self) -> None:
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> list[int]:
        self._thread.start()
        return self.killed

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set() and not self.killed:
            for child in me.children(recursive=True):
                try:
                    title = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                if title.startswith("ray::ModelWorker.serve"):
                    os.kill(child.pid, signal.SIGKILL)
                    self.killed.append(child.pid)
                    return
            time.sleep(0.02)
