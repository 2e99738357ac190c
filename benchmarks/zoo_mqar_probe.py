"""Can the zoo's architectures learn MQAR at all? Train each on associative-recall drills only.

    .venv/bin/python benchmarks/zoo_mqar_probe.py [--models zoo-llama,zoo-mamba,zoo-hybrid]
        [--steps 600] [--batch 16] [--seq-len 256] [--seed 0]

The committed zoo mixes 30% drills into a story corpus and none of its models learned multi-query
associative recall (docs/zoo.md). This probe asks the narrower question Zoology (Arora et al.,
2023) asks: with the same three configurations (`evalkit.zoo.models`, ~0.55M parameters, width
128) and the zoo's tokenizer, trained on drills alone with the loss on the queried values only,
which architectures learn the task? Rows of `--seq-len` tokens are drills of 2-16 pairs in the
corpus's own format (`evalkit.zoo.corpus.mqar_line`), fresh for every step from a seeded rng;
AdamW, linear warm-up and cosine decay as `TrainingPlan`. Each model is then scored on the
committed `zoo_mqar_{4,8,16}` data (the greedy next token after the queried key, as the
`zoo_mqar_*` tasks score it; chance ~1/64) and on its training loss. Nothing is saved: the
checkpoints evalkit ships are the mixed-corpus ones. Prints one line per model.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from typing import Any

from evalkit.intervals import wilson_interval
from evalkit.zoo.corpus import mqar_line, words
from evalkit.zoo.eval_data import MQAR_PAIRS, data_dir
from evalkit.zoo.models import build_model, family_of
from evalkit.zoo.tokenizer import load_tokenizer
from evalkit.zoo.train import CHECKPOINTS, TrainingPlan, checkpoint_folder, new_optimizer, optimizer_step

THREADS = 2


def drill_rows(tokenizer: Any, rng: random.Random, rows: int, seq_len: int) -> tuple[Any, Any]:
    """(ids [rows, seq_len + 1], mask [rows, seq_len]): drills end to end after EOS; the mask marks
    the positions whose next token is a queried value (every word of a drill is one token)."""
    import torch

    ids = torch.empty(rows, seq_len + 1, dtype=torch.long)
    mask = torch.zeros(rows, seq_len, dtype=torch.bool)
    for row in range(rows):
        tokens, targets = [tokenizer.eos_token_id], []
        while len(tokens) < seq_len + 1:
            pairs = rng.randint(2, 16)
            line = mqar_line(rng, pairs)
            line_words = words(line)
            text = line if len(tokens) == 1 else " " + line
            line_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(line_ids) != len(line_words):
                raise RuntimeError(f"a drill word is not one token: {line!r}")
            query_values = range(2 * pairs + 2, 4 * pairs + 1, 2)  # word indices after the "."
            targets += [len(tokens) + i - 1 for i in query_values]  # predicted from the token before
            tokens += line_ids
        ids[row] = torch.tensor(tokens[: seq_len + 1])
        mask[row, [t for t in targets if t < seq_len]] = True
    return ids, mask


def mqar_accuracy(model: Any, tokenizer: Any, pairs: int) -> str:
    """Accuracy on the committed zoo_mqar_{pairs} drills with its 95% Wilson interval."""
    import torch

    rows = [json.loads(line) for line in (data_dir() / f"mqar_{pairs}.jsonl").read_text().splitlines()]
    hits = 0
    with torch.no_grad():
        for row in rows:
            ids = [tokenizer.eos_token_id, *tokenizer(row["context"], add_special_tokens=False)["input_ids"]]
            target = tokenizer(" " + row["target"], add_special_tokens=False)["input_ids"][0]
            hits += int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()) == target
    low, high = wilson_interval(hits / len(rows), len(rows))
    return f"{hits / len(rows):.1%} [{low:.1%}, {high:.1%}]"


def probe(name: str, args: argparse.Namespace) -> str:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(THREADS)
    tokenizer = load_tokenizer(checkpoint_folder(CHECKPOINTS, "zoo-llama"))
    torch.manual_seed(args.seed)
    model = build_model(name, len(tokenizer), tokenizer.eos_token_id)
    if family_of(name) != "transformer":
        from evalkit.backends._hf_ssm import install_scan_patch

        install_scan_patch(model)
    plan = TrainingPlan(name=name, steps=args.steps)
    optimizer = new_optimizer(model, plan)
    rng = random.Random(f"zoo-mqar-probe:{args.seed}")
    model.train()
    started = time.perf_counter()
    losses: list[float] = []
    for step in range(args.steps):
        ids, mask = drill_rows(tokenizer, rng, args.batch, args.seq_len)
        logits = model(input_ids=ids[:, :-1]).logits
        loss = F.cross_entropy(logits[mask].float(), ids[:, 1:][mask])
        optimizer_step(model, optimizer, plan, step, loss)
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started
    model.eval()
    accuracies = ", ".join(f"{p} pairs {mqar_accuracy(model, tokenizer, p)}" for p in MQAR_PAIRS)
    tail = sum(losses[-20:]) / min(20, len(losses))
    return (
        f"{name:<11} {args.steps} steps {seconds:6.1f} s | answer loss {losses[0]:.2f} -> {tail:.2f} "
        f"(ln 64 = {math.log(64):.2f}) | MQAR {accuracies}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="zoo-llama,zoo-mamba,zoo-hybrid")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models.split(","):
        print(probe(name, args), flush=True)


if __name__ == "__main__":
    main()
