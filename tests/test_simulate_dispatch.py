"""benchmarks/simulate_dispatch.py: the dispatch simulation on small synthetic costs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "simulate_dispatch.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simulate_dispatch", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


sd = _load()
NO_FAULTS = sd.Faults()
FREE = sd.Overheads()


def test_one_worker_takes_the_sum_of_costs_and_overheads() -> None:
    tasks = [sd.TaskWork("a", (1.0, 2.0, 3.0), (1, 2, 1), serial_s=0.5), sd.TaskWork("b", (4.0,), (3,))]
    o = sd.Overheads(
        load_s=7.0, dispatch_s=0.5, plan_s=2.0, row_write_s=0.01, unit_write_s=0.1, task_write_s=0.25
    )
    per_task = [(6.0, 4), (4.0, 3)]  # one unit each: (cost, rows)
    expected = o.plan_s + o.load_s
    expected += sum(o.dispatch_s + cost + o.unit_write_s + rows * o.row_write_s for cost, rows in per_task)
    expected += 2 * o.task_write_s + 0.5  # and the driver's own share of task a
    assert sd.simulate(tasks, 1, 1, o, NO_FAULTS, seed=0) == pytest.approx(expected)
    assert sd.baseline(tasks, o) == pytest.approx(expected)
    # three shards of task a on one worker: two more round trips, while the driver writes the first
    # two units during the next ones' compute, so only the last unit's rows (1 of 4) wait for it
    three = sd.simulate(tasks, 1, 3, o, NO_FAULTS, seed=0)
    assert three == pytest.approx(expected + 2 * o.dispatch_s - 3 * o.row_write_s)


def test_w_equal_units_on_w_workers_take_one_units_time() -> None:
    task = sd.TaskWork("t", (5.0,) * 8, (1,) * 8)
    assert sd.simulate([task], 8, 8, FREE, NO_FAULTS, seed=0) == pytest.approx(5.0)
    assert sd.simulate([task], 4, 8, FREE, NO_FAULTS, seed=0) == pytest.approx(10.0)
    assert sd.simulate([task], 16, 16, FREE, NO_FAULTS, seed=0) == pytest.approx(5.0)  # 8 documents: 8 units


def test_units_are_interleaved_slices_and_empty_slices_are_no_units() -> None:
    task = sd.TaskWork("t", (1.0, 2.0, 3.0, 4.0, 5.0), (1, 1, 2, 1, 1))
    # dearest first (documents 4, 3, 2, 1, 0), group i to unit i mod 2: documents 4, 2, 0 and 3, 1
    assert sd.split_units(task, 2) == [(9.0, 4), (6.0, 2)]
    assert sd.split_units(task, 3) == [(7.0, 2), (5.0, 2), (3.0, 2)]  # 4, 1 | 3, 0 | 2
    assert sd.split_units(task, 9) == [(5.0, 1), (4.0, 1), (3.0, 2), (2.0, 1), (1.0, 1)]  # one each


def test_tasks_run_one_after_another() -> None:
    tasks = [sd.TaskWork("a", (4.0, 1.0), (1, 1)), sd.TaskWork("b", (1.0, 4.0), (1, 1))]
    # Without the barrier two workers would finish in 5 s; each task waits for its longer unit.
    assert sd.simulate(tasks, 2, 2, FREE, NO_FAULTS, seed=0) == pytest.approx(8.0)


def test_whole_task_units_are_not_split() -> None:
    whole = sd.TaskWork("efficiency_quick", (1.0,) * 8, (0,) * 8, whole=True)
    assert sd.split_units(whole, 8) == [(8.0, 0)]
    assert sd.simulate([whole], 8, 32, FREE, NO_FAULTS, seed=0) == pytest.approx(8.0)


def test_stragglers_lengthen_the_makespan() -> None:
    task = sd.TaskWork("t", (5.0,) * 8, (1,) * 8)
    every = sd.Faults(straggler_fraction=1.0, straggler_slowdown=3.0)
    assert sd.simulate([task], 8, 8, FREE, every, seed=0) == pytest.approx(15.0)
    some = sd.Faults(straggler_fraction=0.2, straggler_slowdown=3.0)
    runs = [sd.simulate([task], 8, 8, FREE, some, seed=seed) for seed in range(20)]
    assert min(runs) == pytest.approx(5.0)  # a seed that drew no straggler
    assert max(runs) == pytest.approx(15.0)
    # finer shards shorten what one straggler costs
    fine = sd.simulate([task], 4, 8, FREE, every, seed=0)
    assert fine == pytest.approx(30.0)


def test_a_dead_worker_costs_its_partial_unit_and_a_reload() -> None:
    task = sd.TaskWork("t", (10.0, 10.0), (1, 1))
    o = sd.Overheads(load_s=1.0)
    ideal = sd.simulate([task], 2, 2, o, NO_FAULTS, seed=3)
    assert ideal == pytest.approx(11.0)
    died = sd.simulate([task], 2, 2, o, sd.Faults(worker_death=True), seed=3)
    # the dead actor restarts (1 s) and runs the unit again from its start: 11 + a part of 10 s
    assert ideal + 1.0 < died < ideal + 10.0
    alone = sd.simulate([task], 1, 2, o, sd.Faults(worker_death=True), seed=3)
    assert 21.0 + 1.0 < alone < 21.0 + 10.0  # one actor: the run waits for it to come back


def test_a_retry_is_not_taken_before_the_death_is_noticed() -> None:
    # An actor dies a fraction p (0.1-0.9) into the 10 s unit or into a 1 s one. The other actor is
    # free sooner, but may take the 10 s unit again only once the death is seen (10p), taking the
    # other units meanwhile: 10p + 10 s in all. A death on a 1 s unit hides behind the 10 s one.
    for costs in [(10.0, 1.0), (10.0, 1.0, 1.0)]:
        task = sd.TaskWork("t", costs, (1,) * len(costs))
        spans = [sd.simulate([task], 2, 3, FREE, sd.Faults(worker_death=True), seed=s) for s in range(12)]
        assert all(span == pytest.approx(10.0) or 11.0 < span < 19.0 for span in spans), spans
        assert any(span > 11.0 for span in spans) and any(span == pytest.approx(10.0) for span in spans)


def test_deterministic_per_seed() -> None:
    tasks = [sd.TaskWork("t", tuple(float(i % 7 + 1) for i in range(50)), (1,) * 50)]
    faults = sd.Faults(straggler_fraction=0.1, straggler_slowdown=3.0, worker_death=True)
    o = sd.Overheads(load_s=2.0, dispatch_s=0.01)
    first = [sd.simulate(tasks, 4, 16, o, faults, seed=s) for s in range(8)]
    again = [sd.simulate(tasks, 4, 16, o, faults, seed=s) for s in range(8)]
    assert first == again
    assert len(set(first)) > 1  # the seed matters
    row = sd.speedups(tasks, o, faults, workers=4, shards=16, seed=1, trials=5)
    assert row == sd.speedups(tasks, o, faults, workers=4, shards=16, seed=1, trials=5)
    assert row["speedup"] > row["faults_speedup"] >= row["faults_worst_speedup"]
    assert sd.speedups(tasks, o, sd.Faults(), 1, 1, seed=0, trials=2)["speedup"] == pytest.approx(1.0)


def _measured() -> dict[str, Any]:
    return {
        "tasks": [
            {"name": "winogrande", "costs": [1.0, 3.0], "rows": [1, 1], "documents": 1, "serial_s": 0.2},
            {"name": "arc_easy", "costs": [2.0], "rows": [4], "documents": 1},
        ],
        "core_counts": {"winogrande": 10, "arc_easy": 5},
        "efficiency_s": 40.0,
    }


def test_core_scenario_draws_documents_and_adds_whole_task_units() -> None:
    runs = sd.scenarios(_measured(), ["arc_easy"], seed=0)
    quick, core = runs.values()
    names = [t.name for t in core]
    assert names == ["winogrande", "arc_easy", "lmeval:arc_easy", "efficiency_quick"]
    assert len(core[0].costs) == 20  # 10 documents of two context groups each
    assert core[0].serial_s == pytest.approx(2.0)  # the driver's share grows with the documents
    assert set(core[0].costs) <= {1.0, 3.0}
    assert core[1].costs == (2.0,) * 5 and core[1].rows == (4,) * 5
    assert core[2].whole and core[2].total_s == pytest.approx(10.0 * sd.LMEVAL_SLOWDOWN)
    assert quick[2].total_s == pytest.approx(2.0 * sd.LMEVAL_SLOWDOWN)
    assert core[3].whole and core[3].total_s == 40.0
    assert sd.scenarios(_measured(), [], seed=0) == sd.scenarios(_measured(), [], seed=0)
    with pytest.raises(SystemExit, match="--lmeval mmlu"):
        sd.scenarios(_measured(), ["mmlu"], seed=0)
