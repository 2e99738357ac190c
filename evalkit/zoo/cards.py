"""The zoo's training cards as a Markdown table (docs/zoo.md renders it with cog; `make lint` checks it)."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.zoo.models import FAMILIES
from evalkit.zoo.train import CARD, CHECKPOINTS, checkpoint_folder


def cards_table(folder: Path = CHECKPOINTS) -> str:
    """One row per trained model: size, budget, wall time, losses, from each checkpoint's card.json."""
    rows = [
        "| model | family | parameters | tokens seen | steps × batch × seq | threads | wall time | "
        "train loss | held-out loss (every 100 steps) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in FAMILIES:
        path = checkpoint_folder(folder, name) / CARD
        if not path.is_file():
            rows.append(f"| `{name}` | not trained: run `make zoo` | | | | | | | |")
            continue
        card = json.loads(path.read_text(encoding="utf-8"))
        curve = " → ".join(f"{loss:.3f}" for _, loss in card["heldout_curve"])
        rows.append(
            f"| `{name}` | {card['family']} | {card['parameters']:,} | {card['tokens_seen']:,} | "
            f"{card['steps']} × {card['batch']} × {card['seq_len']} | {card['threads']} | "
            f"{card['wall_seconds']:.0f} s | {card['final_train_loss']:.3f} | {curve} |"
        )
    return "\n".join(rows) + "\n"
