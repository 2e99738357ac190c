"""Expected speed-up of `--executor ray`: the dispatch simulated with per-unit costs measured here.

    .venv/bin/python benchmarks/simulate_dispatch.py [--model smollm2-135m] [--limit 40]
        [--run-dir DIR] [--costs FILE] [--save-costs FILE] [--workers 1,2,8,64]
        [--seed 0] [--trials 20] [--straggler-fraction 0.05] [--straggler-slowdown 3]
        [--lmeval TASK] [--json]

Measured (unless `--costs` gives a file that `--save-costs` wrote):
- each task's time: `evalkit run -m MODEL --suite quick --limit N --no-cache` (or the records of
  `--run-dir`, a run made so); the efficiency task's time from the reference store's record;
- each document's tokens: the task's requests as the run builds them (its executor driven by the
  fake backend), grouped by context as the Ray driver groups misses, counted by MODEL's tokenizer;
- an actor's model load (a fresh process: imports + `load_model`), a Ray round trip (an empty actor
  call; an assumed figure, said so, when ray is missing), the driver's planning (`plan_tasks`), its
  cache-row writes and its per-task sample-log + record writes.
Modelled: a document's cost is its task's measured time shared out in proportion to its tokens; a
`core`-sized task draws its documents (the catalogue's count) from the measured ones of that task;
an `lmeval:` task is one unit costing LMEVAL_SLOWDOWN x its evalkit twin.

Simulated: tasks one after another; a task's documents in `shards` interleaved slices (W and 4W),
pulled in order by W actors that loaded the model in parallel; efficiency and lmeval tasks one
whole unit; one driver writing cache rows per unit (serially) and the sample log + record per
task. Faults: a `--straggler-fraction` of units run `--straggler-slowdown` x slower, and one actor
dies once part-way through a unit (drawn by seed): the unit goes back to the head of the queue and
the actor restarts (loading the model again). Speed-up is over one fault-free actor (one unit per
task); "with faults" is the mean (and worst) over `--trials` seeds. Deterministic given `--seed`.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

# lm-eval's HFLM took 110.2 s where evalkit took 45.0 s on the same documents (bench_vs_lmeval.py,
# benchmarks/README.md, 2026-11-29): an `lmeval:` task's unit costs this much more than its twin.
LMEVAL_SLOWDOWN = 110.2 / 45.0
# Used only when ray is not importable (then said so): a local actor call's round trip, order of.
ASSUMED_DISPATCH_S = 0.001
ROOT = Path(__file__).resolve().parents[1]
DOCUMENT_KINDS = ("multiple_choice", "loglikelihood", "generate", "perplexity")


@dataclass(frozen=True)
class TaskWork:
    name: str
    costs: tuple[float, ...]  # seconds per document (a context group)
    rows: tuple[int, ...]  # cache rows the driver writes per document
    whole: bool = False  # one unit whatever --shards (efficiency: alone; lmeval: whole task)
    serial_s: float = 0.0  # the driver's own share: the executor builds prompts and scores, serially

    @property
    def total_s(self) -> float:
        return sum(self.costs)


@dataclass(frozen=True)
class Overheads:
    load_s: float = 0.0  # one actor: imports + load_model; actors load in parallel
    dispatch_s: float = 0.0  # per unit: the driver -> actor -> driver round trip
    plan_s: float = 0.0  # the driver, before anything is dispatched: read and render every document
    row_write_s: float = 0.0  # the driver: one cache row
    unit_write_s: float = 0.0  # the driver: one cache commit (per unit)
    task_write_s: float = 0.0  # the driver: one sample log + one record


@dataclass(frozen=True)
class Faults:
    straggler_fraction: float = 0.0
    straggler_slowdown: float = 3.0
    worker_death: bool = False


def split_units(task: TaskWork, shards: int) -> list[tuple[float, int]]:
    """(cost, rows) of each unit: interleaved slices of the documents, dearest first (the executor
    sends requests longest context first; group i goes to unit i mod N); no empty units."""
    if task.whole or shards <= 1:
        return [(task.total_s, sum(task.rows))]
    order = sorted(range(len(task.costs)), key=lambda i: -task.costs[i])
    return [
        (sum(task.costs[i] for i in order[k::shards]), sum(task.rows[i] for i in order[k::shards]))
        for k in range(min(shards, len(order)))
    ]


def simulate(
    tasks: Sequence[TaskWork], workers: int, shards: int, overheads: Overheads, faults: Faults, seed: int
) -> float:
    """The run's makespan in seconds (discrete events; tasks one after another)."""
    rng = random.Random(seed)
    plans = [split_units(task, shards) for task in tasks]
    slow = [[rng.random() < faults.straggler_fraction for _ in units] for units in plans]
    total_units = sum(len(units) for units in plans)
    death = rng.randrange(total_units) if faults.worker_death and total_units else -1
    death_point = rng.uniform(0.1, 0.9)  # how far into its unit the actor dies
    o = overheads
    now = o.plan_s + o.load_s
    ready = [now] * workers  # when each actor can take its next unit
    first_id = 0
    for task, units, flags in zip(tasks, plans, slow, strict=True):
        now += task.serial_s
        # a queued unit: (available from, cost, rows, straggles, id)
        queue = deque(
            (now, cost, rows, flag, first_id + i)
            for i, ((cost, rows), flag) in enumerate(zip(units, flags, strict=True))
        )
        first_id += len(units)
        events = [(max(now, ready[w]), w) for w in range(workers)]
        heapq.heapify(events)
        finished: list[tuple[float, int]] = []
        while queue:
            start, w = heapq.heappop(events)
            if queue[0][0] > start and len(queue) > 1:
                queue.rotate(-1)  # the head is a retry not yet noticed: take the next unit meanwhile
                item = queue.popleft()
                queue.rotate(1)
            else:
                item = queue.popleft()
            available, cost, rows, flag, uid = item
            start = max(start, available)
            run_s = o.dispatch_s + cost * (faults.straggler_slowdown if flag else 1.0)
            if uid == death:
                death = -1  # once: the unit goes back to the head; the actor restarts and reloads
                died_at = start + run_s * death_point
                queue.appendleft((died_at, cost, rows, flag, uid))
                heapq.heappush(events, (died_at + o.load_s, w))
                continue
            heapq.heappush(events, (start + run_s, w))
            finished.append((start + run_s, rows))
        for when, w in events:
            ready[w] = when
        driver = now
        for end, rows in sorted(finished):  # one writer: the driver stores each unit as it comes back
            driver = max(driver, end) + o.unit_write_s + rows * o.row_write_s
        if finished:
            now = max(driver, max(end for end, _ in finished)) + o.task_write_s
    return now


