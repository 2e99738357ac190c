"""`evalkit gate`: policies, verdicts and outputs, on fabricated stores and the reference one in results/.

Set EVALKIT_UPDATE_GOLDEN=1 to rewrite tests/golden/gate_* after an intended change of the
outputs; review the diff before committing it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fabricate_results import run_main

from evalkit.errors import DataError, SpecError
from evalkit.gate import (
    Check,
    GateReport,
    MinScoreRule,
    RuleResult,
    Status,
    evaluate_gate,
    github_annotations,
    load_policy,
    render_console,
    render_junit,
    render_markdown,
)
from evalkit.results import ResultsStore, RunRecord, SampleLog

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
BASE = json.loads((GOLDEN / "run_record_v2.jsonl").read_text(encoding="utf-8").splitlines()[0])
EARLY, LATE = "2025-01-02T10:00:00+00:00", "2025-01-03T10:00:00+00:00"


# -- fabricated stores ----------------------------------------------------------------------------


def correct(right: int, total: int) -> list[float]:
    return [1.0] * right + [0.0] * (total - right)


def flip(scores: Sequence[float], count: int) -> list[float]:
    """The same samples with the first `count` correct answers turned wrong."""
    out, left = list(scores), count
    for i, value in enumerate(out):
        if left and value == 1.0:
            out[i], left = 0.0, left - 1
    return out


def make_record(
    model: str,
    task: str,
    scores: Sequence[float],
    *,
    metric: str = "acc",
    finished: str = EARLY,
    efficiency: dict[str, Any] | None = None,
    error: str | None = None,
    higher_is_better: bool = True,
    fingerprint: str | None = None,
) -> tuple[RunRecord, list[SampleLog]]:
    """A valid record built on the golden one, with one sample log line per score."""
    mean = sum(scores) / len(scores) if scores else 0.0
    data = json.loads(json.dumps(BASE))
    data["model"].update(name=model, fingerprint=fingerprint or hashlib.sha256(model.encode()).hexdigest())
    data["task"].update(name=task, primary_metric=metric, num_samples=len(scores))
    value = {"value": mean, "stderr": None, "ci95": None, "n": len(scores)}
    data.update(
        record_id=hashlib.sha256(f"{model}|{task}|{finished}|{error}".encode()).hexdigest()[:16],
        finished_at=finished,
        metrics={metric: {**value, "higher_is_better": higher_is_better, "bounded": higher_is_better}},
        efficiency=efficiency,
        status="error" if error else "ok",
        error=error,
        samples_file=None,
    )
    samples = [
        SampleLog(sample_id=f"s{i:03d}", prompt="Q?", target="A", response=None, scores={metric: score})
        for i, score in enumerate(scores)
    ]
    return RunRecord.model_validate(data), samples


def write_store(root: Path, *entries: tuple[RunRecord, list[SampleLog]]) -> Path:
    store = ResultsStore(root)
    root.mkdir(parents=True, exist_ok=True)
    for record, samples in entries:
        store.append(record, samples)
    return root


def write_policy(folder: Path, text: str, name: str = "gate.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


GOLDEN_POLICY = """\
alpha: 0.05
rules:
  - name: arc-floor
    kind: min_score
    model: smollm2-135m
    task: arc_easy
    at_least: 0.55
    description: "ARC-Easy must stay above the <baseline> floor & | pipes survive"
  - {name: no-regression, kind: no_regression, model: smollm2-135m, tasks: [arc_easy, hellaswag],
     max_drop: 0.02}
  - {name: decode-speed, kind: min_throughput_ratio, model: smollm2-135m, metric: decode_tokens_per_s,
     at_least: 0.9}
  - {name: memory, kind: max_memory, model: smollm2-135m, at_most_bytes: 2000000000}
  - {name: gemma-floor, kind: min_score, model: gemma3-270m, task: arc_easy, at_least: 0.4, missing: skip}
