"""Is the Hugging Face hub reachable, and a way to make `datasets`/`huggingface_hub` cache-only.

Loading from an unreachable hub retries for half a minute before it fails, which is a hang to
anyone on a plane, on CI or behind a firewall. Every part of evalkit that may touch the hub asks
`hub_reachable()` first (one TCP connect, answered once per process and address) and, when it is
not, loads inside `hub_offline()`: a copy in the local cache still works, anything else fails at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 2.0
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline_requested() -> bool:
    """The user said so: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set to a true value."""
    return any(os.environ.get(key, "").upper() in _TRUE for key in OFFLINE_ENV)


def hub_reachable() -> bool:
    """Whether the hub ($HF_ENDPOINT, or the HTTPS proxy) accepts a TCP connection within 2 s."""
    if offline_requested():
        return False
    return _probe(_hub_address())


@functools.cache
def _probe(address: tuple[str, int]) -> bool:
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(address, timeout=PROBE_TIMEOUT_S):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    # Name resolution ignores socket timeouts, so the probe runs in a thread we stop waiting for.
    probe = threading.Thread(target=connect, name="evalkit-hub-probe", daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S + 0.5)
    return bool(outcome and outcome[0])


def _hub_address() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    default_port = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default_port


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Put huggingface_hub and datasets in offline mode for the duration, then restore them.

    Both libraries read HF_HUB_OFFLINE when first imported, so setting the variable is not
    enough once they are loaded: their module-level flags are switched too.
    """
    import datasets.config  # noqa: F401  (imported so its flags exist to be switched)
    import huggingface_hub.constants  # noqa: F401

    saved_env = {key: os.environ.get(key) for key in OFFLINE_ENV}
    flags = [
        ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_DATASETS_OFFLINE"),
    ]
    saved_flags = []
    for module_name, attr in flags:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            saved_flags.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)
    os.environ.update(dict.fromkeys(OFFLINE_ENV, "1"))
    try:
        yield
    finally:
        for module, attr, value in saved_flags:
            setattr(module, attr, value)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