def baseline(tasks: Sequence[TaskWork], overheads: Overheads) -> float:
    return simulate(tasks, 1, 1, overheads, Faults(), 0)


def speedups(
    tasks: Sequence[TaskWork],
    overheads: Overheads,
    faults: Faults,
    workers: int,
    shards: int,
    seed: int,
    trials: int,
) -> dict[str, float]:
    one = baseline(tasks, overheads)
    ideal = simulate(tasks, workers, shards, overheads, Faults(), seed)
    faulty = [simulate(tasks, workers, shards, overheads, faults, seed * 1000 + t) for t in range(trials)]
    return {
        "workers": workers,
        "shards": shards,
        "units": sum(len(split_units(t, shards)) for t in tasks),
        "one_worker_s": one,
        "makespan_s": ideal,
        "speedup": one / ideal,
        "faults_makespan_s": statistics.fmean(faulty),
        "faults_speedup": one / statistics.fmean(faulty),
        "faults_worst_speedup": one / max(faulty),
    }


# -- measuring ----------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every input of the simulation, measured on this host (see the module docstring)."""
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="simulate-dispatch-"))
    if not args.run_dir:
        command = [str(Path(sys.executable).parent / "evalkit"), "run", "-m", args.model, "--suite", "quick"]
        command += ["--limit", str(args.limit), "--results", str(run_dir), "--no-cache", "-q"]
        print("measuring:", " ".join(command), file=sys.stderr)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line]
    records = [r for r in records if r["status"] == "ok" and r["model"]["name"] == args.model]
    records = [r for r in records if r["task"]["kind"] in DOCUMENT_KINDS]  # split per document
    if sum(r["duration_s"] for r in records) < 1.0:
        raise SystemExit(
            f"{run_dir}: its tasks took under 1 s in all: cache hits; make the run with --no-cache"
        )
    print("measuring: documents' tokens, load, round trip, driver writes", file=sys.stderr)
    from evalkit.backends import load_model
    from evalkit.kinds import executor_for
    from evalkit.specs import default_catalogue

    backend = load_model(args.model)
    catalogue = default_catalogue()
    tasks, core_counts = [], {}
    for record in records:
        spec = catalogue.task(record["task"]["name"])
        groups, serial_s = _context_groups(spec, record["config"]["limit"])
        serial_s = min(serial_s, record["duration_s"])
        tokens = [sum(backend.tokenizer.count(text) for text in texts) for texts, _ in groups]
        per_token = (record["duration_s"] - serial_s) / sum(tokens)
        tasks.append(
            {
                "name": spec.name,
                "measured_s": record["duration_s"],
                "serial_s": serial_s,
                "documents": record["task"]["num_samples"],
                "tokens": sum(tokens),
                "costs": [n * per_token for n in tokens],
                "rows": [rows for _, rows in groups],
            }
        )
        core_counts[spec.name] = int(executor_for(spec).describe(spec, count=True).samples)
    measured = {
        "model": args.model,
        "command": f"evalkit run -m {args.model} --suite quick --limit {args.limit} --no-cache",
        "host": {"cpu": _cpu_name(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")},
        "tasks": tasks,
        "core_counts": core_counts,
        "efficiency_s": _reference_efficiency_s(args.model),
        "overheads": asdict(_measure_overheads(args.model, run_dir)),
        "dispatch_measured": _ray_importable(),
    }
    if not args.run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)  # the run was only a measurement
    return measured


def _context_groups(spec: Any, limit: int | None) -> tuple[list[tuple[list[str], int]], float]:
    """The task's requests as a run builds them, grouped by context (texts to count, distinct rows),
    and the seconds its executor spent outside `serve` (prompts, scoring: the driver's own work)."""
    from evalkit.backends import load_model
    from evalkit.kinds import ExecutionContext, executor_for
    from evalkit.requests import GenerateRequest, LoglikelihoodRequest, Request, Result
    from evalkit.runner.cache import NullCache
    from evalkit.runner.execute import execute

    fake = load_model("fake")
    seen: list[Request] = []
    serving = [0.0]

    class Recorder:
        def serve(self, requests: Sequence[Request], **_: Any) -> list[Result]:
            started = time.perf_counter()
            seen.extend(requests)
            results = execute(fake, requests, cache=NullCache(), batch_size=16, show_progress=False)
            serving[0] += time.perf_counter() - started
            return results

        def batch_sizes(self) -> tuple[int, ...]:
            return ()

    executor = executor_for(spec)
    executor.prepare(spec)  # the documents are read while the run is planned: not the task's time
    started = time.perf_counter()
    executor.run(fake, spec, ExecutionContext(server=Recorder(), limit=limit, show_progress=False))
    serial_s = time.perf_counter() - started - serving[0]
    # Tokens counted: a context once (the backend packs a context with all its continuations),
    # each distinct continuation, a rolling text; a generation's decoded tokens are not (quick has none).
    groups: dict[str, tuple[list[str], set[Request]]] = {}
    for request in seen:
        if isinstance(request, LoglikelihoodRequest | GenerateRequest):
            texts, rows = groups.setdefault(request.context, ([request.context], set()))
        else:
            texts, rows = groups.setdefault(request.text, ([request.text], set()))
        if isinstance(request, LoglikelihoodRequest) and request not in rows:
            texts.append(request.continuation)
        rows.add(request)
    return [(texts, len(rows)) for texts, rows in groups.values()], serial_s


def _measure_overheads(model: str, run_dir: Path) -> Overheads:
    from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult
    from evalkit.runner.cache import ResponseCache

    load_s = float(_in_fresh_process(_LOAD_CODE % model))
    dispatch_s = float(_in_fresh_process(_RAY_CODE)) if _ray_importable() else ASSUMED_DISPATCH_S
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "responses.sqlite")
        result = LoglikelihoodResult(-12.3456789, False, 3)
        rows = [(LoglikelihoodRequest(f"Question: {i} " * 20, f" answer {i}"), result) for i in range(2000)]
        commits = []
        for i in range(50):
            started = time.perf_counter()
            cache.put_many("model", [(LoglikelihoodRequest(f"one {i}", " row"), result)])
            commits.append(time.perf_counter() - started)
        started = time.perf_counter()
        cache.put_many("model", rows)
        many_s = time.perf_counter() - started
        cache.close()
        unit_write_s = statistics.median(commits)
        row_write_s = max(many_s - unit_write_s, 0.0) / len(rows)
        task_writes = []
        for record in (run_dir / "records.jsonl").read_text().splitlines():
            samples = (run_dir / json.loads(record)["samples_file"]).read_bytes()
            started = time.perf_counter()
            for name, payload in (("samples.jsonl", samples), ("records.jsonl", record.encode() + b"\n")):
                with open(Path(tmp) / name, "ab") as out:
                    out.write(payload)
                    out.flush()
                    os.fsync(out.fileno())
            task_writes.append(time.perf_counter() - started)
    return Overheads(
        load_s=load_s,
        dispatch_s=dispatch_s,
        plan_s=_measure_planning(),
        row_write_s=row_write_s,
        unit_write_s=unit_write_s,
        task_write_s=statistics.fmean(task_writes),
    )


