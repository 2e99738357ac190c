"""The runner end to end on the fake backend: records, metrics, cache, resume, failures."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from evalkit.backends.fake import FakeBackend
from evalkit.errors import DataError, SpecError
from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult
from evalkit.results import ResultsStore
from evalkit.runner import EvalConfig, evaluate, plan_tasks
from evalkit.specs import Catalogue
from tests.conftest import MC_DOCS


def config(tmp_path: Path, **overrides: object) -> EvalConfig:
    fields: dict[str, object] = {"results_dir": tmp_path / "results", "show_progress": False}
    fields.update(overrides)
    return EvalConfig(**fields)  # type: ignore[arg-type]


def test_every_kind_produces_a_stored_record(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    summary = evaluate(["fake"], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    assert [r.status for r in summary.records] == ["ok"] * 4
    assert summary.exit_code == 0
    records, problems = ResultsStore(tmp_path / "results").read()
    assert problems == [] and len(records) == 4
    by_task = {r.task.name: r for r in records}
    assert set(by_task["toy_mc"].metrics) == {"acc", "acc_norm"}
    assert by_task["toy_mc"].task.primary_metric == "acc"
    assert by_task["toy_mc"].task.num_samples == len(MC_DOCS)
    assert by_task["toy_mc"].task.source.origin == "local"
    assert set(by_task["toy_ppl"].metrics) == {"word_perplexity", "byte_perplexity", "bits_per_byte"}
    record = by_task["toy_gen"]
    assert record.model.backend == "fake" and record.host.cores >= 1
    assert "evalkit" in record.libraries and record.duration_s >= 0
    samples = ResultsStore(tmp_path / "results").read_samples(by_task["toy_mc"])
    assert [s.sample_id for s in samples] == [str(i) for i in range(len(MC_DOCS))]


def test_accuracy_matches_a_hand_computation(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    fake = FakeBackend()
    expected = []
    for doc in MC_DOCS:
        context = f"Question: {doc['question']}\nAnswer:"
        results = fake.loglikelihood([LoglikelihoodRequest(context, " " + c) for c in doc["options"]])
        best = max(range(len(results)), key=lambda i: results[i].logprob)
        expected.append(float(best == doc["answer"]))
    summary = evaluate([FakeBackend()], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue)
    metric = summary.records[0].metrics["acc"]
    assert metric.value == pytest.approx(sum(expected) / len(expected))
    assert metric.n == len(MC_DOCS) and metric.stderr is not None


def test_limit_and_task_fingerprint(toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path) -> None:
    full = evaluate(["fake"], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue).records[0]
    cut = evaluate(["fake"], ["toy_mc"], config=config(tmp_path, limit=2), catalogue=toy_catalogue).records[0]
    assert cut.task.num_samples == 2 and cut.config.limit == 2
    assert cut.task.fingerprint != full.task.fingerprint
    again = evaluate(
        ["fake"], ["toy_mc"], config=config(tmp_path, limit=2, force=True), catalogue=toy_catalogue
    ).records[0]
    assert again.task.fingerprint == cut.task.fingerprint


def test_rerun_is_served_from_the_cache(toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path) -> None:
    first = FakeBackend()
    evaluate([first], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    assert sum(first.calls.values()) > 0
    second = FakeBackend()
    rerun = evaluate([second], suite="toy", config=config(tmp_path, force=True), catalogue=toy_catalogue)
    assert sum(second.calls.values()) == 0
    assert len(rerun.records) == 4 and all(r.status == "ok" for r in rerun.records)
    other_model = FakeBackend(options=__import__("evalkit.backends.fake", fromlist=["x"]).FakeOptions(seed=1))
    evaluate([other_model], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue)
    assert other_model.calls["loglikelihood"] > 0  # the cache is keyed by model fingerprint


def test_duplicate_requests_are_computed_once(toy_tasks: Path, tmp_path: Path, fresh_cache: Path) -> None:
    data = toy_tasks / "data" / "mc.jsonl"
    data.write_text(data.read_text() * 2)  # every document twice
    fake = FakeBackend()
    evaluate([fake], ["toy_mc"], config=config(tmp_path), catalogue=Catalogue([toy_tasks]))
    assert fake.calls["loglikelihood"] == sum(len(d["options"]) for d in MC_DOCS)


class Flaky(FakeBackend):
    """Dies after a number of requests, like a run interrupted half way."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.computed = 0

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        if self.budget < len(requests):
            raise KeyboardInterrupt
        self.budget -= len(requests)
        self.computed += len(requests)
        return super().loglikelihood(requests, batch_size)