"""


def golden_scenario(folder: Path) -> None:
    """baseline/ and results/ in `folder`: one tiny drop, one real regression, slower decoding."""
    speed = {"decode_tokens_per_s": 100.0, "peak_memory_bytes": 1_500_000_000}
    arc, hella = correct(60, 100), correct(50, 100)
    write_store(
        folder / "baseline",
        make_record("smollm2-135m", "arc_easy", arc, efficiency=speed),
        make_record("smollm2-135m", "hellaswag", hella, metric="acc_norm"),
    )
    slower = {**speed, "decode_tokens_per_s": 80.0}
    write_store(
        folder / "results",
        make_record("smollm2-135m", "arc_easy", flip(arc, 1), finished=LATE, efficiency=slower),
        make_record("smollm2-135m", "hellaswag", flip(hella, 15), metric="acc_norm", finished=LATE),
    )
    write_policy(folder, GOLDEN_POLICY)


def run_gate(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`evalkit gate ARGS` through the real entry point (EvalkitError → `error: ...`, exit 2)."""
    return run_main(["gate", *args], capsys)


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The golden scenario, with the working folder moved there so outputs show relative paths."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    golden_scenario(tmp_path)
    return tmp_path


# -- the reference store --------------------------------------------------------------------------


def test_demo_policy_passes_on_the_reference_store(capsys: pytest.CaptureFixture[str]) -> None:
    policy = GOLDEN / "gate_policy_demo.yaml"
    stores = ["--baseline", str(REPO / "results"), "--results", str(REPO / "results")]
    code, out, err = run_gate(["--policy", str(policy), *stores], capsys)
    assert code == 0, out + err
    assert out.rstrip().splitlines()[-1] == "PASS: 7 of 7 rules passed"


def test_documented_example_policy_covers_every_kind_and_passes_on_the_reference_store() -> None:
    loaded = load_policy(REPO / "examples" / "gate.yaml")
    kinds = {"min_score", "max_score", "no_regression", "min_throughput_ratio", "max_memory"}
    assert {rule.kind for rule in loaded.policy.rules} == kinds
    report = evaluate_gate(loaded, REPO / "results", REPO / "results")
    assert (report.exit_code, report.count("fail"), report.count("skip")) == (0, 0, 0)


def test_planted_regression_in_a_copy_of_the_reference_store_fails(tmp_path: Path) -> None:
    pr = tmp_path / "results-pr"
    shutil.copytree(REPO / "results", pr)
    store = ResultsStore(pr)
    records, _ = store.read()
    old = next(r for r in records if r.model.name == "smollm2-135m" and r.task.name == "hellaswag")
    samples = store.read_samples(old)
    flipped = 0
    degraded = []
    for sample in samples:  # turn 12 correct acc_norm answers wrong: a real regression
        if flipped < 12 and sample.scores["acc_norm"] == 1.0:
            sample = sample.model_copy(update={"scores": {**sample.scores, "acc_norm": 0.0}})
            flipped += 1
        degraded.append(sample)
    mean = sum(s.scores["acc_norm"] for s in degraded) / len(degraded)
    metrics = {**old.metrics, "acc_norm": old.metrics["acc_norm"].model_copy(update={"value": mean})}
    newer = old.model_copy(
        update={"record_id": "planted", "finished_at": "2030-01-01T00:00:00+00:00", "metrics": metrics}
    )
    store.append(newer, degraded)
    args = ["gate", "--policy", str(GOLDEN / "gate_policy_demo.yaml")]
    args += ["--baseline", str(REPO / "results"), "--results", str(pr)]
    # A subprocess, so the exit code is exactly what a CI job sees.
    completed = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    last = completed.stdout.rstrip().splitlines()[-1]
    assert last == "FAIL: 1 of 7 rules failed (smollm2-no-regression)"
    assert "significant regression" in completed.stdout
    assert "acc_norm 0.45 -> 0.25 on 60 shared samples" in completed.stdout


# -- malformed input: exit 2, file:line -----------------------------------------------------------

RULE = "rules:\n  - name: floor\n    kind: min_score\n    model: m\n    task: t\n    at_least: 0.5\n"
MAX = "rules:\n  - {name: ceiling, kind: max_score, model: m, task: t, at_most: 0.9}\n"
MEMORY = "rules:\n  - {name: memory, kind: max_memory, model: m, at_most_bytes: 1000}\n"
DROP = "rules:\n  - {name: drop, kind: no_regression, model: m, tasks: [t], max_drop: 0.02}\n"


