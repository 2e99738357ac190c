"""Rendering prompts from a task's template, instruction and seeded few-shot examples.

Templates are plain `str.format` strings over a document's top-level fields: no attribute
access, indexing or conversions, so a task file can never reach into Python objects.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.errors import SpecError
from evalkit.requests import ChatMessage
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
    if task.fewshot_match is not None:
        field = task.fewshot_match
        if field not in doc:
            raise SpecError(
                f"{task.source_file or task.name}: fewshot_match: documents have no field {field!r}"
            )
        candidates = [d for d in candidates if d.get(field) == doc[field]]
    if len(candidates) < k:
        raise SpecError(
            f"{task.source_file or task.name}: num_fewshot={k} but only {len(candidates)} few-shot documents"
            + (f" with {task.fewshot_match}={doc[task.fewshot_match]!r}" if task.fewshot_match else "")
        )
    if task.fewshot_sampler == "first_n":  # fixed exemplars (lm-eval's first_n sampler)
        return list(candidates[:k])
    rng = random.Random(f"{task.fewshot_seed}:{doc['id']}")
    return rng.sample(candidates, k)


def build_context(
    task: TaskSpec, doc: dict[str, Any], shots: Sequence[dict[str, Any]], answer_of: Any
) -> str:
    """instruction + (query + delimiter + answer + fewshot_delimiter) per shot + query."""
    return build_conversation(task, doc, shots, answer_of).text()


@dataclass(frozen=True)
class Conversation:
    """A prompt in its parts, as lm-eval 0.4.13's `fewshot_context` builds it: a system part (the
    model's system prompt and the task's instruction), a (query, answer) pair per shot, the query.

    As plain text it is instruction + shots + query. For a chat template it becomes messages: the
    system part as a system turn, then either everything else as one user turn or, multi-turn
    (lm-eval's `fewshot_as_multiturn`), each shot as a user turn and an assistant turn, then the query.
    """

    system: str
    shots: tuple[tuple[str, str], ...]
    query: str
    target_delimiter: str
    fewshot_delimiter: str

    def shots_text(self) -> str:
        return "".join(q + self.target_delimiter + a + self.fewshot_delimiter for q, a in self.shots)

    def prefix(self) -> str:
        """The plain text before the query."""
        return self.system + self.shots_text()

    def text(self) -> str:
        return self.prefix() + self.query

    def messages(self, multiturn: bool, query: str | None = None) -> tuple[ChatMessage, ...]:
        """The conversation for a chat template; `query` replaces the document's own (partial
        scoring asks the same shots with one query per choice)."""
        final = self.query if query is None else query
        turns = [ChatMessage("system", self.system)] if self.system else []
        if not multiturn:
            return (*turns, ChatMessage("user", self.shots_text() + final))
        for question, answer in self.shots:
            turns += [ChatMessage("user", question), ChatMessage("assistant", answer)]
        return (*turns, ChatMessage("user", final))


def build_conversation(
    task: TaskSpec,
    doc: dict[str, Any],
    shots: Sequence[dict[str, Any]],
    answer_of: Any,
    system_prompt: str | None = None,
) -> Conversation:
    """The prompt for `doc` with its few-shot examples; `system_prompt` (chat models only) is joined
    to the instruction as lm-eval joins `system_instruction` and the task's description."""
    instruction = render(task.instruction, doc, task) if task.instruction else ""
    return Conversation(
        system=_maybe_delimit(system_prompt or "", instruction, task.fewshot_delimiter),
        shots=tuple((query_of(task, shot), answer_of(task, shot)) for shot in shots),
        query=query_of(task, doc),
        target_delimiter=task.target_delimiter,
        fewshot_delimiter=task.fewshot_delimiter,
    )


def _maybe_delimit(prefix: str, suffix: str, delimiter: str) -> str:
    """prefix + delimiter + suffix, without the delimiter where either side already has whitespace
    at the join (lm-eval's `maybe_delimit`)."""
    if not prefix or not suffix:
        return prefix or suffix
    if prefix[-1].isspace() or suffix[0].isspace():
        return prefix + suffix
    return prefix + delimiter + suffix
