"""The one rule for which record counts, and the notes that explain what it passed over.

The rule: per (model fingerprint, task name), the latest ``ok`` record by ``finished_at`` (ties:
the later store line). Failed runs never count; they are reported beside the results. Another
task fingerprint of the same task name (another ``--limit``, an edited spec) does not make a
second result: the latest one is shown and a note says that versions differ, so a model never
has two numbers for one task and two views can never pick different ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from evalkit.query._order import in_time_order
from evalkit.results import RunRecord


@dataclass(frozen=True)
class Choice:
    """The record that counts for one (model fingerprint, task name), and the ok records it beat."""

    record: RunRecord
    passed_over: tuple[RunRecord, ...] = ()  # earlier ok records of the same key, oldest first

    @property
    def key(self) -> tuple[str, str]:
        return record_key(self.record)

    @property
    def task_versions(self) -> int:
        """Distinct task fingerprints among the candidates (> 1: other samples or spec)."""
        return len({record.task.fingerprint for record in (*self.passed_over, self.record)})


def record_key(record: RunRecord) -> tuple[str, str]:
    """What a result is keyed on: (model fingerprint, task name)."""
    return (record.model.fingerprint, record.task.name)


def choose_latest(records: Iterable[RunRecord]) -> list[Choice]:
    """The rule of this module over ``records``: one choice per key, in time order of its record."""
    candidates: dict[tuple[str, str], list[RunRecord]] = {}
    for record in in_time_order(records):
        if record.status != "ok":
            continue
        key = record_key(record)
        # Re-inserted so the dict's order follows each key's latest record.
        candidates[key] = [*candidates.pop(key, []), record]
    return [Choice(found[-1], tuple(found[:-1])) for found in candidates.values()]


def duplicate_note(choice: Choice, model_name: str, run_id: str | None = None) -> str | None:
    """What a reader should know about the records a choice passed over, or None.

    Other task versions are always worth a note. Reruns of the same version are only noted
    within one run (``run_id``): across runs, a newer result replacing an older one is the rule.
    """
    record = choice.record
    shown = f"showing the latest (finished {record.finished_at}, {record.task.num_samples} samples)"
    if choice.task_versions > 1:
        return (
            f"{model_name}: {record.task.name} was evaluated on {choice.task_versions} different task "
            f"versions (other samples or spec, e.g. another --limit); {shown}"
        )
    if run_id is not None and choice.passed_over:
        times = len(choice.passed_over) + 1
        return f"{model_name} (run {run_id}): {record.task.name} was evaluated {times} times; {shown}"
    return None