def _measure_planning() -> float:
    """What the driver does before it dispatches: every task resolved, every document read and
    rendered. It reads whole datasets whatever --limit, so `core` plans in the same time."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from evalkit.runner import plan_tasks\nfrom evalkit.specs import default_catalogue\n"
        "plan_tasks(default_catalogue(), None, 'quick'); print(time.perf_counter() - t)"
    )
    return float(_in_fresh_process(code))


_LOAD_CODE = (
    "import time; t = time.perf_counter()\n"
    "from evalkit.backends import load_model\nload_model(%r); print(time.perf_counter() - t)"
)
# An empty actor call's round trip on a local Ray (median of 200, after one warm-up call); Ray's
# files go to a temporary folder, removed afterwards.
_RAY_CODE = """
import shutil, statistics, tempfile, time, ray
folder = tempfile.mkdtemp(prefix="simulate-dispatch-ray-")
ray.init(num_cpus=1, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
         _temp_dir=folder)
@ray.remote(num_cpus=0)
class Echo:
    def call(self):
        return None
echo = Echo.remote()
ray.get(echo.call.remote(), timeout=120)
times = []
for _ in range(200):
    t = time.perf_counter()
    ray.get(echo.call.remote(), timeout=60)
    times.append(time.perf_counter() - t)
