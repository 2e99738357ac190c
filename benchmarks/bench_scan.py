"""Mamba against a same-size Llama with evalkit's chunked selective scan: train step and prefill.

    .venv/bin/python benchmarks/bench_scan.py [--batch 16] [--steps 5] [--lengths 1024,2048,8192]
                                              [--layers-fraction 0.25] [--before-layers 1] [--repeats 3]

(a) Train step (forward, backward, AdamW) at ~1M parameters, vocabulary 1024, 256 tokens per
row: a Llama (d_model 128, 4 layers, 4 heads, FFN 384) against a Mamba (d_model 128, state 16,
as many layers as match the Llama's parameter count), both patched-free except for the Mamba's
scan. Median of `--steps` steps after one warm-up step. "Before" is transformers' own sequential
scan, timed for one step on a Mamba with `--before-layers` layers and scaled to the full depth
(an estimate: it takes minutes per step at full depth).

(b) Prefill: random weights shaped like mamba-130m (hidden 768, d_inner 1536, state 16) against
a SmolLM2-135M-shaped Llama (hidden 576, 9 heads, 3 KV heads, FFN 1536), both with
`--layers-fraction` of their layers (24 and 30 at 1.0), fp32. A plain forward
`model(input_ids, logits_to_keep=1)` per length (the median of `--repeats` runs; a single run
moved by up to 40% between invocations), each length in a fresh subprocess that reports
its time and peak resident memory during the prefill (VmHWM, reset after building the model and
a warm-up, so the figure is not that of the random initialisation); the Mamba is also measured
fed through its cache in 1024-token pieces (what evalkit's backend does with `prefill_chunk`).

Everything runs with torch.set_num_threads(2). Printed: the Mamba/Llama train-step time ratio
(goal <= 3), Mamba/Llama prefill tokens/s per length (goal >= 0.5 at 1k, > 1 at 8k) and the
Mamba's peak memory at the longest over the shortest length (goal within 10%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

THREADS = 2
MAMBA_130M = {"vocab_size": 50280, "hidden_size": 768, "state_size": 16, "num_hidden_layers": 24}
SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 30,
    "rope_theta": 100000.0,
    "max_position_embeddings": 16384,
    "tie_word_embeddings": True,
}

PREFILL_CHILD = """
import json, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM, MambaConfig, MambaForCausalLM
from evalkit.backends._hf_ssm import install_scan_patch
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
torch.manual_seed(0)
if spec["kind"] == "mamba":
    model = MambaForCausalLM(MambaConfig(**spec["config"])).eval()
    install_scan_patch(model)
else:
    model = LlamaForCausalLM(LlamaConfig(**spec["config"])).eval()  # sdpa attention
generator = torch.Generator().manual_seed(1)
ids = torch.randint(0, spec["config"]["vocab_size"], (1, spec["length"]), generator=generator)
piece = spec["piece"] or spec["length"]
def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
with torch.inference_mode():
    model(input_ids=ids[:, :128], logits_to_keep=1)  # warm-up
    before = rss_kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM: the peak below is that of the prefill, not of building the model
    times = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        cache = None
        for start in range(0, spec["length"], piece):
            kwargs = {"cache": cache, "use_cache": True} if spec["piece"] else {}
            output = model(input_ids=ids[:, start:start + piece], logits_to_keep=1, **kwargs)
            cache = getattr(output, "cache", None)
        times.append(time.perf_counter() - started)
        del output, cache
