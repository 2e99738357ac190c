"""Train the zoo on a CPU: `python -m evalkit.zoo.train [--model NAME|all] [--out DIR] [--steps N]`.

The three families see the same tokens in the same order: the training documents of the corpus
seed are tokenized, packed into one stream (each document preceded by `<|endoftext|>`), cut into
windows of `seq_len + 1` tokens, and drawn in a seeded random order, `batch` windows a step.
AdamW with a linear warm-up and a cosine decay to a tenth of the peak rate. Everything that
draws randomness is seeded (the weights from `torch.manual_seed(seed)`, the order from its own
generator) and the thread count is fixed, so a rerun on the same machine repeats the loss curve;
other thread counts change the summation order of matmuls, hence the last digits.

Each model is saved to `<out>/<name>/` (model.safetensors, config.json, generation_config.json,
the tokenizer) with `card.json`: the plan, the versions, the wall time and every step's loss.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.zoo.corpus import corpus_text, heldout_documents, training_documents
from evalkit.zoo.models import FAMILIES, build_model, family_of, parameter_count
from evalkit.zoo.tokenizer import save_tokenizer, train_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "CHECKPOINTS",
    "TrainingPlan",
    "TrainingRun",
    "build_tokenizer",
    "card_of",
    "checkpoint_folder",
    "new_optimizer",
    "optimizer_step",
    "pack",
    "plan_from_card",
    "save",
    "train",
    "train_zoo",
]

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def checkpoint_folder(out: Path, name: str) -> Path:
    """`zoo-llama` -> OUT/zoo_llama: each folder is a data package in the wheel, so no hyphens."""
    return out / name.replace("-", "_")


CARD = "card.json"


@dataclass(frozen=True)
class TrainingPlan:
    """Everything that decides a training run (with the library versions and the machine)."""

    name: str
    steps: int = 400
    seed: int = 0
    # about one pass: 400 steps x 16 windows x 257 tokens = 1.64M tokens, ~240 tokens a document
    documents: int = 7_000
    tokenizer_documents: int = 2_000
    heldout_documents: int = 100
    batch: int = 16
    seq_len: int = 256
    peak_lr: float = 3e-3
    final_lr_fraction: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    threads: int = 2
    eval_every: int = 100

    def learning_rate(self, step: int) -> float:
        """Rate for step `step` (0-based): linear warm-up, then cosine to final_lr_fraction × peak."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        floor = self.final_lr_fraction
        return self.peak_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class TrainingRun:
    plan: TrainingPlan
    parameters: int = 0
    loss_curve: list[float] = field(default_factory=list)
    heldout_curve: list[tuple[int, float]] = field(default_factory=list)
    tokens_seen: int = 0
    wall_seconds: float = 0.0
    load_average: list[float] = field(default_factory=list)


def plan_from_card(card: dict[str, Any]) -> TrainingPlan:
    plan = dict(card["plan"])
    plan["betas"] = tuple(plan["betas"])
    return TrainingPlan(**plan)


def pack(tokenizer: PreTrainedTokenizerFast, documents: Sequence[str], seq_len: int) -> torch.Tensor:
    """[windows, seq_len + 1] token ids: the documents, each after `<|endoftext|>`, cut end to end."""
    import torch

    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(documents), add_special_tokens=False)["input_ids"]:
        stream.append(eos)
        stream.extend(ids)
    width = seq_len + 1
    windows = len(stream) // width
    return torch.tensor(stream[: windows * width], dtype=torch.long).view(windows, width)


def _next_token_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    logits = model(input_ids=windows[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def _heldout_loss(model: torch.nn.Module, windows: torch.Tensor, batch: int) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            chunk = windows[start : start + batch]
            total += float(_next_token_loss(model, chunk)) * len(chunk)
    model.train()
    return total / len(windows)


def _batches(windows: int, plan: TrainingPlan) -> list[torch.Tensor]:
    """Row indices of each step's batch: seeded permutations of the windows, epoch after epoch."""
    import torch

    generator = torch.Generator().manual_seed(plan.seed)
    order: list[int] = []
    needed = plan.steps * plan.batch
    while len(order) < needed:
        order.extend(torch.randperm(windows, generator=generator).tolist())
    return [torch.tensor(order[i * plan.batch : (i + 1) * plan.batch]) for i in range(plan.steps)]


def new_optimizer(model: torch.nn.Module, plan: TrainingPlan) -> torch.optim.Optimizer:
    """AdamW with the plan's betas and weight decay (its rate is set at every step)."""
    import torch

    return torch.optim.AdamW(
        model.parameters(), lr=plan.peak_lr, betas=plan.betas, weight_decay=plan.weight_decay
    )


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    plan: TrainingPlan,
    step: int,
    loss: torch.Tensor,
) -> None:
    """One update for `loss` at step `step` (0-based): the plan's rate, gradients clipped to its norm."""
    import torch

    for group in optimizer.param_groups:
        group["lr"] = plan.learning_rate(step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), plan.grad_clip)
    optimizer.step()


def build_tokenizer(plan: TrainingPlan) -> PreTrainedTokenizerFast:
    return train_tokenizer([corpus_text(plan.seed, plan.tokenizer_documents)])


