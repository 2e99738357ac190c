"""The workers of one model and the pull loop that gives them units.

Each free worker takes the next unit until none are left. A worker that dies (its process killed,
its node lost, Ray's memory monitor) or overruns the unit timeout is dropped and replaced by a
fresh one loading in the background, and its unit goes back to the front of the queue; a unit
that has failed `retries + 1` times fails the task. An exception raised by the unit's own code (a
backend bug) would be raised by any worker: it fails the task at once. Every wait is bounded by
the unit timeout, and when no worker is left (none alive, none loading) the run fails instead of
waiting. Before `run` returns or raises, every unit it sent has finished or been abandoned, so no
unit of one task is in flight when the next task starts.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.runner.cluster._actor import ModelWorker, WorkerFacts
from evalkit.runner.cluster._options import ClusterOptions

log = logging.getLogger("evalkit.cluster")

# A unit, as a function that sends it to a worker's actor handle and returns Ray's object ref.
Submit = Callable[[Any], Any]


class UnitFailedError(RuntimeError):
    """A unit failed on every attempt (its workers died or timed out), or no worker was left."""


class WorkerLoadError(RuntimeError):
    """A worker died while loading the model."""


@dataclass
class _Worker:
    handle: Any  # ray.actor.ActorHandle
    facts: WorkerFacts


@dataclass
class _Running:
    worker: _Worker
    index: int
    started: float


class WorkerPool:
    """`workers` actors that each hold the model `spec` (a spec string, loaded on the worker)."""

    def __init__(self, spec: str, options: ClusterOptions, workers: int) -> None:
        self.spec, self.options, self.size = spec, options, workers
        self._workers: list[_Worker] = []
        self._loading: dict[Any, tuple[Any, float]] = {}  # load ref -> (actor handle, started)
        self._busy = 0
        self._fingerprint = ""  # the model's, once the first workers have loaded it

    # -- lifetime ---------------------------------------------------------------------------------

    def start(self) -> WorkerFacts:
        """Start every worker and wait for each to load; returns the first one's facts.

        A load that raises (a missing file, bad options) raises that error here, as loading the
        model locally would. Workers on different nodes must load the same model: same fingerprint.
        """
        import ray

        handles = [self._spawn() for _ in range(self.size)]
        refs = [handle.load.remote() for handle in handles]
        try:
            loaded: list[WorkerFacts] = ray.get(refs, timeout=self.options.load_timeout_s)
        except ray.exceptions.RayTaskError as exc:
            self._kill_all(handles)
            raise _cause(exc) from None
        except ray.exceptions.GetTimeoutError:
            self._kill_all(handles)
            raise WorkerLoadError(
                f"{self.spec}: the workers did not load the model within {self.options.load_timeout_s:g} s; "
                "does the cluster have the CPUs/GPUs each worker asks for?"
            ) from None
        except ray.exceptions.RayError as exc:
            self._kill_all(handles)
            raise WorkerLoadError(f"{self.spec}: a worker died while loading the model ({exc})") from None
        self._workers = [_Worker(h, f) for h, f in zip(handles, loaded, strict=True)]
        first = loaded[0]
        self._fingerprint = first.model.fingerprint
        for facts in loaded[1:]:
            if facts.model.fingerprint != first.model.fingerprint:
                self.stop()
                raise WorkerLoadError(
                    f"{self.spec}: workers loaded different models (fingerprint "
                    f"{first.model.fingerprint[:12]} on {first.host.hostname}, "
                    f"{facts.model.fingerprint[:12]} on {facts.host.hostname}); "
                    "every node needs the same model files and evalkit version"
                )
        return first

    def stop(self) -> None:
        self._kill_all([w.handle for w in self._workers] + [h for h, _ in self._loading.values()])
        self._workers, self._loading = [], {}

    @property
    def busy(self) -> int:
        """Units in flight now (0 whenever `run` is not running)."""
        return self._busy

    # -- work -------------------------------------------------------------------------------------

    def run(self, units: Sequence[Submit], on_done: Callable[[int, Any], None], what: str) -> None:
        """Run every unit on some worker; `on_done(index, value)` hears of each as it finishes.

        Raises `UnitFailedError` when a unit keeps failing or no worker is left, and the unit's own
        exception when its code raised; units still in flight then are waited for first (their
        answers still reach `on_done`: they are valid).
        """
        import ray

        pending = deque(range(len(units)))
        attempts = [0] * len(units)
        running: dict[Any, _Running] = {}
        idle = deque(self._workers)
        timeout = self.options.unit_timeout_s

        def lose(worker: _Worker, index: int, reason: str) -> None:
            self._drop(worker)  # a replacement starts loading; it joins `idle` when loaded
            attempts[index] += 1
            if attempts[index] > self.options.retries:
                raise UnitFailedError(
                    f"{what}: unit {index + 1} of {len(units)} failed {attempts[index]} time(s), "
                    f"the last because {reason} (--retries {self.options.retries})"
                )
            log.warning("%s: unit %d of %d is sent again: %s", what, index + 1, len(units), reason)
            pending.appendleft(index)

        try:
            while pending or running:
                while pending and idle:
                    worker, index = idle.popleft(), pending.popleft()
                    running[units[index](worker.handle)] = _Running(worker, index, time.monotonic())
                    self._busy = len(running)
                if not running and not self._loading:
                    raise UnitFailedError(
                        f"{what}: no worker is left to run {len(pending)} unit(s) (every worker died and "
                        "no replacement could load the model)"
                    )
                ready = self._wait(list(running), timeout, [r.started for r in running.values()])
                for ref in ready:
                    if ref in self._loading:
                        joined = self._joined(ref)
                        if joined is not None:
                            idle.append(joined)
                        continue
                    done = running.pop(ref)
                    self._busy = len(running)
                    try:
                        value = ray.get(ref, timeout=timeout)
                    except ray.exceptions.RayTaskError as exc:
                        idle.append(done.worker)
                        raise _cause(exc) from None
                    except ray.exceptions.RayError as exc:
                        where = f"{done.worker.facts.host.hostname}, pid {done.worker.facts.pid}"
                        lose(done.worker, done.index, f"its worker ({where}) was lost: {type(exc).__name__}")
                        continue
                    idle.append(done.worker)
                    on_done(done.index, value)
                now = time.monotonic()
                for ref, late in [(r, x) for r, x in running.items() if now - x.started >= timeout]:
                    del running[ref]
                    self._busy = len(running)
                    lose(late.worker, late.index, f"it did not finish within {timeout:g} s (--unit-timeout)")
        except Exception:  # not on Ctrl-C: the model's workers are killed at once then
            self._drain(running, on_done)
            raise
        finally:
            self._busy = 0

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        """One call on a live worker's backend (the driver's proxy); a lost worker is replaced and
        the call sent again, at most `retries` times."""
        import ray

        for attempt in range(self.options.retries + 1):
            worker = self._live_worker()
            try:
                return ray.get(worker.handle.call.remote(method, args), timeout=self.options.unit_timeout_s)
            except ray.exceptions.RayTaskError as exc:
                raise _cause(exc) from None
            except ray.exceptions.RayError as exc:
                self._drop(worker)
                if attempt == self.options.retries:
                    raise UnitFailedError(
                        f"{self.spec}: {method} failed {attempt + 1} time(s): its worker was lost "
                        f"({type(exc).__name__})"
                    ) from None
        raise AssertionError("unreachable")

    # -- workers come and go ----------------------------------------------------------------------

    def _spawn(self) -> Any:
        env = {k: v for k, v in os.environ.items() if k.startswith("EVALKIT_")}
        return (
            _remote_worker()
            .options(
                num_cpus=self.options.cpus_per_worker,
                num_gpus=self.options.gpus_per_worker,
                max_restarts=0,
                max_task_retries=0,
            )
            .remote(self.spec, self.options.threads_per_worker, env, os.getcwd())
        )

    def _drop(self, worker: _Worker) -> None:
        """Forget a lost worker (killing it, in case it only hangs) and start loading a replacement."""
        import ray

        if worker in self._workers:
            self._workers.remove(worker)
            ray.kill(worker.handle, no_restart=True)
            handle = self._spawn()
            self._loading[handle.load.remote()] = (handle, time.monotonic())

    def _joined(self, ref: Any) -> _Worker | None:
        """A replacement finished loading: the new worker, or None (and a warning) if it failed."""
        import ray

        handle, _ = self._loading.pop(ref)
        try:
            facts = ray.get(ref, timeout=self.options.load_timeout_s)
        except ray.exceptions.RayError as exc:
            log.warning("%s: a replacement worker failed to load the model: %s", self.spec, exc)
            ray.kill(handle, no_restart=True)
            return None
        if facts.model.fingerprint != self._fingerprint:
            log.warning("%s: a replacement worker on %s loaded another model", self.spec, facts.host.hostname)
            ray.kill(handle, no_restart=True)
            return None
        worker = _Worker(handle, facts)
        self._workers.append(worker)
        return worker

    def _live_worker(self) -> _Worker:
        """A loaded worker, waiting (bounded) for a replacement when none is loaded."""
        import ray

        while not self._workers and self._loading:
            ready, _ = ray.wait(list(self._loading), num_returns=1, timeout=self.options.load_timeout_s)
            if not ready:
                break
            self._joined(ready[0])
        if not self._workers:
            raise UnitFailedError(f"{self.spec}: no worker is left (every worker died)")
        return self._workers[0]

    def _wait(self, running: list[Any], timeout: float, started: list[float]) -> list[Any]:
        """The refs (units or loads) that finished, waiting at most until the earliest deadline."""
        import ray

        now, load_timeout = time.monotonic(), self.options.load_timeout_s
        loads = list(self._loading)
        for ref in [r for r, (_, since) in self._loading.items() if now - since >= load_timeout]:
            handle, _ = self._loading.pop(ref)
            log.warning("%s: a replacement worker did not load within %g s", self.spec, load_timeout)
            ray.kill(handle, no_restart=True)
            loads.remove(ref)
        deadlines = [s + timeout for s in started] + [t + load_timeout for _, t in self._loading.values()]
        wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.0
        ready, _ = ray.wait(running + loads, num_returns=1, timeout=wait_s)
        return list(ready)

    def _drain(self, running: dict[Any, _Running], on_done: Callable[[int, Any], None]) -> None:
        """Wait (bounded) for the units still in flight after a failure; keep what they answer."""
        import ray

        if not running:
            return
        ready, late = ray.wait(list(running), num_returns=len(running), timeout=self.options.unit_timeout_s)
        for ref in ready:
            try:
                on_done(running[ref].index, ray.get(ref, timeout=0))
            except Exception as exc:  # the run already fails for the first reason; this one is logged
                log.debug("a unit finishing after a failure did not count: %s", exc)
        for ref in late:
            self._drop(running[ref].worker)
        running.clear()

    def _kill_all(self, handles: list[Any]) -> None:
        import ray

        for handle in handles:
            ray.kill(handle, no_restart=True)


@functools.cache
def _remote_worker() -> Any:
    import ray

    return ray.remote(ModelWorker)


def _cause(exc: Exception) -> BaseException:
    """The exception a unit's own code raised on its worker (Ray wraps it in a RayTaskError)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