def test_interrupted_run_resumes_without_recomputing(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("evalkit.runner.execute.CHUNK_SIZE", 4)
    total = sum(len(d["options"]) for d in MC_DOCS)
    flaky = Flaky(budget=8)
    with pytest.raises(KeyboardInterrupt):
        evaluate([flaky], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue)
    assert 0 < flaky.computed < total
    resumed = FakeBackend()
    summary = evaluate([resumed], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue)
    assert summary.records[0].status == "ok"
    assert resumed.calls["loglikelihood"] == total - flaky.computed


def test_bad_data_fails_while_planning_before_any_model_loads(
    toy_tasks: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    (toy_tasks / "data" / "cloze.jsonl").unlink()
    with pytest.raises(DataError, match=r"toy_cloze\.yaml.*cloze\.jsonl"):
        evaluate(["fake"], suite="toy", config=config(tmp_path), catalogue=Catalogue([toy_tasks]))
    assert not (tmp_path / "results").exists()
    rows = toy_tasks / "data" / "mc.jsonl"
    rows.write_text(rows.read_text() + '{"question": "q", "choices": ["a"], "gold": 3}\n')
    with pytest.raises(DataError, match=r"'gold' must be an index into the 1 choices, got 3"):
        plan_tasks(Catalogue([toy_tasks]), ["toy_mc"], None)  # every document is checked at planning


def test_a_task_failing_while_it_runs_is_recorded_and_the_run_goes_on(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    summary = evaluate([Exploding()], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    statuses = {r.task.name: r.status for r in summary.records}
    assert statuses == {"toy_mc": "ok", "toy_cloze": "ok", "toy_gen": "error", "toy_ppl": "ok"}
    assert summary.exit_code == 1  # not bad input: an internal failure
    records, _ = ResultsStore(tmp_path / "results").read()
    assert len(records) == 4


class Exploding(FakeBackend):
    def generate(self, requests, batch_size=16):  # type: ignore[no-untyped-def]
        raise MemoryError("out of memory")


def test_internal_failure_is_recorded_with_its_location(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    summary = evaluate([Exploding()], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    failed = summary.failed
    assert [r.task.name for r in failed] == ["toy_gen"]
    assert failed[0].error is not None and failed[0].error.startswith("MemoryError: out of memory [")
    assert summary.exit_code == 1


def test_unknown_names_fail_before_any_model_loads(toy_catalogue: Catalogue, tmp_path: Path) -> None:
    from evalkit.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean 'toy_mc'"):
        evaluate(["fake"], ["toy_mc", "toy_mcq"], config=config(tmp_path), catalogue=toy_catalogue)
    assert not (tmp_path / "results").exists()


def test_num_fewshot_override_changes_prompts(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    summary = evaluate(["fake"], ["toy_mc"], config=config(tmp_path, num_fewshot=2), catalogue=toy_catalogue)
    record = summary.records[0]
    assert record.config.num_fewshot == 2 and record.task.num_fewshot == 2
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert samples[0].prompt.count("Question:") == 3


def test_chat_template_is_applied_and_recorded(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    summary = evaluate(
        ["fake,chat_template=true"], ["toy_gen"], config=config(tmp_path), catalogue=toy_catalogue
    )
    record = summary.records[0]
    assert record.config.chat_template and record.model.chat_template
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert samples[0].prompt.startswith("<|user|>")


def test_a_rerun_stores_only_the_pairs_that_are_missing(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill-and-rerun rounds leave one record per completed pair (not one per round)."""
    monkeypatch.setattr("evalkit.runner.execute.CHUNK_SIZE", 4)
    store = ResultsStore(tmp_path / "results")
    for budget in (3, 9, 9, 9, 30):  # each round dies when its budget of loglikelihoods runs out
        with contextlib.suppress(KeyboardInterrupt):
            evaluate([Flaky(budget)], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    first, _ = store.read()
    assert sorted(r.task.name for r in first) == ["toy_cloze", "toy_gen", "toy_mc", "toy_ppl"]

    again = evaluate([FakeBackend()], suite="toy", config=config(tmp_path), catalogue=toy_catalogue)
    assert again.records == [] and len(again.reused) == 4 and again.exit_code == 0
    assert store.read()[0] == first  # nothing appended

    other_limit = evaluate(["fake"], ["toy_mc"], config=config(tmp_path, limit=2), catalogue=toy_catalogue)
    assert len(other_limit.records) == 1  # another request is another pair
    forced = evaluate(["fake"], ["toy_mc"], config=config(tmp_path, force=True), catalogue=toy_catalogue)
    assert len(forced.records) == 1 and len(store.read()[0]) == 6


def test_the_cli_says_which_pairs_it_skipped(toy_tasks: Path, tmp_path: Path, fresh_cache: Path) -> None:
    from click.testing import CliRunner

    from evalkit.cli.main import cli

    args = ["run", "-m", "fake", "-t", "toy_mc", "--task-dir", str(toy_tasks), "--results", str(tmp_path)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0
    assert "toy_mc" in second.output and "already stored" in second.output and "--force" in second.output
    forced = CliRunner().invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0 and "already stored" not in forced.output
    assert len(ResultsStore(tmp_path).read()[0]) == 2


def test_several_suites_run_as_one_list_and_a_task_in_two_is_an_error(toy_tasks: Path) -> None:
    suites = toy_tasks / "suites"
    (suites / "mc_only.yaml").write_text("suite: mc_only\ntasks:\n  - {task: toy_mc, limit: 2}\n")
    (suites / "cloze_only.yaml").write_text("suite: cloze_only\ntasks:\n  - {task: toy_cloze}\n")
    catalogue = Catalogue([toy_tasks])
    planned = plan_tasks(catalogue, None, ["mc_only", "cloze_only"])
    assert [(s.name, s.limit) for s in planned] == [("toy_mc", 2), ("toy_cloze", None)]
    with pytest.raises(SpecError, match=r"'toy_mc' is listed twice \(suites mc_only, toy\)"):
        plan_tasks(catalogue, None, ["mc_only", "toy"])
    with pytest.raises(SpecError, match="exactly one of --tasks or --suite"):
        plan_tasks(catalogue, None, [])


def test_a_gpu_run_does_not_reuse_the_stored_cpu_record(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    class OnCuda(FakeBackend):
        def describe(self):  # type: ignore[no-untyped-def]
            return super().describe().model_copy(update={"device": "cuda"})

    config = EvalConfig(results_dir=tmp_path / "r", show_progress=False)
    first = evaluate([FakeBackend()], ["toy_mc"], config=config, catalogue=toy_catalogue)
    again = evaluate([FakeBackend()], ["toy_mc"], config=config, catalogue=toy_catalogue)
    on_gpu = evaluate([OnCuda()], ["toy_mc"], config=config, catalogue=toy_catalogue)
    assert len(first.records) == 1 and again.records == [] and len(again.reused) == 1
    assert len(on_gpu.records) == 1 and on_gpu.reused == []  # same weights, other numbers: run again
    assert on_gpu.records[0].config.request_key != first.records[0].config.request_key