def train(
    plan: TrainingPlan,
    tokenizer: PreTrainedTokenizerFast,
    *,
    stop_after: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[torch.nn.Module, TrainingRun]:
    """Train `plan.name`; `stop_after` ends early (the schedule stays that of `plan.steps`)."""
    import torch

    torch.set_num_threads(plan.threads)
    windows = pack(tokenizer, training_documents(plan.seed, plan.documents), plan.seq_len)
    heldout = pack(tokenizer, heldout_documents(plan.seed, plan.heldout_documents), plan.seq_len)
    torch.manual_seed(plan.seed)
    model = build_model(plan.name, len(tokenizer), tokenizer.eos_token_id)
    if family_of(plan.name) != "transformer":
        from evalkit.backends._hf_ssm import install_scan_patch

        install_scan_patch(model)
    model.train()
    optimizer = new_optimizer(model, plan)
    run = TrainingRun(plan=plan, parameters=parameter_count(model))
    steps = plan.steps if stop_after is None else min(stop_after, plan.steps)
    started = time.perf_counter()
    for step, rows in enumerate(_batches(len(windows), plan)[:steps]):
        loss = _next_token_loss(model, windows[rows])
        optimizer_step(model, optimizer, plan, step, loss)
        run.loss_curve.append(round(float(loss.detach()), 6))
        run.tokens_seen += len(rows) * plan.seq_len
        last = step + 1 == plan.steps
        if stop_after is None and ((step + 1) % plan.eval_every == 0 or last):
            run.heldout_curve.append((step + 1, round(_heldout_loss(model, heldout, plan.batch), 6)))
            if progress:
                elapsed = time.perf_counter() - started
                progress(
                    f"{plan.name} step {step + 1}/{plan.steps} train {run.loss_curve[-1]:.4f} "
                    f"held-out {run.heldout_curve[-1][1]:.4f} ({elapsed:.0f} s)"
                )
    run.wall_seconds = round(time.perf_counter() - started, 1)
    run.load_average = [round(x, 2) for x in os.getloadavg()]
    return model, run


def card_of(run: TrainingRun, heldout_tokens: int) -> dict[str, Any]:
    import torch
    import transformers

    plan = run.plan
    return {
        "name": plan.name,
        "family": family_of(plan.name),
        "parameters": run.parameters,
        "corpus_seed": plan.seed,
        "documents": plan.documents,
        "tokenizer_documents": plan.tokenizer_documents,
        "heldout_documents": plan.heldout_documents,
        "heldout_tokens": heldout_tokens,
        "tokens_seen": run.tokens_seen,
        "steps": plan.steps,
        "batch": plan.batch,
        "seq_len": plan.seq_len,
        "lr_schedule": (
            f"AdamW betas={list(plan.betas)} weight_decay={plan.weight_decay} clip={plan.grad_clip}; "
            f"linear warm-up {plan.warmup_steps} steps to {plan.peak_lr}, cosine to "
            f"{plan.final_lr_fraction * plan.peak_lr:g} at step {plan.steps}"
        ),
        "threads": plan.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "wall_seconds": run.wall_seconds,
        "load_average_at_end": run.load_average,
        "final_train_loss": run.loss_curve[-1],
        "final_heldout_loss": run.heldout_curve[-1][1],
        "heldout_curve": [list(point) for point in run.heldout_curve],
        "loss_curve": run.loss_curve,
        "plan": asdict(plan),
    }


def save(model: Any, tokenizer: PreTrainedTokenizerFast, run: TrainingRun, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config.bos_token_id = tokenizer.eos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(str(folder), safe_serialization=True)
    save_tokenizer(tokenizer, folder)
    heldout = pack(tokenizer, heldout_documents(run.plan.seed, run.plan.heldout_documents), run.plan.seq_len)
    card = card_of(run, heldout.numel() - len(heldout))
    (folder / CARD).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


def train_zoo(names: Sequence[str], out: Path, steps: int | None = None) -> list[TrainingRun]:
    """Train and save each of `names` under `out`; one tokenizer (trained first) for all."""
    runs = []
    plans = [TrainingPlan(name=name, steps=steps or TrainingPlan.steps) for name in names]
    tokenizer = build_tokenizer(plans[0])
    for plan in plans:
        name = plan.name
        model, run = train(plan, tokenizer, progress=lambda line: print(line, flush=True))
        save(model, tokenizer, run, checkpoint_folder(out, name))
        print(
            f"{name}: {run.parameters:,} parameters, {run.tokens_seen:,} tokens, {run.wall_seconds} s, "
            f"train {run.loss_curve[-1]:.4f}, held-out {run.heldout_curve[-1][1]:.4f} "
            f"-> {checkpoint_folder(out, name)}",
            flush=True,
        )
        runs.append(run)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.zoo.train", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=[*FAMILIES, "all"], default="all", help="default: all")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS, help="default: evalkit/zoo/checkpoints")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the plan's)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    names = list(FAMILIES) if args.model == "all" else [args.model]
    train_zoo(names, args.out, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
