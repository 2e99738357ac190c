"""Peak memory of a Mamba prefill: transformers' whole-sequence torch scan vs evalkit's chunked scan.

    .venv/bin/python benchmarks/bench_mamba_memory.py [--length 4096] [--hidden 768] [--layers 4]

A randomly initialised Mamba of Mamba-130M's width (hidden 768, d_inner 1536, state 16; fewer
layers, since the scan's transient tensors are freed layer by layer) is built in two fresh
subprocesses, one with evalkit's scan patch installed and one without; each runs one forward over
LENGTH tokens and reports its peak resident memory (ru_maxrss) and a digest of the logits. The
unpatched scan materialises [1, d_inner, LENGTH, state] tensors; the patched one works in chunks
of SCAN_CHUNK steps (32; see bench_scan.py). Printed: patched / unpatched
peak memory (lower is better) and whether the logits agree to 1e-4.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, torch
from transformers import MambaConfig, MambaForCausalLM
from evalkit.backends._hf_ssm import install_scan_patch
length, hidden, layers, patched = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
torch.manual_seed(0)
model = MambaForCausalLM(MambaConfig(vocab_size=1024, hidden_size=hidden, state_size=16,
                                     num_hidden_layers=layers)).eval()
if patched:
    install_scan_patch(model)
ids = torch.randint(0, 1024, (1, length), generator=torch.Generator().manual_seed(1))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.inference_mode():
    logits = model(input_ids=ids, logits_to_keep=16).logits[0].float()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": peak, "before_kib": before, "logits": logits.flatten()[::97].tolist()}))
"""


def measure(length: int, hidden: int, layers: int, patched: bool) -> dict[str, object]:
    args = [sys.executable, "-c", CHILD, str(length), str(hidden), str(layers), "1" if patched else "0"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    plain = measure(args.length, args.hidden, args.layers, patched=False)
    chunked = measure(args.length, args.hidden, args.layers, patched=True)
    gib = 1024 * 1024
    plain_peak, chunked_peak = int(plain["peak_kib"]) / gib, int(chunked["peak_kib"]) / gib  # type: ignore[call-overload]
    diff = max(abs(a - b) for a, b in zip(plain["logits"], chunked["logits"], strict=True))  # type: ignore[call-overload]
    verdict = "agree" if diff <= 1e-4 else "DIFFER"
    print(
        f"mamba d_model {args.hidden}, {args.layers} layers, {args.length} tokens: peak RSS "
        f"{plain_peak:.2f} GiB whole-sequence scan, {chunked_peak:.2f} GiB chunked scan; "
        f"ratio {chunked_peak / plain_peak:.2f}; max |d logit| {diff:.1e} ({verdict})"
    )


if __name__ == "__main__":
    main()