def test_whole_numbers_are_accepted_where_a_float_is_meant(tmp_path: Path) -> None:
    rule = load_policy(write_policy(tmp_path, RULE.replace("0.5", "0"))).policy.rules[0]
    assert isinstance(rule, MinScoreRule) and rule.at_least == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            RULE.replace("at_least", "at_lest"),
            "gate.yaml:6: unknown key 'rules.0.at_lest'; did you mean 'at_least'?",
        ),
        (
            RULE.replace("kind: min_score", "kind: min_scor"),
            "gate.yaml:3: rules.0.kind: unknown kind 'min_scor'; did you mean 'min_score'",
        ),
        (RULE.replace("0.5", "high"), "gate.yaml:6: rules.0.at_least: Input should be a valid number"),
        (RULE.replace("    kind: min_score\n", ""), "gate.yaml:2: rules.0.kind: missing required key 'kind'"),
        ("alpha: 2\n" + RULE, "gate.yaml:1: alpha: Input should be less than 1"),
        ("alfa: 0.1\n" + RULE, "gate.yaml:1: unknown key 'alfa'; did you mean 'alpha'?"),
        (RULE + RULE[7:], "gate.yaml:7: rule name 'floor' is already used at line 2"),
        (RULE.replace("task: t", "task: !!python/object/apply:os.system [echo hi]"), "gate.yaml:5:"),
        ("- 1\n", "gate.yaml:1: expected a mapping at the top level"),
        ("rules: []\n", "gate.yaml:1: rules: List should have at least 1 item"),
        # issue 10 case 4: a tag on a list or mapping was ignored, and the policy ran
        (
            "rules: !!python/object/apply:os.system\n" + RULE[7:],
            "gate.yaml:1: YAML tag '!!python/object/apply",
        ),
        (
            RULE.replace("  - name", "  - !!python/name:os.system\n    name"),
            "gate.yaml:2: YAML tag '!!python/name",
        ),
        # issue 10 case 5: NaN failed the rule (exit 1: bad input read as a regression), inf passed it,
        # strings and booleans were coerced
        (RULE.replace("0.5", ".nan"), "gate.yaml:6: rules.0.at_least: Input should be a finite number"),
        (MAX.replace("0.9", ".inf"), "gate.yaml:2: rules.0.at_most: Input should be a finite number"),
        (MAX.replace("0.9", "-.inf"), "gate.yaml:2: rules.0.at_most: Input should be a finite number"),
        (RULE.replace("0.5", '"0.5"'), "gate.yaml:6: rules.0.at_least: Input should be a valid number"),
        (RULE.replace("0.5", "true"), "gate.yaml:6: rules.0.at_least: Input should be a valid number"),
        ("alpha: .nan\n" + RULE, "gate.yaml:1: alpha: Input should be a finite number"),
        (
            MEMORY.replace("1000", "1.5e9"),
            "gate.yaml:2: rules.0.at_most_bytes: Input should be a valid integer",
        ),
        (
            MEMORY.replace("1000", "'1000'"),
            "gate.yaml:2: rules.0.at_most_bytes: Input should be a valid integer",
        ),
        (DROP.replace("0.02", ".nan"), "gate.yaml:2: rules.0.max_drop: Input should be a finite number"),
    ],
)
def test_malformed_policy_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    policy = write_policy(tmp_path, text)
    write_store(tmp_path / "results")
    code, out, err = run_gate(["--policy", str(policy), "--results", str(tmp_path / "results")], capsys)
    assert code == 2
    assert message in err
    assert err.startswith("error: ") and out == ""


def test_unknown_kind_lists_the_kinds_when_nothing_is_close(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"unknown kind 'vibes'; expected one of min_score, max_score"):
        load_policy(write_policy(tmp_path, RULE.replace("kind: min_score", "kind: vibes")))


