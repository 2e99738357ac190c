"""Which record a gate rule judges: the latest ok record of a model on a task, found by name.

A rule names a model as users type it (``record.model.name``); the store keys runs on the
model fingerprint. The latest ok record per (fingerprint, task) is the evidence, and when
several fingerprints share a name the newest wins and the check says so. When there is no
evidence the reason says what the store does hold, so a typo is told apart from a missing run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import DataError, did_you_mean
from evalkit.report._selection import in_time_order
from evalkit.results import ResultsStore, RunRecord

_MAX_PROBLEMS_SHOWN = 3


@dataclass(frozen=True)
class Evidence:
    record: RunRecord
    notes: tuple[str, ...]  # caveats a reader of the verdict should see


class StoreView:
    """A results store read once, its records in time order (ties keep store order)."""

    def __init__(self, root: Path) -> None:
        self.label = str(root)
        self.store = ResultsStore(root)
        records, problems = self.store.read()  # DataError when the folder is missing
        if problems:
            # A store the gate cannot fully read could hide the very run that fails: bad input.
            shown = "; ".join(str(problem) for problem in problems[:_MAX_PROBLEMS_SHOWN])
            more = len(problems) - _MAX_PROBLEMS_SHOWN
            raise DataError(
                f"{root}: {len(problems)} unreadable record line(s): {shown}"
                + (f" (and {more} more)" if more > 0 else "")
            )
        self.records = tuple(in_time_order(records))

    def latest_ok(self, model: str, task: str) -> Evidence | None:
        matching = [r for r in self.records if r.model.name == model and r.task.name == task]
        ok = [r for r in matching if r.status == "ok"]
        if not ok:
            return None
        chosen_at = max(i for i, r in enumerate(matching) if r.status == "ok")
        chosen = matching[chosen_at]
        notes = []
        fingerprints = {r.model.fingerprint for r in ok}
        if len(fingerprints) > 1:
            notes.append(
                f"{len(fingerprints)} model fingerprints are named {model} in {self.label}; "
                f"judged the latest ({chosen.model.fingerprint[:12]})"
            )
        later_errors = [r for r in matching[chosen_at + 1 :] if r.status == "error"]
        if later_errors:
            message = (later_errors[-1].error or "no message").splitlines()[0]
            notes.append(f"a later run failed ({message}); judged the latest ok record")
        return Evidence(chosen, tuple(notes))

    def tasks_with_figure(self, model: str, figure: str) -> list[str]:
        """Tasks whose latest ok record of `model` carries `efficiency[figure]`, sorted."""
        tasks = sorted({r.task.name for r in self.records if r.model.name == model})
        found = []
        for task in tasks:
            evidence = self.latest_ok(model, task)
            if evidence is not None and efficiency_figure(evidence.record, figure) is not None:
                found.append(task)
        return found

    def absence(self, model: str, task: str | None = None) -> str:
        """Why there is no evidence, phrased to tell a typo from a run that never happened."""
        models = sorted({r.model.name for r in self.records})
        if model not in models:
            hint = did_you_mean(model, models)
            known = f"did you mean {hint}?" if hint else f"models there: {', '.join(models) or '(none)'}"
            return f"no record of model {model!r} in {self.label}; {known}"
        if task is None:
            return f"no ok record of {model} in {self.label}"
        runs = [r for r in self.records if r.model.name == model and r.task.name == task]
        if runs:  # only failed runs, or latest_ok would have found one
            message = (runs[-1].error or "no message").splitlines()[0]
            return f"{model} on {task} has only failed runs in {self.label} (latest: {message})"
        tasks = sorted({r.task.name for r in self.records if r.model.name == model})
        hint = did_you_mean(task, tasks)
        return f"no record of {model} on task {task!r} in {self.label}" + (
            f"; did you mean {hint}?" if hint else ""
        )


def efficiency_figure(record: RunRecord, key: str) -> float | None:
    """A positive efficiency figure of a record, None when not measured; anything else is corrupt."""
    if record.efficiency is None or key not in record.efficiency:
        return None
    value = record.efficiency[key]
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise DataError(f"record {record.record_id}: efficiency.{key} is not a positive number: {value!r}")
    return float(value)
