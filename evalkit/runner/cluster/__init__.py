"""The Ray executor: one run spread over a Ray cluster, with records identical to a local run's.

The driver plans, resolves response-cache hits and alone writes cache rows, sample logs and records;
per model, `--workers` Ray actors each load the model and answer units of work — a task's uncached
requests in `--shards` interleaved slices, or a whole task for executors placed on a worker. Ray is
imported only when a Ray run starts.

Public API:
    ClusterOptions          the --executor ray options
    RayExecutor(options)    `with` it for the run; `.model(spec)` starts one model's workers
    check_cluster_run(models)   bad input of a Ray run (Ray missing, Backend objects), found early
    UnitFailedError         a unit failed on every attempt: the task's error
"""

from evalkit.runner.cluster._model import RayExecutor, RayModel, check_cluster_run, workers_for
from evalkit.runner.cluster._options import ClusterOptions
from evalkit.runner.cluster._pool import UnitFailedError, WorkerLoadError
from evalkit.runner.cluster._runtime import RAY_MISSING, ClusterError, ray_runtime

__all__ = [
    "RAY_MISSING",
    "ClusterError",
    "ClusterOptions",
    "RayExecutor",
    "RayModel",
    "UnitFailedError",
    "WorkerLoadError",
    "check_cluster_run",
    "ray_runtime",
    "workers_for",
]