def test_missing_files_baseline_and_corrupt_stores_are_bad_input(
    scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--policy", "gate.yaml", "--baseline", "baseline"]
    code, _, err = run_gate(["--policy", "nope.yaml", "--results", "results"], capsys)
    assert (code, err.strip()) == (2, "error: nope.yaml: file not found")
    code, _, err = run_gate([*common, "--results", "missing"], capsys)
    assert (code, err.strip()) == (2, "error: missing: results folder not found")
    code, _, err = run_gate(["--policy", "gate.yaml", "--results", "results"], capsys)
    assert code == 2
    assert "gate.yaml:9: rule 'no-regression' (no_regression) compares against a baseline" in err
    with (scenario / "results" / "records.jsonl").open("a") as handle:
        handle.write("{not json\n")
    code, _, err = run_gate([*common, "--results", "results"], capsys)
    assert code == 2 and "1 unreadable record line(s): results/records.jsonl:3: corrupt line skipped" in err


def test_a_corrupt_sample_log_is_bad_input(scenario: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = sorted((scenario / "results" / "samples").iterdir())[0]
    log.write_text("{broken\n")
    args = ["--policy", "gate.yaml", "--baseline", "baseline", "--results", "results"]
    code, _, err = run_gate(args, capsys)
    assert code == 2 and "rule 'no-regression' (gate.yaml:9)" in err and "corrupt line" in err


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{name: r, kind: min_score, model: smollm2-135m, task: arc_easy, metric: acc_nrm, at_least: 0}",
         "gate.yaml:2: task arc_easy has no metric 'acc_nrm'; did you mean 'acc'?"),
        ("{name: r, kind: max_score, model: smollm2-135m, task: arc_easy, at_most: 0.9}",
         "gate.yaml:2: acc of arc_easy is higher-is-better; use kind: min_score"),
    ],
)  # fmt: skip
def test_rules_that_do_not_fit_the_records_are_bad_input(
    scenario: Path, capsys: pytest.CaptureFixture[str], rule: str, message: str
) -> None:
    write_policy(scenario, f"rules:\n  - {rule}\n")
    code, _, err = run_gate(["--policy", "gate.yaml", "--results", "results"], capsys)
    assert code == 2 and message in err


# -- missing evidence -----------------------------------------------------------------------------


def test_missing_evidence_fails_by_default_and_skips_when_asked(scenario: Path) -> None:
    policy = write_policy(
        scenario,
        "rules:\n"
        "  - {name: typo, kind: min_score, model: smollm2-135n, task: arc_easy, at_least: 0}\n"
        "  - {name: no-task, kind: min_score, model: smollm2-135m, task: arc_esay, at_least: 0}\n"
        "  - {name: later, kind: min_score, model: gemma3-270m, task: arc_easy, at_least: 0,\n"
        "     missing: skip}\n",
    )
    report = evaluate_gate(load_policy(policy), Path("results"))
    assert [rule.status for rule in report.rules] == ["fail", "fail", "skip"]
    assert report.exit_code == 1
    details = [rule.checks[0].detail for rule in report.rules]
    assert "no record of model 'smollm2-135n' in results; did you mean 'smollm2-135m'?" in details[0]
    assert "no record of smollm2-135m on task 'arc_esay' in results; did you mean 'arc_easy'?" in details[1]
    assert details[2].startswith("skipped (missing: skip): no record of model 'gemma3-270m'")


def test_only_failed_runs_are_missing_evidence_and_later_failures_are_noted(tmp_path: Path) -> None:
    good, _ = make_record("m", "t", correct(8, 10))
    write_store(
        tmp_path / "results",
        (good, []),
        make_record("m", "t", correct(1, 10), finished=LATE, error="RuntimeError: out of memory"),
        make_record("m", "u", correct(1, 10), error="ValueError: bad data"),
    )
    policy = write_policy(
        tmp_path,
        "rules:\n  - {name: t, kind: min_score, model: m, task: t, at_least: 0.5}\n"
        "  - {name: u, kind: min_score, model: m, task: u, at_least: 0.5}\n",
    )
    t, u = evaluate_gate(load_policy(policy), tmp_path / "results").rules
    assert t.status == "pass" and "a later run failed (RuntimeError: out of memory)" in t.checks[0].detail
    assert u.status == "fail" and "has only failed runs in" in u.checks[0].detail
    assert "(latest: ValueError: bad data)" in u.checks[0].detail


def test_renamed_weights_and_partial_overlap_are_noted(tmp_path: Path) -> None:
    scores = correct(60, 100)
    write_store(tmp_path / "a", make_record("m", "t", scores))
    write_store(
        tmp_path / "b",
        make_record("m", "t", correct(10, 10), fingerprint="f" * 64),
        make_record("m", "t", scores[:60], finished=LATE, fingerprint="e" * 64),
    )
    rule = "{name: r, kind: no_regression, model: m, tasks: [t], max_drop: 0.5}"
    policy = load_policy(write_policy(tmp_path, f"rules:\n  - {rule}\n"))
    check = evaluate_gate(policy, tmp_path / "b", tmp_path / "a").rules[0].checks[0]
    assert "only 60 of 100 samples are in both runs" in check.detail
    assert (
        "2 model fingerprints are named m in " in check.detail
        and "judged the latest (eeeeeeeeeeee)" in check.detail
    )


