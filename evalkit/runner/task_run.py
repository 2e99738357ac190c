"""One catalogue task on one backend: documents → prompts → requests → scores → metrics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.backends.base import Backend
from evalkit.kinds import get_kind, metrics_for
from evalkit.kinds.base import PreparedSample
from evalkit.kinds.prompt import build_context, choose_fewshot, template_fields
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, Request
from evalkit.results.schema import DataSourceFacts, LongContextMatrix, MetricValue, SampleLog, TaskFacts
from evalkit.runner.execute import Cache, execute
from evalkit.specs.task import TaskSpec


@dataclass(frozen=True)
class TaskOutcome:
    task: TaskFacts
    metrics: dict[str, MetricValue]
    samples: list[SampleLog]
    num_fewshot: int
    seed: int
    efficiency: dict[str, Any] | None = None  # kind `efficiency` only: the record's figures
    long_context: LongContextMatrix | None = None  # kind `long_context` only: the depth × length grid


def run_task(
    backend: Backend,
    spec: TaskSpec,
    *,
    limit: int | None,
    num_fewshot: int | None,
    seed: int | None,
    batch_size: int,
    cache: Cache,
    show_progress: bool = True,
) -> TaskOutcome:
    from evalkit.sources import load_documents

    if spec.kind == "efficiency":  # no documents or requests: timed forward passes on random tokens
        from evalkit.efficiency import run_efficiency_task

        measured = run_efficiency_task(backend, spec, seed=seed)
        return TaskOutcome(measured.task, measured.metrics, [], 0, measured.seed, measured.figures)
    if spec.kind == "long_context":  # seeded generators, lengths fitted in this model's tokenizer
        from evalkit.longcontext.runner import run_long_context_task

        return run_long_context_task(
            backend, spec, seed=seed, limit=limit, cache=cache, show_progress=show_progress
        )
    if seed is not None:
        spec = spec.model_copy(update={"fewshot_seed": seed})
    shots = spec.num_fewshot if num_fewshot is None else num_fewshot
    kind = get_kind(spec.kind)
    metrics = metrics_for(spec)
    where = spec.source_file or spec.name
    if kind.uses_prompt:
        template_fields(spec.template, f"{where}: template")
        template_fields(spec.instruction, f"{where}: instruction")
    else:
        shots = 0

    loaded = load_documents(spec, "eval")
    documents = loaded.documents[:limit] if limit is not None else loaded.documents
    pool: list[dict[str, Any]] = []
    same_split = True
    if shots:
        fewshot = load_documents(spec, "fewshot")
        pool = fewshot.documents
        same_split = fewshot.source.content_sha256 == loaded.source.content_sha256

    chat = backend.describe().chat_template
    prepared: list[PreparedSample] = []
    for doc in documents:
        context = ""
        if kind.uses_prompt:
            examples = choose_fewshot(spec, doc, pool, shots, same_split)
            context = build_context(spec, doc, examples, kind.fewshot_answer)
        sample = kind.prepare(spec, doc, context)
        if chat:
            sample = _with_chat_template(sample, backend)
        prepared.append(sample)

    flat: list[Request] = [r for s in prepared for r in s.requests]
    results = execute(
        backend, flat, cache=cache, batch_size=batch_size, description=spec.name, show_progress=show_progress
    )
    scores = []
    logs = []
    position = 0
    for sample in prepared:
        answer = results[position : position + len(sample.requests)]
        position += len(sample.requests)
        score = kind.score(spec, sample, answer)
        scores.append(score)
        logs.append(
            SampleLog(
                sample_id=sample.sample_id,
                prompt=_shown_prompt(sample, chat),
                target=sample.target,
                response=score.response,
                scores={m: score.scores[m] for m in metrics if m in score.scores},
                extra=score.extra,
            )
        )
    fingerprint = task_fingerprint(
        fingerprint_json(spec) + f"|fewshot={shots}", [r.cache_key() for r in flat]
    )
    task_facts = TaskFacts(
        name=spec.name,
        kind=spec.kind,
        fingerprint=fingerprint,
        spec_file=spec.source_file,
        primary_metric=metrics[0],
        num_fewshot=shots,
        num_samples=len(prepared),
        source=DataSourceFacts.model_validate(loaded.source.model_dump()),
    )
    return TaskOutcome(task_facts, kind.aggregate(scores, metrics), logs, shots, spec.fewshot_seed)


def _shown_prompt(sample: PreparedSample, chat: bool) -> str:
    """The prompt as the model saw it (with the chat template applied, when it was)."""
    first = sample.requests[0] if sample.requests else None
    if chat and isinstance(first, LoglikelihoodRequest | GenerateRequest):
        return first.context
    return sample.prompt


def _with_chat_template(sample: PreparedSample, backend: Backend) -> PreparedSample:
    """Wrap each request's context as one user turn; continuations follow the assistant prefix."""
    wrapped: list[Request] = []
    for request in sample.requests:
        if isinstance(request, LoglikelihoodRequest):
            context = backend.apply_chat_template(request.context)
            wrapped.append(LoglikelihoodRequest(context, request.continuation.lstrip()))
        elif isinstance(request, GenerateRequest):
            wrapped.append(dataclasses.replace(request, context=backend.apply_chat_template(request.context)))
        else:
            wrapped.append(request)
    return dataclasses.replace(sample, requests=wrapped)


def fingerprint_json(spec: TaskSpec) -> str:
    """The spec as the fingerprint sees it: fields left at their defaults are omitted, so adding a
    new optional field to the schema does not change the fingerprint of every existing task."""
    return spec.model_dump_json(exclude_defaults=True)


def task_fingerprint(spec_json: str, request_keys: Sequence[str]) -> str:
    """sha256 over the resolved task spec and every request sent (so over the exact samples)."""
    digest = hashlib.sha256(spec_json.encode("utf-8"))
    digest.update(json.dumps(list(request_keys)).encode("utf-8"))
    return digest.hexdigest()
