"""Plots over fabricated records: the traces carry the stored numbers, escaped names, and no randomness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from site_records import EVIL_MODEL, NEEDLE, SCRIPT_PAYLOAD, demo_records, demo_store, record, sha

from evalkit import plots
from evalkit.cli import plot as plot_cli
from evalkit.errors import EvalkitError
from evalkit.query import variant_groups
from evalkit.report import build_leaderboard, variant_deltas
from evalkit.results import ResultsStore

REPO = Path(__file__).resolve().parents[1]


def figure_dict(figure: object) -> dict:  # type: ignore[type-arg]
    return json.loads(plots.figure_json(figure))  # type: ignore[arg-type]


def test_accuracy_bars_group_models_per_task_with_asymmetric_intervals() -> None:
    records = demo_records()
    data = figure_dict(plots.accuracy_bars(records, tasks=["arc_easy", "piqa"]))
    bars = {trace["name"]: trace for trace in data["data"] if trace["type"] == "bar"}
    # Models are ordered by their mean over the shown tasks, best first.
    assert list(bars)[:3] == ["ref-360m", "ref-360m-int8", "mamba-130m"]
    reference = bars["ref-360m"]
    assert reference["x"] == ["arc_easy", "piqa"]
    assert reference["y"] == pytest.approx([62.0, 70.0])
    # Wilson's interval of 62 of 100: 52.2-70.9 %
    assert reference["error_y"]["array"][0] == pytest.approx(8.902400747521266)
    assert reference["error_y"]["arrayminus"][0] == pytest.approx(9.790244704488927)
    chance = next(trace for trace in data["data"] if trace["name"] == "chance")
    assert dict(zip(chance["x"], chance["y"], strict=True)) == {"arc_easy": 25.0, "piqa": 50.0}


def test_accuracy_bars_of_one_task_show_models_best_first_with_the_chance_line() -> None:
    data = figure_dict(plots.accuracy_bars(demo_records(), tasks=["piqa"]))
    (bar,) = data["data"]
    assert bar["x"] == ["ref-360m", "ref-360m-int8", "mamba-130m"]  # the evil model's piqa run failed
    assert bar["y"] == pytest.approx([70.0, 69.0, 64.0])
    assert data["layout"]["shapes"][0]["y0"] == pytest.approx(50.0)


def test_names_are_entity_escaped_and_figure_json_cannot_close_a_script_element() -> None:
    figure = plots.accuracy_bars(demo_records(), tasks=["arc_easy"])
    names = figure.data[0].x
    evil = next(name for name in names if name.startswith("evil"))
    assert "<" not in evil and "&lt;script&gt;" in evil  # plotly.js shows entities as text
    text = plots.figure_json(figure)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text)["data"][0]["x"] == list(names)  # escaping is JSON-transparent


def test_memory_plot_draws_the_leaderboards_own_pareto_front() -> None:
    records = demo_records()
    board = build_leaderboard(records)
    data = figure_dict(plots.accuracy_vs_memory(records, board=board))
    front = next(trace for trace in data["data"] if trace["name"] == "Pareto front")
    rows = board.frame.set_index("model")
    flagged = sorted(rows.index[rows["pareto_memory"]])
    assert len(front["x"]) == len(flagged) >= 1
    # Not every model measured peak memory, so all are placed by their size on disk (MiB).
    assert board.memory_axis == "bytes_on_disk"
    assert "disk" in data["layout"]["xaxis"]["title"]["text"]
    assert min(front["x"]) == pytest.approx(min(rows.loc[flagged, "bytes_on_disk"]) / 2**20)


def test_latency_plot_leaves_out_unmeasured_models_and_says_so() -> None:
    data = figure_dict(plots.accuracy_vs_latency(demo_records()))
    points = [
        trace for trace in data["data"] if trace["type"] == "scatter" and trace["name"] != "Pareto front"
    ]
    assert sorted(x for trace in points for x in trace["x"]) == pytest.approx([12.0, 20.0])  # ms per token
    assert "without a latency measurement" in data["layout"]["title"]["subtitle"]["text"]


def test_plots_without_data_carry_a_note_instead_of_a_blank() -> None:
    stored, _ = ResultsStore(REPO / "results").read()
    # The reference run as it would be without its efficiency task: accuracy only.
    records = [r.model_copy(update={"efficiency": None}) for r in stored if r.task.kind != "efficiency"]
    figure = plots.accuracy_vs_latency(records)
    assert not figure.data
    assert "time_per_output_token_s" in (plots.figure_note(figure) or "")
    assert plots.figure_note(plots.efficiency_curves(records)) is not None
    without_variants = [r for r in records if not r.model.name.startswith("llamacpp:")]
    assert plots.figure_note(plots.quantization_deltas(without_variants)) is not None
    # The reference run holds llama.cpp's native Q4 run of the SmolLM2 file: a variant of the
    # transformers run that dequantizes the same file, which serves as its reference.
    assert plots.quantization_deltas(stored).data
    assert plots.figure_note(plots.accuracy_bars(records)) is None
    # With the efficiency records, the same store has a latency axis to plot.
    assert plots.accuracy_vs_latency(stored).data


def test_needle_heatmap_is_the_stored_matrix_with_gaps_for_skipped_cells() -> None:
    data = figure_dict(plots.needle_heatmap(demo_records(), model="mamba-130m"))
    (heatmap,) = data["data"]
    assert heatmap["z"] == [list(row) for row in NEEDLE.scores]
    assert heatmap["x"] == ["1k", "4k", "16k"]
    assert heatmap["y"] == ["0%", "50%", "100%"]
    assert "effective context 4k" in data["layout"]["title"]["text"]


def test_needle_heatmap_refuses_to_guess_between_records() -> None:
    other = record("other", "needle", 0.5, long_context=NEEDLE, chance=None)
    with pytest.raises(EvalkitError, match="2 long-context records match"):
        plots.needle_heatmap([*demo_records(), other])


def test_context_scores_average_depths_and_draw_the_threshold() -> None:
    data = figure_dict(plots.context_scores(demo_records()))
    (line,) = data["data"]
    assert line["x"] == [1024, 4096, 16384]
    assert line["y"] == pytest.approx([(100 + 100 + 95) / 3, (90 + 60 + 80) / 3, None])
    assert data["layout"]["shapes"][0]["y0"] == pytest.approx(85.6)


def test_efficiency_curves_plot_time_and_memory_per_model_with_family_dashes() -> None:
    data = figure_dict(plots.efficiency_curves(demo_records()))
    by_panel = {(trace["legendgroup"], trace.get("yaxis", "y")): trace for trace in data["data"]}
    ssm_time = by_panel[(sha("mamba-130m"), "y")]
    assert ssm_time["line"]["dash"] == "dash" and ssm_time["y"] == pytest.approx([8.0] * 4)
    transformer_memory = by_panel[(sha("ref-360m"), "y2")]
    assert transformer_memory["x"] == [512, 2048, 8192, 32768]
    assert transformer_memory["y"][0] == pytest.approx(300 * (1 + 0.5 * 512 / 4096))
    assert ssm_time["line"]["color"] == by_panel[(sha("mamba-130m"), "y2")]["line"]["color"]


def test_quantized_variant_delta_is_paired_when_both_sample_logs_exist(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "store")
    records, _ = store.read()
    assert variant_groups(records) == {sha("ref-360m"): [sha("ref-360m-int8")]}
    paired = {d.task: d for d in variant_deltas(records, store)}
    arc = paired["arc_easy"]
    assert arc.paired and arc.n == 100 and arc.delta == pytest.approx(-0.04)
    assert arc.low is not None and arc.high is not None and arc.low < -0.04 < arc.high
    unpaired_half = 1.959963984540054 * math.hypot(math.sqrt(0.62 * 0.38 / 100), math.sqrt(0.58 * 0.42 / 100))
    assert arc.high - arc.low < unpaired_half  # same questions: a far tighter interval than unpaired
    piqa = paired["piqa"]  # no sample logs: the two records' intervals combine (Newcombe)
    assert not piqa.paired and piqa.delta == pytest.approx(-0.01)
    expected = 0.12627066811520615
    assert piqa.high - piqa.delta == pytest.approx(expected)
    data = figure_dict(plots.quantization_deltas(records, store))
    (bars,) = data["data"]
    assert bars["x"] == ["arc_easy", "piqa"] and bars["y"] == pytest.approx([-4.0, -1.0])


def test_standalone_html_is_offline_and_byte_identical(tmp_path: Path) -> None:
    records = demo_records()
    first = plots.standalone_html(plots.accuracy_bars(records), "evalkit-accuracy")
    second = plots.standalone_html(plots.accuracy_bars(list(records)), "evalkit-accuracy")
    assert first == second
    assert 'id="evalkit-accuracy"' in first
    assert "<script src=" not in first and "<link" not in first  # plotly.js is inlined, nothing fetched
    assert SCRIPT_PAYLOAD not in first


def test_every_plot_is_a_valid_plotly_figure(tmp_path: Path) -> None:
    """Figures are built without plotly's validation (for speed); validate each kind here instead."""
    import plotly.graph_objects as go

    store = demo_store(tmp_path / "store")
    records, _ = store.read()
    for name in plots.PLOTS:
        model = "mamba-130m" if name == "needle" else None
        figure = plots.make_plot(name, records, store=store, model=model)
        assert figure.data, f"{name}: the demo records should give every plot data"
        go.Figure(figure.to_plotly_json())  # raises ValueError on any invalid property
    go.Figure(plots.accuracy_bars(records, tasks=["piqa"]).to_plotly_json())
    go.Figure(plots.accuracy_vs_latency(records[:1]).to_plotly_json())  # a note figure


def test_cli_plot_names_match_the_registry() -> None:
    assert sorted(plot_cli.PLOT_NAMES) == sorted(plots.PLOTS)


def test_cli_plot_exports_a_named_plot_and_reports_ambiguity(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "store")
    runner = CliRunner()
    out = tmp_path / "needle.html"
    args = ["needle", "--results", str(store.root), "--out", str(out), "--model", "mamba-130m"]
    result = runner.invoke(plot_cli.plot, args)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count('id="evalkit-needle"') == 1
    latency = runner.invoke(plot_cli.plot, ["latency", "--results", str(store.root), "--out", str(out)])
    assert latency.exit_code == 0 and "no data" not in latency.output
    assert EVIL_MODEL not in out.read_text(encoding="utf-8")
