"""Loading a task's public dataset from the Hugging Face hub, failing fast when it is unreachable.

`datasets.load_dataset` retries an unreachable hub for about 25 seconds before it gives up,
which is a hang to anyone on a plane, on CI or behind a firewall. So we ask the network first
(`evalkit.hub`: one TCP connect, 2 seconds at most) and, when the hub cannot be reached or the user said
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, load in offline mode: a copy already in the local
datasets cache still works, anything else fails at once.
"""

from __future__ import annotations

import contextlib
from typing import Any

from evalkit.hub import hub_offline, hub_reachable
from evalkit.specs.dataset import HubDataset

Document = dict[str, Any]
_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubUnavailable(Exception):
    """Loading from the hub failed; `unreachable` says whether the network was the reason."""

    def __init__(self, reason: str, unreachable: bool) -> None:
        super().__init__(reason)
        self.reason, self.unreachable = reason, unreachable


def describe(hub: HubDataset, split: str) -> str:
    """'allenai/ai2_arc (ARC-Easy/test)', the way a person would name the dataset."""
    return f"{hub.path} ({hub.name}/{split})" if hub.name else f"{hub.path} ({split})"


def load_hub(hub: HubDataset, split: str) -> list[Document]:
    import datasets

    offline = not hub_reachable()
    try:
        with hub_offline() if offline else contextlib.nullcontext():
            loaded = datasets.load_dataset(hub.path, hub.name, split=split, revision=hub.revision)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError, ...
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise HubUnavailable(reason, unreachable=offline) from None
    rows: list[Document] = loaded.to_list()
    return rows
