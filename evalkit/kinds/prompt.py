"""Rendering prompts from a task's template, instruction and seeded few-shot examples.

Templates are plain `str.format` strings over a document's top-level fields: no attribute
access, indexing or conversions, so a task file can never reach into Python objects.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Any

from evalkit.errors import SpecError
from evalkit.specs.task import TaskSpec


def template_fields(template: str, where: str) -> list[str]:
    """The field names a template uses; rejects anything but plain `{name}` fields."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SpecError(f"{where}: bad template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise SpecError(f"{where}: template field {{{name}}} must be a plain name like {{question}}")
        names.append(name)
    return names


def render(template: str, doc: dict[str, Any], task: TaskSpec) -> str:
    try:
        return template.format(**doc)
    except KeyError as exc:
        fields = ", ".join(sorted(doc))
        raise SpecError(
            f"{task.source_file or task.name}: template uses field {exc.args[0]!r} that the documents do not "
            f"have (fields: {fields})"
        ) from None


def query_of(task: TaskSpec, doc: dict[str, Any]) -> str:
    """The question part of a document (for partial scoring, the gold choice's context)."""
    contexts = doc.get("contexts")
    if contexts is not None:
        return str(contexts[int(doc["gold"])])
    return render(task.template, doc, task)


def choose_fewshot(
    task: TaskSpec, doc: dict[str, Any], pool: Sequence[dict[str, Any]], k: int, same_split: bool
) -> list[dict[str, Any]]:
    """k examples for `doc`, seeded by the task seed and the sample id.

    Seeding per sample (not one stream over the run) keeps a sample's prompt identical
    whatever `--limit` or evaluation order is used, so cached responses stay valid.
    """
    if k == 0:
        return []
    candidates = [d for d in pool if not (same_split and d["id"] == doc["id"])]
    if len(candidates) < k:
        raise SpecError(
            f"{task.source_file or task.name}: num_fewshot={k} but only {len(candidates)} few-shot documents"
        )
    rng = random.Random(f"{task.fewshot_seed}:{doc['id']}")
    return rng.sample(candidates, k)


def build_context(
    task: TaskSpec, doc: dict[str, Any], shots: Sequence[dict[str, Any]], answer_of: Any
) -> str:
    """instruction + (query + delimiter + answer + fewshot_delimiter) per shot + query."""
    parts = [render(task.instruction, doc, task) if task.instruction else ""]
    for shot in shots:
        parts.append(
            query_of(task, shot) + task.target_delimiter + answer_of(task, shot) + task.fewshot_delimiter
        )
    parts.append(query_of(task, doc))
    return "".join(parts)