seconds = sorted(times)[len(times) // 2]
print(json.dumps({"seconds": seconds, "peak_kib": rss_kib("VmHWM:"), "before_kib": before}))
"""


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _train_models(batch_layers: int | None = None) -> tuple[Any, Any]:
    """The ~1M-parameter Llama and the Mamba whose depth matches its parameter count best."""
    from transformers import LlamaConfig, LlamaForCausalLM, MambaConfig, MambaForCausalLM

    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=1024,
            hidden_size=128,
            intermediate_size=384,
            num_attention_heads=4,
            num_key_value_heads=4,
            num_hidden_layers=4,
            tie_word_embeddings=True,
        )
    )
    target = _parameters(llama)

    def mamba(layers: int) -> Any:
        config = MambaConfig(vocab_size=1024, hidden_size=128, state_size=16, num_hidden_layers=layers)
        return MambaForCausalLM(config)

    if batch_layers is not None:
        return llama, mamba(batch_layers)
    best = min(range(1, 24), key=lambda n: abs(_parameters(mamba(n)) - target))
    return llama, mamba(best)


def _step_seconds(model: Any, ids: Any, steps: int, warmup: int = 1) -> list[float]:
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(warmup + steps):
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times[warmup:]


def train_section(batch: int, steps: int, before_layers: int) -> None:
    import importlib

    import torch

    from evalkit.backends._hf_ssm import ORIGINAL_SCAN, install_scan_patch

    torch.manual_seed(0)
    llama, mamba = _train_models()
    install_scan_patch(mamba)
    ids = torch.randint(0, 1024, (batch, 256), generator=torch.Generator().manual_seed(0))
    llama_s = statistics.median(_step_seconds(llama, ids, steps))
    mamba_s = statistics.median(_step_seconds(mamba, ids, steps))
    layers = mamba.config.num_hidden_layers
    print(
        f"(a) train step, batch {batch} x 256 tokens, AdamW, {THREADS} threads, median of {steps}:\n"
        f"    llama {_parameters(llama):,} params {llama_s:.2f} s | mamba ({layers} layers) "
        f"{_parameters(mamba):,} params {mamba_s:.2f} s | ratio mamba/llama {mamba_s / llama_s:.2f}"
        " (goal <= 3)"
    )
    module = importlib.import_module("transformers.models.mamba.modeling_mamba")
    patched = module.mamba_selective_scan
    _, shallow = _train_models(before_layers)
    module.mamba_selective_scan = getattr(module, ORIGINAL_SCAN)  # type: ignore[attr-defined]
    try:
        before = _step_seconds(shallow, ids, steps=1, warmup=0)[0] * layers / before_layers
    finally:
        module.mamba_selective_scan = patched  # type: ignore[attr-defined]
    print(
        f"    before: transformers' sequential scan, one step at {before_layers} layer(s) scaled "
        f"x{layers / before_layers:g}: ~{before:.0f} s | ratio mamba/llama ~{before / llama_s:.0f}"
    )


def _prefill(
    kind: str, config: dict[str, Any], length: int, repeats: int, piece: int = 0
) -> dict[str, float]:
    spec = {"kind": kind, "config": config, "length": length, "piece": piece}
    spec.update(threads=THREADS, repeats=repeats)
    args = [sys.executable, "-c", PREFILL_CHILD, json.dumps(spec)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _figures(length: int, measured: dict[str, float]) -> str:
    rss = f"{measured['before_kib'] / 2**20:.2f} -> {measured['peak_kib'] / 2**20:.2f} GiB"
    return f"{length / measured['seconds']:.1f} tok/s (resident {rss})"


def prefill_section(lengths: list[int], fraction: float, repeats: int) -> None:
    mamba = dict(MAMBA_130M, num_hidden_layers=max(1, round(24 * fraction)))
    llama = dict(SMOLLM2_135M, num_hidden_layers=max(1, round(30 * fraction)))
    print(
        f"(b) prefill, fp32, {THREADS} threads, random weights: mamba-130m shape with "
        f"{mamba['num_hidden_layers']}/24 layers vs SmolLM2-135M shape with {llama['num_hidden_layers']}/30"
    )
    peaks: dict[str, list[float]] = {"whole": [], "pieces": []}
    for length in lengths:
        m = _prefill("mamba", mamba, length, repeats)
        t = _prefill("llama", llama, length, repeats)
        p = _prefill("mamba", mamba, length, repeats, piece=1024)
        peaks["whole"].append(m["peak_kib"])
        peaks["pieces"].append(p["peak_kib"])
        print(
            f"    {length:>5} tokens: mamba {_figures(length, m)}, llama {_figures(length, t)}"
            f" | ratio mamba/llama {t['seconds'] / m['seconds']:.2f}"
            f" | mamba in 1024-token pieces {_figures(length, p)}, ratio {t['seconds'] / p['seconds']:.2f}"
        )
    first, last = lengths[0], lengths[-1]
    print(
        f"    mamba peak memory {last} / {first} tokens: one forward "
        f"{peaks['whole'][-1] / peaks['whole'][0]:.2f}, in 1024-token pieces "
        f"{peaks['pieces'][-1] / peaks['pieces'][0]:.2f} (goal <= 1.10)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--before-layers", type=int, default=1)
    parser.add_argument("--lengths", default="1024,2048,8192")
    parser.add_argument("--layers-fraction", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3, help="prefills per measurement (median)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-prefill", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    if not args.skip_train:
        train_section(args.batch, args.steps, args.before_layers)
    if not args.skip_prefill:
        prefill_section([int(x) for x in args.lengths.split(",")], args.layers_fraction, args.repeats)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
