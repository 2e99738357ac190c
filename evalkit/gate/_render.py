"""Every form of a gate's outcome, each rendered from the same :class:`GateReport`.

None of these functions decides anything: statuses, counts and the closing sentence all come
from the report, so no output can disagree with the exit code.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from evalkit.gate._report import Check, GateReport, RuleResult, Status, format_value

_CONSOLE_STATUS: dict[Status, str] = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
_MARKDOWN_STATUS: dict[Status, str] = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}
_MARKDOWN_COMPARISON = {">=": "≥", "<=": "≤"}
# XML 1.0 cannot carry most control characters, even escaped; a detail quoting model output might.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _threshold(check: Check, comparisons: dict[str, str] | None = None) -> str:
    if check.threshold is None or check.comparison is None:
        return ""
    symbol = (comparisons or {}).get(check.comparison, check.comparison)
    unit = "score" if check.unit == "drop" else check.unit
    return f"{symbol} {format_value(check.threshold, unit)}"


def _measured(check: Check) -> str:
    return "" if check.measured is None else format_value(check.measured, check.unit)


def _p(check: Check) -> str:
    return "" if check.p_value is None else f"{check.p_value:.3g}"


def _header(report: GateReport) -> str:
    baseline = f", baseline {report.baseline}" if report.baseline is not None else ""
    return f"policy {report.policy_file}, results {report.results}{baseline}, alpha {report.alpha:g}"


# -- console ---------------------------------------------------------------------------------------


def render_console(report: GateReport) -> str:
    """A plain-text table, one row per check with its detail beneath, and the verdict last."""
    header = ("status", "rule", "check", "measured", "threshold", "p")
    rows: list[tuple[tuple[str, ...], str]] = []
    for rule in report.rules:
        for check in rule.checks:
            cells = (
                _CONSOLE_STATUS[check.status],
                rule.name,
                check.subject,
                _measured(check),
                _threshold(check),
                _p(check),
            )
            rows.append((cells, check.detail))
    widths = [max(len(row[i]) for row in [header, *(cells for cells, _ in rows)]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [f"evalkit gate: {_header(report)}", "", line(header)]
    indent = " " * (widths[0] + 2)
    for row, detail in rows:
        out.append(line(row))
        if detail:
            out.append(f"{indent}{detail}")
    out += ["", report.summary]
    return "\n".join(out) + "\n"


# -- JUnit XML -------------------------------------------------------------------------------------


def render_junit(report: GateReport) -> str:
    """One testsuite, one testcase per rule; failures carry every failed check of the rule."""
    counts = {
        "tests": str(len(report.rules)),
        "failures": str(report.count("fail")),
        "errors": "0",
        "skipped": str(report.count("skip")),
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": "evalkit gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"evalkit gate: {_xml(report.policy_file)}", **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("policy", report.policy_file),
        ("results", report.results),
        ("baseline", report.baseline or ""),
        ("alpha", f"{report.alpha:g}"),
        ("verdict", report.verdict),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for rule in report.rules:
        attributes = {"classname": f"evalkit.gate.{rule.kind}", "name": _xml(rule.name), "time": "0"}
        case = ET.SubElement(suite, "testcase", attributes)
        lines = "\n".join(_check_line(check) for check in rule.checks)
        if rule.status == "fail":
            first = rule.failed_checks[0]
            failure = ET.SubElement(
                case, "failure", {"message": _xml(f"{first.subject}: {first.detail}"), "type": rule.kind}
            )
            failure.text = _xml(lines)
        elif rule.status == "skip":
            ET.SubElement(case, "skipped", {"message": _xml(rule.checks[0].detail)})
        ET.SubElement(case, "system-out").text = _xml(lines)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _check_line(check: Check) -> str:
    p_value = f"p={_p(check)}" if check.p_value is not None else ""
    figures = ", ".join(part for part in (_measured(check), _threshold(check), p_value) if part)
    return f"[{check.status}] {check.subject}" + (f" ({figures})" if figures else "") + f": {check.detail}"


def _xml(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


# -- markdown --------------------------------------------------------------------------------------


def render_markdown(report: GateReport) -> str:
    """A GitHub-flavoured summary: verdict heading, one table row per check, rule descriptions."""
    icon = "✅" if report.verdict == "pass" else "❌"
    out = [
        f"## {icon} evalkit gate: {report.verdict.upper()}",
        "",
        f"**{_cell(report.summary)}**",
        "",
        _cell(_header(report)),
        "",
        "| status | rule | check | measured | threshold | p | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in report.rules:
        for check in rule.checks:
            cells = (
                _MARKDOWN_STATUS[check.status],
                f"`{rule.name}`",
                check.subject,
                _measured(check),
                _threshold(check, _MARKDOWN_COMPARISON),
                _p(check),
                check.detail,
            )
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    described = [rule for rule in report.rules if rule.description]
    if described:
        out += ["", "<details><summary>Rules</summary>", ""]
        out += [f"- `{rule.name}` ({rule.kind}): {_cell(rule.description)}" for rule in described]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """Keep a value inside its table cell and out of HTML: escape &, <, >, | and line breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return text.replace("\r\n", "\n").replace("\n", "<br>")


# -- GitHub annotations ----------------------------------------------------------------------------


def github_annotations(report: GateReport) -> list[str]:
    """Workflow commands: ::error per failed check, ::warning per skipped one, on the policy's rule line."""
    lines = []
    for rule in report.rules:
        for check in rule.checks:
            if check.status == "pass":
                continue
            command = "error" if check.status == "fail" else "warning"
            properties = {"file": report.policy_file, "line": str(rule.line), "title": _title(rule)}
            encoded = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
            lines.append(f"::{command} {encoded}::{_escape_data(f'{check.subject}: {check.detail}')}")
    return lines


def _title(rule: RuleResult) -> str:
    return f"evalkit gate: {rule.name} ({rule.kind})"


def _escape_data(text: str) -> str:
    # GitHub's rules (actions/toolkit, command.ts): % first, so the escapes are not re-escaped.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
