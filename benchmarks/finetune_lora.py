"""LoRA-fine-tune SmolLM2-135M on the synthetic_facts training split, on a CPU, seeded.

    .venv/bin/python benchmarks/finetune_lora.py --out /tmp/facts-lora [--steps 60] [--seed 0]
    .venv/bin/python benchmarks/finetune_lora.py --write-data   # regenerate tasks/data/synthetic_facts*

`synthetic_facts` is a made-up world: 20 invented countries, each with an invented capital and
currency. No model can know these facts, so a base model scores at chance (4 choices). The training
split states every fact in four phrasings; the evaluation split (the task, `tasks/synthetic_facts.yaml`)
asks about them in two other phrasings, never trained on. A gain there is learned facts applied
to new questions, not memorised prompts.

The adapter folder this writes is what `evalkit run -m smollm2-135m,adapter=DIR` evaluates;
tests/test_adapters.py runs both (the `real` tier). Same seed, same machine: the same adapter.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "tasks" / "data"
EVAL_FILE = DATA / "synthetic_facts.jsonl"
TRAIN_FILE = DATA / "synthetic_facts_train.jsonl"
BASE_MODEL = "smollm2-135m"
DATA_SEED = 12
COUNTRIES = 20

TRAIN_TEMPLATES = {
    "capital": [
        "The capital of {e} is {v}.",
        "{e}'s capital city is {v}.",
        "Q: Which city is the capital of {e}?\nA: {v}",
        "In {e}, the government sits in the city of {v}.",
    ],
    "currency": [
        "The currency of {e} is the {v}.",
        "People in {e} pay for things with the {v}.",
        "Q: Which money is used in {e}?\nA: {v}",
        "{e} uses the {v} as its currency.",
    ],
}
# Held out: the task asks in these phrasings only ("Question: {question}\nAnswer:").
EVAL_QUESTIONS = {
    "capital": ["What is the capital of {e}?", "Name the capital city of {e}."],
    "currency": ["What is the currency of {e}?", "What money do people use in {e}?"],
}
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "n", "r", "s", "l", "th", "sk", "m"]


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODAS)).capitalize()


def make_world(seed: int = DATA_SEED) -> list[dict[str, str]]:
    """COUNTRIES invented countries with distinct invented capitals and currencies."""
    rng = random.Random(seed)
    seen: set[str] = set()

    def fresh(syllables: int) -> str:
        while True:
            word = _word(rng, syllables)
            if word not in seen:
                seen.add(word)
                return word

    return [{"country": fresh(3), "capital": fresh(2), "currency": fresh(2)} for _ in range(COUNTRIES)]


def make_splits(seed: int = DATA_SEED) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training texts, evaluation documents): the world's facts in disjoint phrasings."""
    world = make_world(seed)
    rng = random.Random(seed + 1)
    train = [
        {
            "id": f"{fact['country'].lower()}-{relation}-{i}",
            "text": template.format(e=fact["country"], v=fact[relation]),
        }
        for fact in world
        for relation, templates in TRAIN_TEMPLATES.items()
        for i, template in enumerate(templates)
    ]
    documents = []
    for fact in world:
        for relation, questions in EVAL_QUESTIONS.items():
            others = sorted({other[relation] for other in world} - {fact[relation]})
            for i, question in enumerate(questions):
                choices = [fact[relation], *rng.sample(others, 3)]
                rng.shuffle(choices)
                documents.append(
                    {
                        "id": f"{fact['country'].lower()}-{relation}-q{i}",
                        "question": question.format(e=fact["country"]),
                        "choices": choices,
                        "gold": choices.index(fact[relation]),
                    }
                )
    return train, documents


def write_data() -> None:
    train, documents = make_splits()
    for path, rows in ((TRAIN_FILE, train), (EVAL_FILE, documents)):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        print(f"wrote {len(rows)} rows to {path}")


def finetune(
    out: Path, *, steps: int, seed: int, rank: int, lr: float, batch: int, threads: int | None = None
) -> dict[str, Any]:
    """Train a LoRA adapter on every linear layer of the base's blocks; save it in `out`."""
    import torch
    from peft import LoraConfig, get_peft_model

    from evalkit.backends import load_model
    from evalkit.backends.hf import TransformersBackend

    torch.manual_seed(seed)
    backend = load_model(BASE_MODEL)
    assert isinstance(backend, TransformersBackend)
    if threads is not None:  # on a shared host, 1 thread avoids OpenMP spin-waiting on busy cores
        torch.set_num_threads(threads)
    tokenizer = backend.hf_tokenizer
    texts = [json.loads(line)["text"] for line in TRAIN_FILE.read_text(encoding="utf-8").splitlines()]
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    model = get_peft_model(backend.model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    losses: list[float] = []
    started = time.perf_counter()
    queue: list[int] = []
    with torch.enable_grad():
        for step in range(steps):
            if len(queue) < batch:
                queue += torch.randperm(len(texts), generator=order).tolist()
            picked, queue = queue[:batch], queue[batch:]
            encoded = [[*tokenizer.encode(texts[i], add_special_tokens=False), eos] for i in picked]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.tensor([ids + [eos] * (width - len(ids)) for ids in encoded])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded])
            labels = input_ids.masked_fill(mask == 0, -100)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss))
            if step % 10 == 0 or step == steps - 1:
                print(
                    f"step {step:3d}  loss {losses[-1]:.3f}  {time.perf_counter() - started:6.1f} s",
                    flush=True,
                )
    model.peft_config["default"].base_model_name_or_path = BASE_MODEL
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    summary = {
        "steps": steps,
        "seed": seed,
        "rank": rank,
        "lr": lr,
        "batch": batch,
        "train_texts": len(texts),
        "first_loss": losses[0],
        "last_loss": sum(losses[-5:]) / len(losses[-5:]),
        "train_seconds": round(time.perf_counter() - started, 1),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    (out / "finetune_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the adapter folder to write")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch threads (default: every usable CPU)")
    parser.add_argument("--write-data", action="store_true", help="regenerate the task's data files and exit")
    args = parser.parse_args()
    if args.write_data:
        write_data()
        return
    if args.out is None:
        parser.error("--out DIR is required (or --write-data)")
    summary = finetune(
        args.out,
        steps=args.steps,
        seed=args.seed,
        rank=args.rank,
        lr=args.lr,
        batch=args.batch,
        threads=args.threads,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