def test_efficiency_rules_need_the_figure_on_both_sides_and_refuse_garbage(tmp_path: Path) -> None:
    write_store(tmp_path / "a", make_record("m", "t", correct(1, 2)))
    write_store(
        tmp_path / "b",
        make_record("m", "t", correct(1, 2), finished=LATE, efficiency={"decode_tokens_per_s": 50.0}),
        make_record("m", "u", correct(1, 2), efficiency={"peak_memory_bytes": 0}),
    )
    speed = "{name: speed, kind: min_throughput_ratio, model: m, metric: decode_tokens_per_s, at_least: 1}"
    policy = load_policy(write_policy(tmp_path, f"rules:\n  - {speed}\n"))
    [check] = evaluate_gate(policy, tmp_path / "b", tmp_path / "a").rules[0].checks
    assert (check.subject, check.status) == ("m / t / decode_tokens_per_s", "fail")
    assert check.detail.endswith("has no efficiency.decode_tokens_per_s")
    # A stored figure that is no positive number is no evidence, and the check says what was stored.
    memory = "{name: memory, kind: max_memory, model: m, task: u, at_most_bytes: 1}"
    policy = load_policy(write_policy(tmp_path, f"rules:\n  - {memory}\n"))
    [check] = evaluate_gate(policy, tmp_path / "b").rules[0].checks
    assert (
        check.status == "fail" and "efficiency.peak_memory_bytes is not a positive number: 0" in check.detail
    )
    # Garbage cannot be stored as a typed figure: the reader refuses the line, and the gate refuses the store.
    line = json.loads(make_record("m", "v", correct(1, 2))[0].model_dump_json())
    line["efficiency"] = {"peak_memory_bytes": "lots"}
    with (tmp_path / "b" / "records.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=r"1 unreadable record line\(s\).*peak_memory_bytes"):
        evaluate_gate(policy, tmp_path / "b")


# -- significance versus drop size ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("flipped", "max_drop", "status", "phrases"),
    [
        (1, 0.02, "pass", ["drop 0.01 within", "not significant"]),  # 1 of 100: noise
        (1, 0.0, "fail", ["drop 0.01 exceeds", "not significant"]),  # too large, yet not significant
        (15, 1.0, "fail", ["drop 0.15 within", "significant regression"]),  # significant, whatever the size
    ],
)
def test_no_regression_needs_both_a_small_drop_and_no_significant_one(
    tmp_path: Path, flipped: int, max_drop: float, status: str, phrases: list[str]
) -> None:
    scores = correct(60, 100)
    write_store(tmp_path / "a", make_record("m", "t", scores))
    write_store(tmp_path / "b", make_record("m", "t", flip(scores, flipped), finished=LATE))
    rule = f"{{name: r, kind: no_regression, model: m, tasks: [t], max_drop: {max_drop}}}"
    policy = load_policy(write_policy(tmp_path, f"rules:\n  - {rule}\n"))
    check = evaluate_gate(policy, tmp_path / "b", tmp_path / "a").rules[0].checks[0]
    assert check.status == status
    assert all(phrase in check.detail for phrase in phrases), check.detail
    assert check.p_value is not None and (check.p_value < 0.05) == ("significant regression" in phrases)


@pytest.mark.parametrize(("shift", "status"), [(0.5, "fail"), (-0.5, "pass")])
def test_lower_is_better_metrics_regress_upwards(tmp_path: Path, shift: float, status: str) -> None:
    losses = [1.0 + (i % 7) / 10 for i in range(50)]
    later = [x + shift for x in losses]
    write_store(tmp_path / "a", make_record("m", "t", losses, metric="nll", higher_is_better=False))
    write_store(
        tmp_path / "b", make_record("m", "t", later, metric="nll", higher_is_better=False, finished=LATE)
    )
    rule = "{name: r, kind: no_regression, model: m, tasks: [t], max_drop: 1}"
    policy = write_policy(tmp_path, f"rules:\n  - {rule}\n")
    check = evaluate_gate(load_policy(policy), tmp_path / "b", tmp_path / "a").rules[0].checks[0]
    assert check.status == status and "paired_bootstrap" in check.detail
    assert check.measured == pytest.approx(shift)


# -- outputs --------------------------------------------------------------------------------------


