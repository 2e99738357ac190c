#!/usr/bin/env bash
# The GPU check, in one go on a machine with a CUDA device (every step has its own time limit:
# 8 minutes in all at most; docs/devices.md):
#
#   1. the gpu test tier (tests/test_gpu.py): CPU vs CUDA log-likelihoods, bf16 accuracy, greedy
#      generation, prefix reuse on a long prompt, the efficiency engine on the GPU;
#   2. evalkit run -m smollm2-135m,device=cuda --suite quick;
#   3. evalkit run -m smollm2-135m,device=cuda --suite efficiency-quick;
#   4. benchmarks/bench_device_parity.py: per-sample |Δ loglik| CPU vs GPU on 100 ARC-Easy documents;
#   5. the leaderboard of steps 2 and 3.
#
# Usage: benchmarks/gpu_check.sh [OUTPUT_DIR]   (default: $TMPDIR/evalkit-gpu-check, replaced if present)
# Needs a CUDA build of torch in .venv (make setup installs the CPU build: pass the PyTorch index for
# the machine's CUDA, e.g. `make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
# setup`, or set BIN to another environment's bin folder). Exit status: 0 all steps passed; 2 no CUDA device; else the
# first failing step's status.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${1:-${TMPDIR:-/tmp}/evalkit-gpu-check}

if ! "$BIN/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "error: no CUDA device visible to $BIN/python (torch $("$BIN/python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)'))" >&2
    exit 2
fi
"$BIN/python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0))'
rm -rf "$OUT" && mkdir -p "$OUT"

status=0
step() {  # step SECONDS NAME COMMAND...: run one step with its limit, its output kept in $OUT/NAME.log
    local limit=$1 name=$2
    shift 2
    echo "== $name: $*"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

step 150 gpu-tier "$BIN/python" -m pytest -q -rs -m gpu tests/test_gpu.py
# --no-cache: the GPU must compute every response (a cached one would skip the device entirely).
step 120 quick "$BIN/evalkit" run -m smollm2-135m,device=cuda --suite quick --results "$OUT/results" --no-cache
step 90 efficiency-quick "$BIN/evalkit" run -m smollm2-135m,device=cuda --suite efficiency-quick \
    --results "$OUT/results" --no-cache
step 90 parity "$BIN/python" benchmarks/bench_device_parity.py --limit 100
step 30 leaderboard "$BIN/evalkit" leaderboard --results "$OUT/results"
echo "gpu check: exit $status; logs and records in $OUT/"
exit "$status"
