"""Loading a task's public dataset from the Hugging Face hub, failing fast when it is unreachable.

`datasets.load_dataset` retries an unreachable hub for about 25 seconds before it gives up,
which is a hang to anyone on a plane, on CI or behind a firewall. So we ask the network first
(one TCP connect, 3 seconds at most) and, when the hub cannot be reached or the user said
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, load in offline mode: a copy already in the local
datasets cache still works, anything else fails at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

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

    offline = offline_requested() or not hub_reachable()
    try:
        with _offline_mode(offline):
            loaded = datasets.load_dataset(hub.path, hub.name, split=split, revision=hub.revision)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError, ...
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise HubUnavailable(reason, unreachable=offline) from None
    rows: list[Document] = loaded.to_list()
    return rows


def offline_requested() -> bool:
    return any(
        os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_reachable() -> bool:
    """One TCP connect to the hub (or to the HTTPS proxy, when one is configured)."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname
    if not host:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_mode(enabled: bool) -> Iterator[None]:
    """Switch `datasets` and `huggingface_hub` to cache-only for one call.

    Both read HF_HUB_OFFLINE once, at import, into module constants; setting the environment
    variable now would change nothing, so we set those constants and put them back after.
    """
    if not enabled:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    modules: list[Any] = [datasets.config, huggingface_hub.constants]
    saved = [module.HF_HUB_OFFLINE for module in modules]
    for module in modules:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in zip(modules, saved, strict=True):
            module.HF_HUB_OFFLINE = value
