"""The worker: one Ray actor holding one loaded model, answering units of work.

Workers are pure. They load a model from its spec string and answer what the driver sends: a
unit of requests (through `execute` over a `NullCache`: the driver alone reads and writes the
response cache), a whole task (an executor whose placement is "worker" or "node"), or a single
call from the driver's backend proxy (tokenizer, chat template, prompt tokens). They never open
the cache or the results store. The class is plain Python; `ray.remote` wraps it when a pool
starts, so importing this module does not import Ray.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evalkit.backends import Backend, ModelFacts
from evalkit.kinds import TaskOutcome
from evalkit.requests import Request, Result
from evalkit.results import HostFacts
from evalkit.runner.execute import BatchSize
from evalkit.specs import TaskSpec

# What the driver's proxy may ask a worker's backend, by attribute path. Calls the worker answers
# one at a time, in the actor's single thread, between units.
PROXY_CALLS = frozenset(
    {
        "tokenizer.encode",
        "tokenizer.decode",
        "tokenizer.count",
        "apply_chat_template",
        "loglikelihood",
        "generate",
        "loglikelihood_rolling",
        # PromptTokens
        "prompt_token_ids",
        "tokenizer_identity",
        "prompt_limit",
        # PrefixReuse
        "generate_shared",
        "loglikelihood_shared",
        # TimingProbe, StateSizeProbe
        "vocab_size",
        "timing_prefill",
        "timing_decode",
        "weight_bytes",
        "flops_per_token",
        "timing_state_bytes",
    }
)
# Environment variables that decide how many threads a process computes with.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class WorkerFacts:
    """What a worker reports once its model is loaded."""

    model: ModelFacts
    capabilities: frozenset[str]  # names from `capabilities_of`
    pid: int
    host: HostFacts


@dataclass(frozen=True)
class UnitAnswer:
    results: list[Result]  # in the unit's order
    batch_sizes: tuple[int, ...]  # the batch sizes the worker sent requests with


@dataclass(frozen=True)
class TaskSettings:
    """The run's options for a whole-task unit (the worker builds its own ExecutionContext)."""

    limit: int | None
    num_fewshot: int | None
    seed: int | None
    batch_size: BatchSize
    beyond_window: Literal["skip", "run"] | None
    # The driver's own thread variables: a task that takes a whole node ("node" placement) computes
    # with the threads a local run would, not with the worker's share.
    thread_env: tuple[tuple[str, str | None], ...] = ()


def capabilities_of(backend: Backend) -> frozenset[str]:
    """The optional capabilities `backend` declares, by name (the proxy declares the same)."""
    from evalkit.backends.capabilities import PrefixReuse, PromptTokens, TimingProbe
    from evalkit.efficiency import StateSizeProbe

    protocols: dict[str, type] = {
        "prompt_tokens": PromptTokens,
        "prefix_reuse": PrefixReuse,
        "timing_probe": TimingProbe,
        "state_size_probe": StateSizeProbe,
    }
    return frozenset(name for name, protocol in protocols.items() if isinstance(backend, protocol))


class ModelWorker:
    def __init__(self, spec: str, threads: int, env: dict[str, str], cwd: str) -> None:
        """`env` (the driver's EVALKIT_* variables) and `cwd` make a spec mean here what it means on
        the driver: the same cache folder, and relative model paths found from the same folder."""
        os.environ.update(env)
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.spec, self.threads = spec, threads
        self._backend: Backend | None = None

    def load(self) -> WorkerFacts:
        from evalkit.backends import load_model
        from evalkit.results.provenance import host_facts

        for name in THREAD_VARIABLES:
            os.environ[name] = str(self.threads)
        self._backend = load_model(self.spec)
        _set_torch_threads(self.threads)
        return WorkerFacts(
            model=self._backend.describe(),
            capabilities=capabilities_of(self._backend),
            pid=os.getpid(),
            host=host_facts(),
        )

    def pid(self) -> int:
        return os.getpid()

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        if method not in PROXY_CALLS:
            raise ValueError(f"a worker does not answer {method!r}")
        target: Any = self.backend
        for part in method.split("."):
            target = getattr(target, part)
        return target(*args) if callable(target) else target

    def serve(self, requests: Sequence[Request], batch_size: BatchSize, prefix_reuse: bool) -> UnitAnswer:
        from evalkit.runner.cache import NullCache
        from evalkit.runner.execute import execute

        used: set[int] = set()
        results = execute(
            self.backend,
            requests,
            cache=NullCache(),
            batch_size=batch_size,
            prefix_reuse=prefix_reuse,
            used_batch_sizes=used,
            show_progress=False,
        )
        return UnitAnswer(results, tuple(sorted(used)))

    def run_task(
        self, spec: TaskSpec, settings: TaskSettings, whole_node: bool
    ) -> tuple[TaskOutcome, HostFacts]:
        """Run a whole task here; returns its TaskOutcome and this host's facts (where it was measured)."""
        from evalkit.kinds import ExecutionContext, executor_for
        from evalkit.results.provenance import host_facts
        from evalkit.runner.cache import NullCache
        from evalkit.runner.execute import CachedServer

        server = CachedServer(self.backend, NullCache(), batch_size=settings.batch_size, show_progress=False)
        context = ExecutionContext(
            server=server,
            limit=settings.limit,
            num_fewshot=settings.num_fewshot,
            seed=settings.seed,
            batch_size=settings.batch_size,
            show_progress=False,
            beyond_window=settings.beyond_window,
        )
        threads = _node_threads(settings.thread_env) if whole_node else contextlib.nullcontext()
        with threads:
            outcome = executor_for(spec).run(self.backend, spec, context)
        return outcome, host_facts()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("the worker's model is not loaded (load() was not called)")
        return self._backend


def _set_torch_threads(threads: int) -> None:
    torch = sys.modules.get("torch")  # only a backend that imported torch computes with its threads
    if torch is not None:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _node_threads(thread_env: tuple[tuple[str, str | None], ...]) -> Iterator[None]:
    """For the block, this process and its children compute with a whole node's threads: the
    driver's thread variables (usually unset: the libraries' own defaults), as a local run would."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    wanted = dict(thread_env)
    try:
        for name in THREAD_VARIABLES:
            _set_env(name, wanted.get(name))
        if torch is not None:
            torch.set_num_threads(_default_torch_threads())
        yield
    finally:
        for name, value in saved.items():
            _set_env(name, value)
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)


def _default_torch_threads() -> int:
    """torch's own default: the physical cores (or the OMP_NUM_THREADS it was told)."""
    told = os.environ.get("OMP_NUM_THREADS", "")
    if told.isdigit() and int(told) > 0:
        return int(told)
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
