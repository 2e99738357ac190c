"""A Ray run as `evaluate` sees it: Ray for the run, workers per model, tasks placed by their executor.

Placement (an executor's optional `placement` attribute, see `evalkit.kinds.executor`):
- "driver" (the default): the executor runs here, on the driver, with a backend proxy and a
  distributing RequestServer; its requests run on the workers as units.
- "worker": the whole task runs on one worker (lm-eval runs its own loop over the backend).
- "node": the whole task runs on one worker with nothing else in flight (efficiency: timings of a
  shared machine would be polluted) and computes with the node's threads, as a local run would.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from evalkit.backends import Backend, ModelFacts
from evalkit.kinds import ExecutionContext, TaskExecutor, TaskOutcome
from evalkit.kinds.executor import placement_of
from evalkit.results import HostFacts
from evalkit.runner.cluster._actor import THREAD_VARIABLES, TaskSettings
from evalkit.runner.cluster._options import ClusterOptions
from evalkit.runner.cluster._pool import WorkerPool
from evalkit.runner.cluster._proxy import backend_proxy
from evalkit.runner.cluster._runtime import ClusterError, ray_runtime, require_ray
from evalkit.runner.cluster._server import DistributedServer
from evalkit.runner.execute import BatchSize, Cache
from evalkit.specs import TaskSpec

log = logging.getLogger("evalkit.cluster")


def check_cluster_run(models: Sequence[object]) -> None:
    """Bad input of a Ray run, found before anything starts: Ray missing, a loaded Backend object."""
    require_ray()
    for model in models:
        if not isinstance(model, str):
            raise ClusterError(
                "--executor ray loads each model on its workers from a model spec: give specs such as "
                f"'smollm2-135m' or 'hf:./my-model', not a loaded {type(model).__name__}"
            )


class RayExecutor:
    """Ray for the length of a `with` block; `model(spec)` starts that model's workers."""

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self._runtime: contextlib.ExitStack | None = None
        self.workers = 0

    def __enter__(self) -> RayExecutor:
        with contextlib.ExitStack() as stack:
            stack.enter_context(ray_runtime(self.options.address))
            self.workers = workers_for(self.options)
            self._runtime = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    @contextlib.contextmanager
    def model(self, model: str | Backend) -> Iterator[RayModel]:
        if not isinstance(model, str):
            check_cluster_run([model])
        assert isinstance(model, str)
        pool = WorkerPool(model, self.options, self.workers)
        try:
            facts = pool.start()
            log.info("%s: %d worker(s) loaded the model", model, self.workers)
            yield RayModel(pool, facts.model, facts.capabilities, self.options)
        finally:
            pool.stop()


class RayModel:
    """One model on its workers: the proxy backend, the distributing server, task placement."""

    def __init__(
        self, pool: WorkerPool, facts: ModelFacts, capabilities: frozenset[str], options: ClusterOptions
    ) -> None:
        self.pool, self.facts, self.capabilities, self.options = pool, facts, capabilities, options
        self.backend = backend_proxy(pool, facts, capabilities)

    def server(self, cache: Cache, *, batch_size: BatchSize, show_progress: bool) -> DistributedServer:
        return DistributedServer(
            self.pool,
            cache,
            facts=self.facts,
            capabilities=self.capabilities,
            batch_size=batch_size,
            shards=self.options.shards or self.pool.size,
            show_progress=show_progress,
        )

    def run(
        self, executor: TaskExecutor, spec: TaskSpec, context: ExecutionContext
    ) -> tuple[TaskOutcome, HostFacts | None]:
        """The task's outcome, and the facts of the host it ran on when that was a worker's."""
        placement = placement_of(executor)
        if placement == "driver":
            return executor.run(self.backend, spec, context), None
        if placement == "node":
            # Tasks run one after another and `WorkerPool.run` returns only when every unit it sent
            # has finished, so no other unit is in flight while this one takes the node.
            assert self.pool.busy == 0, "a unit is in flight beside a task that needs the node alone"
        settings = TaskSettings(
            limit=context.limit,
            num_fewshot=context.num_fewshot,
            seed=context.seed,
            batch_size=context.batch_size,
            beyond_window=context.beyond_window,
            thread_env=tuple((name, os.environ.get(name)) for name in THREAD_VARIABLES),
        )
        answers: list[tuple[TaskOutcome, HostFacts]] = []
        send = functools.partial(_send_task, spec, settings, placement == "node")
        self.pool.run([send], lambda _, answer: answers.append(answer), spec.name)
        outcome, host = answers[0]
        return outcome, host


def workers_for(options: ClusterOptions) -> int:
    """`--workers`, or as many as the cluster's CPUs (and GPUs) allow; more than it holds is an error."""
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    fits = int(cpus // options.cpus_per_worker) if options.cpus_per_worker > 0 else None
    if options.gpus_per_worker > 0:
        by_gpu = int(gpus // options.gpus_per_worker)
        fits = by_gpu if fits is None else min(fits, by_gpu)
    if fits is not None and fits < 1:
        raise ClusterError(
            f"--cpus-per-worker {options.cpus_per_worker:g} / --gpus-per-worker {options.gpus_per_worker:g}: "
            f"the cluster has {cpus:g} CPUs and {gpus:g} GPUs, not enough for one worker"
        )
    if options.workers is None:
        return fits if fits is not None else 1
    if fits is not None and options.workers > fits:
        raise ClusterError(
            f"--workers {options.workers}: the cluster has room for {fits} worker(s) of "
            f"{options.cpus_per_worker:g} CPU(s) and {options.gpus_per_worker:g} GPU(s) each "
            f"({cpus:g} CPUs, {gpus:g} GPUs)"
        )
    return options.workers


def _send_task(spec: TaskSpec, settings: TaskSettings, whole_node: bool, handle: Any) -> Any:
    return handle.run_task.remote(spec, settings, whole_node)
