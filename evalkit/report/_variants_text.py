"""The leaderboard's variants section: each quantized variant's accuracy change against its reference.

Built on `variant_deltas` (the quantization plot's data), so the table and the plot always agree;
the interval is the paired one `evalkit compare` reports when per-sample logs are stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evalkit.report._plot_quant import VariantDelta


def render_variant_deltas(deltas: Sequence[VariantDelta], names: Mapping[str, str], markdown: bool) -> str:
    """A table of variant − reference per task, in points for accuracies; '' when there are none."""
    if not deltas:
        return ""
    header = ["variant", "reference", "task", "change", "95% CI", "n", "interval"]
    rows = [header]
    for item in deltas:
        low = "?" if item.low is None else f"{100 * item.low:+.1f}"
        high = "?" if item.high is None else f"{100 * item.high:+.1f}"
        rows.append(
            [
                names.get(item.variant, item.variant[:12]),
                names.get(item.reference, item.reference[:12]),
                item.task,
                f"{100 * item.delta:+.1f}",
                f"[{low}, {high}]",
                str(item.n),
                "paired" if item.paired else "unpaired",
            ]
        )
    title = "Quantized variants against their reference (primary metric, points; paired = same samples)"
    if markdown:
        lines = ["", f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["", title]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"
