"""The query layer: one rule for which record counts, and every view (leaderboard, plots, site, gate,
compare) picking the same record on a store where the old per-view rules disagreed."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from site_records import DAY, decode_curve, record, sha

from evalkit import plots
from evalkit.errors import DataError, UnknownNameError
from evalkit.gate import evaluate_gate, load_policy
from evalkit.query import (
    StoreQuery,
    choose_latest,
    display_names,
    duplicate_note,
    efficiency_figure,
    efficiency_problem,
    interval,
    load_query,
    primary_metric,
    variant_groups,
)
from evalkit.query import decode_curve as read_decode_curve
from evalkit.report import build_leaderboard, select_records
from evalkit.results import EfficiencyFigures, MetricValue, ResultsStore, RunRecord
from evalkit.site import write_site

REPO = Path(__file__).resolve().parents[1]
A, B = "a" * 64, "b" * 64


def other_version(item: RunRecord, samples: int) -> RunRecord:
    """The same task evaluated on other samples (say another --limit): another task fingerprint."""
    task = item.task.model_copy(
        update={"fingerprint": sha(f"{item.task.name}-{samples}"), "num_samples": samples}
    )
    return item.model_copy(update={"task": task})


def disputed_records() -> list[RunRecord]:
    """A store on which the leaderboard, the plots and the gate used to apply three different rules.

    Model "m" has two fingerprints. A ran t on two task versions (the newer one counts) and then
    failed on it; B ran t earlier. The store lists them out of time order.
    """
    return [
        record("m", "t", 0.40, fingerprint=B, finished=DAY.format("09:00")),
        other_version(record("m", "t", 0.70, n=50, fingerprint=A, finished=DAY.format("11:00")), 50),
        record("m", "t", 0.60, fingerprint=A, finished=DAY.format("10:00")),
        record(
            "m", "t", 0.0, fingerprint=A, finished=DAY.format("12:00"), error="RuntimeError: out of memory"
        ),
        record("m", "u", 0.55, fingerprint=A, finished=DAY.format("10:30")),
    ]


# -- the rule ---------------------------------------------------------------------------------------


def test_the_latest_ok_record_per_model_fingerprint_and_task_name_counts() -> None:
    query = StoreQuery(disputed_records())
    latest = query.latest_ok()
    assert {key: primary_metric(r).value for key, r in latest.items()} == {  # type: ignore[union-attr]
        (B, "t"): 0.40,
        (A, "u"): 0.55,
        (A, "t"): 0.70,
    }
    assert list(latest) == [(B, "t"), (A, "u"), (A, "t")]  # in time order of the chosen record
    choice = query.choice(A, "t")
    assert choice is not None and choice.task_versions == 2 and len(choice.passed_over) == 1
    note = duplicate_note(choice, query.names[A])
    assert note is not None and "m@aaaaaaaa: t was evaluated on 2 different task versions" in note
    assert "50 samples" in note


def test_reruns_of_one_version_are_noted_only_within_a_run() -> None:
    first = record("m", "t", 0.5, finished=DAY.format("10:00"))
    again = record("m", "t", 0.6, finished=DAY.format("10:30"))
    (choice,) = choose_latest([again, first])
    assert choice.record is again and choice.passed_over == (first,)
    assert duplicate_note(choice, "m") is None  # a newer result replacing an older one is the rule
    assert "evaluated 2 times" in (duplicate_note(choice, "m", run_id="run-10") or "")


def test_failures_are_current_until_a_later_ok_record_supersedes_them() -> None:
    failed = record("m", "t", 0.0, finished=DAY.format("10:00"), error="boom")
    fixed = record("m", "t", 0.5, finished=DAY.format("11:00"))
    query = StoreQuery([fixed, failed])
    assert query.current_failures() == [] and query.rerun_succeeded(failed)
    again = record("m", "t", 0.0, finished=DAY.format("12:00"), error="boom again")
    query = StoreQuery([fixed, failed, again])
    assert query.current_failures() == [again] and not query.rerun_succeeded(again)


def test_display_names_add_the_shortest_distinct_fingerprint_prefix() -> None:
    shared = "abcdef12" + "0" * 56
    names = display_names(
        [
            record("m", "t", 0.5, fingerprint=shared),
            record("m", "t", 0.5, fingerprint="abcdef12" + "1" * 56),
            record("solo", "t", 0.5),
        ]
    )
    assert names[shared] == "m@abcdef120000" and names[sha("solo")] == "solo"


def test_lookup_by_name_takes_the_newest_fingerprint_and_says_what_it_passed_over() -> None:
    query = StoreQuery(disputed_records(), label="store")
    found = query.evidence("m", "t")
    assert found is not None and found.record.model.fingerprint == A
    assert found.notes == (
        "2 model fingerprints are named m in store; judged the latest (aaaaaaaaaaaa)",
        "a later run failed (RuntimeError: out of memory); judged the latest ok record",
    )
    by_display_name = query.evidence("m@bbbbbbbb", "t")
    assert by_display_name is not None and by_display_name.record.model.fingerprint == B
    assert by_display_name.notes == ()
    assert query.evidence("m", "v") is None
    assert query.absence("n", "t") == "no record of model 'n' in store; models there: m"
    assert query.absence("m", "w") == "no record of m on task 'w' in store"


def test_intervals_and_primary_metric() -> None:
    item = record("m", "t", 0.5, n=100)
    metric = primary_metric(item)
    assert metric is not None
    low, high = interval(metric) or (0.0, 0.0)  # no stored interval: Wilson's from the value and n
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=5e-5)
    unbounded = record("m", "ppl", 12.0, bounded=False)
    assert interval(primary_metric(unbounded)) is None  # type: ignore[arg-type]


def metric(value: float, n: int, ci95: tuple[float, float] | None, *, bounded: bool = True) -> MetricValue:
    stderr = math.sqrt(value * (1 - value) / n) if bounded else 1.5
    return MetricValue(value=value, stderr=stderr, ci95=ci95, n=n, higher_is_better=True, bounded=bounded)


@pytest.mark.parametrize(
    ("correct", "n", "wald"),
    [(2, 9, (-0.0660, 0.5105)), (9, 9, (1.0, 1.0)), (3, 20, (-0.0065, 0.3065)), (0, 30, (0.0, 0.0))],
)
def test_a_stored_interval_that_cannot_be_true_is_replaced_by_wilsons(
    correct: int, n: int, wald: tuple[float, float]
) -> None:
    # the Wald intervals older records store for a proportion: outside [0, 1], or a point at 0 or 1
    low, high = interval(metric(correct / n, n, wald)) or (math.nan, math.nan)
    assert 0.0 <= low <= correct / n <= high <= 1.0 and low < high
    if correct == n:
        assert high == 1.0 and low < 1.0


def test_a_stored_interval_that_can_be_true_is_shown_as_stored() -> None:
    assert interval(metric(0.5, 100, (0.41, 0.59))) == (0.41, 0.59)
    assert interval(metric(0.5, 3, (0.5, 0.5))) == (0.5, 0.5)  # a bootstrap of constant scores
    assert interval(metric(40.0, 9, (-3.0, 80.0), bounded=False)) == (-3.0, 80.0)
    assert interval(metric(40.0, 9, None, bounded=False)) == pytest.approx(
        (40 - 1.96 * 1.5, 40 + 1.96 * 1.5), 1e-3
    )
    overflowed = MetricValue(
        value=8e307, stderr=None, ci95=(1e306, math.inf), n=2, higher_is_better=False, bounded=False
    )
    assert interval(overflowed) == (1e306, math.inf)


# -- efficiency figures: one policy on typed records ------------------------------------------------


def test_efficiency_figures_are_finite_positive_floats_or_none() -> None:
    typed = record(
        "m", "t", 0.5, efficiency=EfficiencyFigures(peak_memory_bytes=2**20, decode_tokens_per_s=0)
    )
    assert efficiency_figure(typed, "peak_memory_bytes") == float(2**20)
    assert efficiency_figure(typed, "decode_tokens_per_s") is None
    assert efficiency_problem(typed, "decode_tokens_per_s") == (
        f"record {typed.record_id}: efficiency.decode_tokens_per_s is not a positive number: 0.0"
    )
    assert (
        efficiency_figure(typed, "load_time_s") is None and efficiency_problem(typed, "load_time_s") is None
    )
    with pytest.raises(UnknownNameError, match=r"did you mean 'peak_memory_bytes'"):
        efficiency_figure(typed, "peak_memory_byte")


def test_decode_curves_read_typed_figures_sorted_by_context() -> None:
    typed = record("m", "t", 0.5, efficiency=decode_curve(8, 0.0))
    curve = read_decode_curve(typed)
    assert [point.context_length for point in curve] == [512, 2048, 8192, 32768]
    assert all(point.time_per_output_token_s == pytest.approx(0.008) for point in curve)
    assert read_decode_curve(record("m", "t", 0.5)) == []


def test_variants_pair_with_their_full_precision_reference() -> None:
    reference = record("ref", "t", 0.6)
    int8 = record("ref-int8", "t", 0.58, quantization="int8 weight-only")
    bf16 = record("ref-bf16", "t", 0.59, dtype="bfloat16")
    other = record("big", "t", 0.7, parameters=1_000_000_000, quantization="int8 weight-only")
    assert variant_groups([reference, int8, bf16, other]) == {
        sha("ref"): sorted([sha("ref-int8"), sha("ref-bf16")])
    }


def test_load_query_keeps_unreadable_lines_as_problems(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    store.append(record("m", "t", 0.5))
    with (tmp_path / "store" / "records.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    query = load_query(tmp_path / "store")
    assert len(query.records) == 1 and len(query.problems) == 1 and query.label == str(tmp_path / "store")
    with pytest.raises(DataError):
        load_query(tmp_path / "missing")


# -- every view picks the same record ----------------------------------------------------------------


def test_leaderboard_plots_site_gate_and_compare_pick_the_same_record(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    for item in disputed_records():
        store.append(item)
    records, _ = store.read()
    expected = {A: 0.70, B: 0.40}  # A: the newer task version, not the later failure; B: its only run

    board = build_leaderboard(records)
    rows = board.frame.set_index("fingerprint")
    assert {fp: rows.loc[fp, "t/acc"] for fp in (A, B)} == pytest.approx(expected)
    assert any("2 different task versions" in note for note in board.notes)
    assert list(board.errors["fingerprint"]) == [A]  # the failure is still the last word on (A, t)

    figure = json.loads(plots.figure_json(plots.accuracy_bars(records, tasks=["t"])))
    (bars,) = figure["data"]
    assert dict(zip(bars["x"], bars["y"], strict=True)) == pytest.approx(
        {"m@aaaaaaaa": 70.0, "m@bbbbbbbb": 40.0}
    )

    write_site(records, store, tmp_path / "site", ranks=False)
    for fingerprint, value in expected.items():
        (page,) = (tmp_path / "site" / "models").glob(f"m-{fingerprint[:8]}*.html")
        text = page.read_text(encoding="utf-8")
        assert f"{value * 100:.1f} %" in text
        assert "60.0 %" not in text  # the older task version never shows

    for name, fingerprint in (("m", A), ("m@aaaaaaaa", A), ("m@bbbbbbbb", B)):
        policy = tmp_path / "gate.yaml"
        policy.write_text(
            f"rules:\n  - {{name: r, kind: min_score, model: '{name}', task: t, at_least: 0}}\n"
        )
        (check,) = evaluate_gate(load_policy(policy), tmp_path / "store").rules[0].checks
        assert check.measured == pytest.approx(expected[fingerprint])
        selection = select_records(store, records, f"m@{fingerprint[:8]}")
        assert primary_metric(selection.records["t"]).value == pytest.approx(expected[fingerprint])  # type: ignore[union-attr]


# -- layering ---------------------------------------------------------------------------------------


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (REPO / "evalkit" / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_the_query_layer_imports_only_records_errors_intervals_and_the_standard_library() -> None:
    evalkit_imports = {name for name in _imports("query") if name.split(".")[0] == "evalkit"}
    outside = {name for name in evalkit_imports if not name.startswith("evalkit.query")}
    assert outside <= {"evalkit.results", "evalkit.errors", "evalkit.intervals"}
    third_party = {name.split(".")[0] for name in _imports("query")} - {"evalkit", "__future__"}
    assert third_party <= set(sys.stdlib_module_names)
    code = "import sys, evalkit.query; print(sorted({'pandas', 'plotly'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["report", "plots", "site", "gate", "query"])
def test_views_import_no_private_module_of_another_package(package: str) -> None:
    for name in _imports(package):
        parts = name.split(".")
        if parts[0] != "evalkit" or len(parts) < 2 or parts[1] == package:
            continue
        assert not any(part.startswith("_") for part in parts[2:]), f"evalkit.{package} imports {name}"
