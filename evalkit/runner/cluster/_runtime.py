"""Ray itself: is it installed, start a private local instance or connect to a cluster, shut down.

A local Ray is started for one run and kept out of the user's way: its files live in a temporary
folder removed afterwards, no dashboard is served, the object store is small, and its token
authentication (on by default in Ray 2.60 for a new local cluster, which would otherwise write a
token to `~/.ray/auth_token`) uses a fresh token held only in this process's environment, which Ray's
own processes inherit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator

from evalkit.errors import BackendUnavailableError, EvalkitError

log = logging.getLogger("evalkit.cluster")

RAY_MISSING = "--executor ray needs Ray: pip install 'evalkit[ray]'"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # units carry requests and results: text, not tensors
CONNECT_TIMEOUT_S = 10.0  # an unreachable --address fails within this (Ray itself retries for minutes)
# Ray 2.60's token authentication: its mode (Ray sets it for a new local cluster) and the token's
# sources besides ~/.ray/auth_token; a token given by value is never written to a file.
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# Where Ray announces, as a warning, that the new local cluster uses token authentication.
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


class ClusterError(EvalkitError):
    """A Ray option that cannot work: an unreachable --address, more than the cluster holds."""


def require_ray() -> None:
    """Fail with the install command when Ray is not importable (before any model loads)."""
    try:
        import ray  # noqa: F401  (the run imports it next anyway)
    except ImportError:
        raise BackendUnavailableError(RAY_MISSING) from None


@contextlib.contextmanager
def ray_runtime(address: str | None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the length of the block: a private local instance (`address` None) or a cluster.

    A Ray already initialised in this process (a notebook, a test session) is used as it is and left
    running.
    """
    require_ray()
    import ray

    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        log.info("using the Ray instance this process already holds")
        yield
        return
    if address is None:
        with _local_ray(num_cpus or os.cpu_count() or 1):
            yield
        return
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--address {address}: cannot connect to a Ray cluster ({exc})") from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _local_ray(num_cpus: int) -> Iterator[None]:
    import ray

    folder = tempfile.mkdtemp(prefix="evalkit-ray-")
    saved = {name: os.environ.get(name) for name in _AUTH_VARS}
    if not any(os.environ.get(name) for name in _AUTH_VARS):
        # Ray turns token authentication on itself (and refreshes its own settings): it then finds
        # this token instead of generating one into the user's HOME.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    announcer = logging.getLogger(_AUTH_LOGGER)
    level = announcer.level
    announcer.setLevel(logging.ERROR)
    try:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            log_to_driver=False,
            configure_logging=False,
            _temp_dir=folder,
        )
        announcer.setLevel(level)
        yield
    finally:
        announcer.setLevel(level)
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


def _check_reachable(address: str) -> None:
    """Fail at once, naming --address, when nothing answers there (Ray would retry for minutes)."""
    if address == "auto":
        return  # Ray finds a cluster started on this machine, or says at once that there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"--address {address}: no Ray cluster answers there ({reason})") from None