ray.shutdown()
shutil.rmtree(folder, ignore_errors=True)
print(statistics.median(times))
"""


def _in_fresh_process(code: str) -> str:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=600, env=env
    )
    return done.stdout.strip().splitlines()[-1]


def _ray_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _reference_efficiency_s(model: str) -> float | None:
    """The efficiency task's time from the committed reference run (it is always measured afresh)."""
    store = ROOT / "results" / "records.jsonl"
    for line in store.read_text().splitlines() if store.exists() else []:
        record = json.loads(line)
        if (
            record["model"]["name"] == model
            and record["task"]["kind"] == "efficiency"
            and record["status"] == "ok"
        ):
            return float(record["duration_s"])
    return None


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# -- scenarios and the table -------------------------------------------------------------------


def scenarios(measured: dict[str, Any], lmeval: Sequence[str], seed: int) -> dict[str, list[TaskWork]]:
    """quick as measured, and core-sized (each task's documents drawn from its measured ones)."""
    quick = [
        TaskWork(t["name"], tuple(t["costs"]), tuple(t["rows"]), serial_s=t.get("serial_s", 0.0))
        for t in measured["tasks"]
    ]
    # A task's units are context groups (a winogrande document is two): scale the count to match.
    core = [
        _resample(task, round(measured["core_counts"][t["name"]] * len(t["costs"]) / t["documents"]), seed)
        for task, t in zip(quick, measured["tasks"], strict=True)
    ]
    out = {}
    for label, tasks in (("quick", quick), ("core", core)):
        extra = []
        for name in lmeval:
            twin = next((t for t in tasks if t.name == name), None)
            if twin is None:
                raise SystemExit(
                    f"--lmeval {name}: not a task of the measured run ({', '.join(t.name for t in quick)})"
                )
            extra.append(TaskWork(f"lmeval:{name}", (twin.total_s * LMEVAL_SLOWDOWN,), (0,), whole=True))
        if measured["efficiency_s"] is not None:
            extra.append(TaskWork("efficiency_quick", (measured["efficiency_s"],), (0,), whole=True))
        groups = sum(len(t.costs) for t in tasks)
        out[f"{label} ({groups} groups)" + "".join(f" + {t.name}" for t in extra)] = tasks + extra
    return out


