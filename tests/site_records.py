"""Records fabricated in code for the plot and site tests: every kind of data the site shows.

``demo_store`` holds a float32 reference and its int8 variant (quantization deltas), a state-space
model with decode curves, a long-context task with a matrix, a failed run, and an untrusted model
name, prompt, target and response carrying XSS payloads that set ``window.__pwned`` if they ever
run. Nothing here reads the clock or random state: the same call gives the same records.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from evalkit.results import (
    DecodePoint,
    DecodeStats,
    EfficiencyCurves,
    EfficiencyFigures,
    LongContextMatrix,
    ResultsStore,
    RunRecord,
    SampleLog,
    TimingStats,
)

SCRIPT_PAYLOAD = "<script>window.__pwned = 'script';</script>"
IMG_PAYLOAD = "<img src=x onerror=\"window.__pwned = 'img'\">"
PAYLOAD = SCRIPT_PAYLOAD + IMG_PAYLOAD + " & \u2028 </script><!--"
EVIL_MODEL = "evil" + IMG_PAYLOAD + SCRIPT_PAYLOAD
DAY = "2025-03-04T{}:00+00:00"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def record(
    model: str,
    task: str,
    value: float,
    *,
    n: int = 100,
    chance: float | None = 0.25,
    family: str = "transformer",
    parameters: int = 135_000_000,
    architecture: str = "LlamaForCausalLM",
    dtype: str = "float32",
    quantization: str | None = None,
    bytes_on_disk: int = 540_000_000,
    fingerprint: str | None = None,
    finished: str = DAY.format("10:00"),
    efficiency: EfficiencyFigures | None = None,
    long_context: LongContextMatrix | None = None,
    error: str | None = None,
    primary: str = "acc",
    bounded: bool = True,
    spec_file: str | None = None,
) -> RunRecord:
    """One valid record; ``value`` is the primary metric (an accuracy unless ``bounded=False``)."""
    stderr = math.sqrt(value * (1 - value) / n) if bounded else None
    metric = {
        "value": value,
        "stderr": stderr,
        "ci95": None,
        "n": n,
        "higher_is_better": bounded,
        "bounded": bounded,
        "chance": chance if bounded else None,
    }
    data: dict[str, Any] = {
        "record_id": sha(f"{model}|{fingerprint}|{task}|{finished}")[:16],
        "run_id": "run-" + finished[11:13],
        "started_at": finished,
        "finished_at": finished,
        "duration_s": 1.5,
        "evalkit_version": "0.1.0",
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "model": {
            "name": model,
            "backend": "fake",
            "source": f"fake:{model}",
            "architecture": architecture,
            "family": family,
            "parameters": parameters,
            "dtype": dtype,
            "quantization": quantization,
            "bytes_on_disk": bytes_on_disk,
            "fingerprint": fingerprint or sha(model),
            "context_window": 8192,
        },
        "task": {
            "name": task,
            "kind": "multiple_choice",
            "fingerprint": sha(task),
            "spec_file": spec_file,
            "primary_metric": primary,
            "num_fewshot": 0,
            "num_samples": n,
            "source": {
                "origin": "local",
                "format": "jsonl",
                "location": f"data/{task}.jsonl",
                "split": "test",
                "num_documents": n,
                "content_sha256": sha(task + "-data"),
            },
        },
        "config": {
            "limit": n,
            "seed": 1234,
            "batch_size": 8,
            "batch_sizes": [8],
            "num_fewshot": 0,
            "num_documents": n,
            "chat_template": False,
            "executor": "multiple_choice",
        },
        "metrics": {} if error else {primary: metric},
        "efficiency": None if efficiency is None else efficiency.model_dump(),
        "long_context": None if long_context is None else long_context.model_dump(),
        "host": {
            "hostname": "ci",
            "platform": "Linux",
            "cpu": "x86-64",
            "cores": 2,
            "memory_bytes": 24 * 2**30,
            "accelerator": None,
            "python": "3.11.7",
        },
        "libraries": {"evalkit": "0.1.0", "torch": "2.13.0+cpu"},
        "status": "error" if error else "ok",
        "error": error,
    }
    return RunRecord.model_validate(data)


def samples(
    count: int, correct: set[int], *, prompt: str = "Question {i}?", response: str = "B"
) -> list[SampleLog]:
    return [
        SampleLog(
            sample_id=f"s{i:03d}",
            prompt=prompt.format(i=i),
            target="A",
            response=response,
            scores={"acc": 1.0 if i in correct else 0.0},
            extra={"note": "<b>not bold</b>"},
        )
        for i in range(count)
    ]


def decode_curve(base_ms: float, growth: float) -> EfficiencyFigures:
    """Figures with a decode curve whose time per token grows by ``growth`` per 1024 tokens of context."""
    points = [
        _decode_point(length, base_ms / 1000 * (1 + growth * length / 1024), growth)
        for length in (512, 2048, 8192, 32768)
    ]
    return EfficiencyFigures(
        curves=EfficiencyCurves(decode=points), peak_memory_bytes=points[-1].peak_memory_bytes
    )


def _decode_point(length: int, seconds: float, growth: float) -> DecodePoint:
    def constant(value: float) -> TimingStats:
        return TimingStats(median=value, min=value, max=value, p95=value, cv=0.0, n=3)

    return DecodePoint(
        context_length=length,
        time_per_output_token_s=seconds,
        time_per_output_token_p95_s=seconds,
        time_to_first_token_s=seconds,
        decode_tokens_per_s=1 / seconds,
        peak_memory_bytes=int(300 * 2**20 * (1 + growth * length / 4096)),
        state_bytes=None,
        weight_bytes_per_s=1e9,
        mbu=None,
        stats=DecodeStats(
            time_per_output_token_s=constant(seconds),
            time_to_first_token_s=constant(seconds),
            decode_tokens_per_s=constant(1 / seconds),
        ),
    )


NEEDLE = LongContextMatrix(
    lengths=[1024, 4096, 16384],
    depths=[0.0, 0.5, 1.0],
    scores=[[100.0, 90.0, None], [100.0, 60.0, None], [95.0, 80.0, None]],
    threshold=85.6,
    effective_context_length=4096,
)


def demo_records(spec_file: str | None = None) -> list[RunRecord]:
    """Four models over two accuracy tasks and a long-context task, plus one failed run."""
    reference = {
        "parameters": 360_000_000,
        "architecture": "LlamaForCausalLM",
        "bytes_on_disk": 1_440_000_000,
    }
    int8 = {**reference, "quantization": "int8 weight-only", "bytes_on_disk": 380_000_000}
    mamba = {"family": "ssm", "architecture": "MambaForCausalLM", "parameters": 130_000_000}
    return [
        record(
            "ref-360m", "arc_easy", 0.62, **reference, efficiency=decode_curve(20, 0.5), spec_file=spec_file
        ),
        record(
            "ref-360m",
            "piqa",
            0.70,
            **reference,
            chance=0.5,
            efficiency=EfficiencyFigures(time_per_output_token_s=0.020),
        ),
        record(
            "ref-360m-int8",
            "arc_easy",
            0.58,
            **int8,
            efficiency=EfficiencyFigures(time_per_output_token_s=0.012),
        ),
        record("ref-360m-int8", "piqa", 0.69, **int8, chance=0.5),
        record("mamba-130m", "arc_easy", 0.45, **mamba, efficiency=decode_curve(8, 0.0)),
        record("mamba-130m", "piqa", 0.64, **mamba, chance=0.5),
        record("mamba-130m", "needle", 0.8, **mamba, long_context=NEEDLE, chance=None),
        record(EVIL_MODEL, "arc_easy", 0.30, fingerprint=sha("evil")),
        record(EVIL_MODEL, "piqa", 0.0, fingerprint=sha("evil"), finished=DAY.format("11:00"), error=PAYLOAD),
    ]


def demo_store(root: Path, spec_file: str | None = None) -> ResultsStore:
    """A store of :func:`demo_records`; the two arc_easy variants and the evil model have sample logs."""
    store = ResultsStore(root)
    for item in demo_records(spec_file):
        logs = None
        if item.task.name == "arc_easy" and item.model.name == "ref-360m":
            logs = samples(100, set(range(62)))
        elif item.task.name == "arc_easy" and item.model.name == "ref-360m-int8":
            logs = samples(100, set(range(4, 62)))
        elif item.model.name == EVIL_MODEL and item.status == "ok":
            logs = samples(3, {0}, prompt="Prompt {i} " + PAYLOAD, response=PAYLOAD)
        store.append(item, logs)
    return store
