"""How a run is spread over a Ray cluster (`evalkit run --executor ray ...`): plain values, no Ray."""

from __future__ import annotations

from dataclasses import dataclass

MIN_LOAD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ClusterOptions:
    """The `--executor ray` options; None means "as the cluster allows" (see each field)."""

    address: str | None = None  # an existing cluster (HOST:PORT, ray://HOST:PORT, auto); None: a local Ray
    workers: int | None = None  # actors per model; None: as many as the cluster's CPUs (GPUs) allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    shards: int | None = None  # units per task; None: one per worker
    unit_timeout_s: float = 3600.0  # the longest one unit (or one call to a worker) may take
    retries: int = 2  # a unit whose worker dies is sent again this many times at most

    @property
    def load_timeout_s(self) -> float:
        """The longest a worker may take to start and load its model: the unit timeout, at least
        `MIN_LOAD_TIMEOUT_S` (a short unit timeout must not stop models from loading)."""
        return max(self.unit_timeout_s, MIN_LOAD_TIMEOUT_S)

    @property
    def threads_per_worker(self) -> int:
        """The intra-op threads a worker's model may use: its whole CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))