def _resample(task: TaskWork, count: int, seed: int) -> TaskWork:
    rng = random.Random(f"{seed}:{task.name}")
    picks = [rng.randrange(len(task.costs)) for _ in range(count)]
    costs, rows = tuple(task.costs[i] for i in picks), tuple(task.rows[i] for i in picks)
    return replace(task, costs=costs, rows=rows, serial_s=task.serial_s * count / len(task.costs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=40, help="documents per task in the measured run")
    parser.add_argument("--run-dir", help="use this run's records (made with --no-cache) instead of running")
    parser.add_argument("--costs", help="simulate from a file --save-costs wrote (nothing measured)")
    parser.add_argument("--save-costs", help="write what was measured to this file")
    parser.add_argument("--workers", default="1,2,8,64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=20, help="seeds the faulty runs are averaged over")
    parser.add_argument("--straggler-fraction", type=float, default=0.05)
    parser.add_argument("--straggler-slowdown", type=float, default=3.0)
    parser.add_argument("--lmeval", action="append", default=[], help="add lmeval:TASK as a whole-task unit")
    parser.add_argument("--json", action="store_true", help="machine output")
    args = parser.parse_args()
    measured = json.loads(Path(args.costs).read_text()) if args.costs else measure(args)
    if args.save_costs:
        Path(args.save_costs).write_text(json.dumps(measured))
    overheads = Overheads(**measured["overheads"])
    faults = Faults(args.straggler_fraction, args.straggler_slowdown, worker_death=True)
    rows = []
    for label, tasks in scenarios(measured, args.lmeval, args.seed).items():
        for workers in (int(w) for w in args.workers.split(",")):
            for shards in dict.fromkeys((workers, 4 * workers)):
                row = speedups(tasks, overheads, faults, workers, shards, args.seed, args.trials)
                rows.append({"scenario": label, **row})
    if args.json:
        print(json.dumps({"measured": _summary(measured), "rows": rows}, indent=1))
    else:
        _print_table(measured, rows, args)


def _summary(measured: dict[str, Any]) -> dict[str, Any]:
    tasks = {
        t["name"]: {k: t[k] for k in ("documents", "tokens", "measured_s", "serial_s")}
        | {"groups": len(t["costs"])}
        for t in measured["tasks"]
    }
    keep = ("model", "command", "host", "core_counts", "efficiency_s", "overheads", "dispatch_measured")
    return {**{k: measured[k] for k in keep}, "tasks": tasks}


def _print_table(measured: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    o, host = measured["overheads"], measured["host"]
    print(f"measured on {host['cpu']} ({host['cores']} cores), {host['date']}: {measured['command']}")
    for t in measured["tasks"]:
        print(
            f"  {t['name']:<15} {t['documents']:>3} docs {len(t['costs']):>3} groups {t['tokens']:>5} tokens"
            f" {t['measured_s']:>5.1f} s ({1000 * t['measured_s'] / t['tokens']:5.2f} s/1k tokens,"
            f" driver {1000 * t['serial_s']:.0f} ms); core: {measured['core_counts'][t['name']]} docs"
        )
    eff = measured["efficiency_s"]
    shown = f"{eff:.1f} s (the reference store's record)" if eff is not None else "no reference record"
    print(f"  efficiency_quick: {shown}")
    how = "an empty Ray actor call" if measured["dispatch_measured"] else "ASSUMED: ray is not importable"
    print(
        f"  actor start + load {o['load_s']:.1f} s; round trip {1000 * o['dispatch_s']:.2f} ms ({how});"
        f" planning {o['plan_s']:.1f} s;\n  driver writes {1000 * o['unit_write_s']:.2f} ms per unit"
        f" + {1e6 * o['row_write_s']:.1f} us per cache row + {1000 * o['task_write_s']:.1f} ms per task"
    )
    print(
        f"faults: {100 * args.straggler_fraction:g}% of units {args.straggler_slowdown:g}x slower and"
        f" one actor dies once: mean (worst) of {args.trials} seeds from --seed {args.seed}\n"
    )
    width = max(len(r["scenario"]) for r in rows)
    print(
        f"{'scenario':<{width}} {'W':>3} {'shards':>6} {'units':>5} {'1 worker':>9} {'W workers':>9}"
        f" {'speed-up':>8}  with faults"
    )
    for r in rows:
        print(
            f"{r['scenario']:<{width}} {r['workers']:>3} {r['shards']:>6} {r['units']:>5}"
            f" {_duration(r['one_worker_s']):>9} {_duration(r['makespan_s']):>9} {r['speedup']:>7.2f}x"
            f"  {r['faults_speedup']:.2f}x ({r['faults_worst_speedup']:.2f}x)"
        )


def _duration(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 600
        else f"{seconds / 60:.1f} min"
        if seconds < 36000
        else f"{seconds / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