def test_golden_outputs(scenario: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--policy", "gate.yaml", "--baseline", "baseline", "--results", "results"]
    code, out, _ = run_gate([*args, "--junit", "out/gate.xml", "--markdown", "out/gate.md"], capsys)
    assert code == 1
    produced = {
        "gate_junit.xml": (scenario / "out" / "gate.xml").read_text(encoding="utf-8"),
        "gate_summary.md": (scenario / "out" / "gate.md").read_text(encoding="utf-8"),
        "gate_console.txt": out,
    }
    for name, text in produced.items():
        if os.environ.get("EVALKIT_UPDATE_GOLDEN"):
            (GOLDEN / name).write_text(text, encoding="utf-8")
        assert text == (GOLDEN / name).read_text(encoding="utf-8"), name


def statuses_report(statuses: Sequence[Status]) -> GateReport:
    rules = tuple(
        RuleResult(f"rule-{i}", "min_score", "", i + 2, (Check(f"m / t{i}", status, f"{status} detail"),))
        for i, status in enumerate(statuses)
    )
    return GateReport("gate.yaml", "results", None, 0.05, rules)


@pytest.mark.parametrize("statuses", list(itertools.product(["pass", "fail", "skip"], repeat=3)))
def test_every_output_agrees_with_the_exit_code(statuses: tuple[Status, ...]) -> None:
    report = statuses_report(statuses)
    failed = "fail" in statuses
    assert report.exit_code == (1 if failed else 0)
    assert render_console(report).rstrip().splitlines()[-1].startswith("FAIL" if failed else "PASS")
    suite = ET.fromstring(render_junit(report)).find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "-1")) == statuses.count("fail") == len(suite.findall("*/failure"))
    assert int(suite.get("skipped", "-1")) == statuses.count("skip") == len(suite.findall("*/skipped"))
    heading = "## ❌ evalkit gate: FAIL" if failed else "## ✅ evalkit gate: PASS"
    assert render_markdown(report).startswith(heading)
    errors = [line for line in github_annotations(report) if line.startswith("::error ")]
    assert len(errors) == statuses.count("fail")


@pytest.mark.parametrize("plant_regression", [False, True])
def test_cli_outputs_agree_with_its_exit_code_under_github_actions(
    scenario: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    plant_regression: bool,
) -> None:
    if not plant_regression:  # judge the baseline against itself: everything but throughput passes
        write_policy(scenario, GOLDEN_POLICY.replace("at_least: 0.9}", "at_least: 0.9, missing: skip}"))
        shutil.rmtree(scenario / "results")
        shutil.copytree(scenario / "baseline", scenario / "results")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(scenario / "summary.md"))
    (scenario / "summary.md").write_text("earlier step\n")
    args = ["--policy", "gate.yaml", "--baseline", "baseline", "--results", "results", "--junit", "g.xml"]
    code, out, _ = run_gate([*args, "--markdown", "g.md"], capsys)
    assert code == (1 if plant_regression else 0)
    errors = [line for line in out.splitlines() if line.startswith("::error file=gate.yaml,line=")]
    assert bool(errors) == plant_regression
    assert int(ET.parse(scenario / "g.xml").getroot().get("failures", "-1")) == (2 if plant_regression else 0)
    markdown = (scenario / "g.md").read_text()
    assert (scenario / "summary.md").read_text() == "earlier step\n\n" + markdown
    assert ("FAIL" in markdown.splitlines()[0]) == plant_regression


def test_outputs_escape_what_they_carry() -> None:
    nasty = 'model<&>"x", 100%: done\r\nnext\x01line'
    report = GateReport(
        "gate.yaml",
        "results",
        None,
        0.05,
        (RuleResult("r", "min_score", "a | b", 2, (Check(nasty, "fail", nasty),)),),
    )
    case = ET.fromstring(render_junit(report)).find("testsuite/testcase")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None  # escaped on the way in, identical on the way out, less what XML cannot hold
    kept = 'model<&>"x", 100%: done\r\nnext\ufffdline'
    assert failure.get("message") == f"{kept}: {kept}"
    [annotation] = github_annotations(report)
    assert annotation == (
        "::error file=gate.yaml,line=2,title=evalkit gate%3A r (min_score)::"
        'model<&>"x", 100%25: done%0D%0Anext\x01line: model<&>"x", 100%25: done%0D%0Anext\x01line'
    )
    row = render_markdown(report).splitlines()[8]
    assert "model&lt;&amp;&gt;" in row and "done<br>next" in row and "\r" not in row
    assert "a \\| b" in render_markdown(report)


def test_help_lists_gate_without_importing_it() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom evalkit.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\nassert 'gate' in r.output, r.output\n"
        "print('evalkit.gate' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
