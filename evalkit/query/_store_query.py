"""A store read once and indexed under the one rule of :mod:`evalkit.query._choice`.

Every view (leaderboard, plots, site, gate, compare) asks this object which record counts, so
they answer alike. Lookups by model name are for what users type (a gate policy, ``compare``):
a name matches every fingerprint whose model has that name, and a display name (``name@1a2b3c4d``)
matches its one fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import did_you_mean
from evalkit.query._choice import Choice, choose_latest, record_key
from evalkit.query._order import display_names, in_time_order
from evalkit.query._values import efficiency_figure
from evalkit.results import ReadProblem, ResultsStore, RunRecord


@dataclass(frozen=True)
class Evidence:
    """The record a lookup by name found, and the caveats a reader of a verdict on it should see."""

    record: RunRecord
    notes: tuple[str, ...] = ()


class StoreQuery:
    """Records in time order (ties keep store order), their display names and their chosen results."""

    def __init__(
        self,
        records: Iterable[RunRecord],
        *,
        label: str = "the records",
        store: ResultsStore | None = None,
        problems: Sequence[ReadProblem] = (),
    ) -> None:
        self.records: tuple[RunRecord, ...] = tuple(in_time_order(records))
        self.label = label  # how messages name where the records came from
        self.store = store
        self.problems = tuple(problems)  # lines of the store that could not be read
        self.names: dict[str, str] = display_names(self.records)
        self._position = {id(record): index for index, record in enumerate(self.records)}
        self._choices = {choice.key: choice for choice in choose_latest(self.records)}
        # Indexed once, so a view that asks per model or per task stays linear in the records.
        self._by_model: dict[str, list[RunRecord]] = {}
        self._by_task: dict[str, list[RunRecord]] = {}
        for (fingerprint, task), choice in self._choices.items():
            self._by_model.setdefault(fingerprint, []).append(choice.record)
            self._by_task.setdefault(task, []).append(choice.record)
        for found in self._by_model.values():
            found.sort(key=lambda record: record.task.name)
        for found in self._by_task.values():
            found.sort(key=self._model_order)

    # -- the rule ---------------------------------------------------------------------------------

    def choices(self) -> list[Choice]:
        """Every (model fingerprint, task name) result, in time order of the chosen record."""
        return list(self._choices.values())

    def choice(self, fingerprint: str, task: str) -> Choice | None:
        return self._choices.get((fingerprint, task))

    def latest_ok(self) -> dict[tuple[str, str], RunRecord]:
        """(model fingerprint, task name) -> the record that counts, in time order."""
        return {key: choice.record for key, choice in self._choices.items()}

    def latest_of_model(self, fingerprint: str) -> list[RunRecord]:
        """The model's results, by task name."""
        return list(self._by_model.get(fingerprint, ()))

    def latest_of_task(self, task: str) -> list[RunRecord]:
        """Each model's result on the task, by display name."""
        return list(self._by_task.get(task, ()))

    def current_failures(self) -> list[RunRecord]:
        """Error records that are still the last word on their (model, task), oldest first."""
        last: dict[tuple[str, str], RunRecord] = {}
        for record in self.records:
            last.pop(record_key(record), None)
            last[record_key(record)] = record
        return [record for record in last.values() if record.status == "error"]

    def rerun_succeeded(self, record: RunRecord) -> bool:
        """True when a later ok record of the same model and task counts instead of ``record``."""
        choice = self._choices.get(record_key(record))
        return choice is not None and self._at(choice.record) > self._at(record)

    # -- lookups by name --------------------------------------------------------------------------

    def fingerprints_named(self, name: str) -> list[str]:
        """Fingerprints of the models called ``name`` (a model name or a display name), sorted."""
        return sorted(
            {
                r.model.fingerprint
                for r in self.records
                if name in (r.model.name, self.names[r.model.fingerprint])
            }
        )

    def evidence(self, model: str, task: str) -> Evidence | None:
        """The result of ``model`` (a name) on ``task``: the newest of its fingerprints' results.

        Notes say when several fingerprints share the name, and when a later run failed.
        """
        fingerprints = self.fingerprints_named(model)
        results = [choice.record for fp in fingerprints if (choice := self.choice(fp, task)) is not None]
        if not results:
            return None
        chosen = max(results, key=self._at)
        notes = []
        if len(results) > 1:
            notes.append(
                f"{len(results)} model fingerprints are named {model} in {self.label}; "
                f"judged the latest ({chosen.model.fingerprint[:12]})"
            )
        later_errors = [
            r
            for r in self.records[self._at(chosen) + 1 :]
            if r.status == "error" and r.task.name == task and r.model.fingerprint in fingerprints
        ]
        if later_errors:
            message = (later_errors[-1].error or "no message").splitlines()[0]
            notes.append(f"a later run failed ({message}); judged the latest ok record")
        return Evidence(chosen, tuple(notes))

    def tasks_with_figure(self, model: str, figure: str) -> list[str]:
        """Tasks whose result for ``model`` carries the efficiency figure, sorted."""
        fingerprints = set(self.fingerprints_named(model))
        tasks = sorted({r.task.name for r in self.records if r.model.fingerprint in fingerprints})
        found = []
        for task in tasks:
            evidence = self.evidence(model, task)
            if evidence is not None and efficiency_figure(evidence.record, figure) is not None:
                found.append(task)
        return found

    def absence(self, model: str, task: str | None = None) -> str:
        """Why there is no evidence, phrased to tell a typo from a run that never happened."""
        fingerprints = set(self.fingerprints_named(model))
        if not fingerprints:
            models = sorted({r.model.name for r in self.records})
            hint = did_you_mean(model, models)
            known = f"did you mean {hint}?" if hint else f"models there: {', '.join(models) or '(none)'}"
            return f"no record of model {model!r} in {self.label}; {known}"
        if task is None:
            return f"no ok record of {model} in {self.label}"
        mine = [r for r in self.records if r.model.fingerprint in fingerprints]
        runs = [r for r in mine if r.task.name == task]
        if runs:  # only failed runs, or evidence() would have found one
            message = (runs[-1].error or "no message").splitlines()[0]
            return f"{model} on {task} has only failed runs in {self.label} (latest: {message})"
        hint = did_you_mean(task, sorted({r.task.name for r in mine}))
        return f"no record of {model} on task {task!r} in {self.label}" + (
            f"; did you mean {hint}?" if hint else ""
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _at(self, record: RunRecord) -> int:
        return self._position[id(record)]

    def _model_order(self, record: RunRecord) -> tuple[str, str]:
        return (self.names[record.model.fingerprint], record.model.fingerprint)


def load_query(root: Path) -> StoreQuery:
    """The store at ``root``, read once; unreadable lines are kept in ``problems``, not raised.

    A missing folder is a DataError (from :meth:`ResultsStore.read`).
    """
    store = ResultsStore(root)
    records, problems = store.read()
    return StoreQuery(records, label=str(root), store=store, problems=problems)
