"""The executor of the document kinds: documents → prompts → requests → scores → metrics.

multiple_choice, loglikelihood, generate and perplexity share this pipeline and differ only in
their `TaskKind` (how a document becomes requests, how results become scores). Each is one
`DocumentExecutor` registered under its kind's name.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from evalkit.backends import Backend
from evalkit.errors import EvalkitError, SpecError
from evalkit.kinds.base import PreparedSample, TaskKind
from evalkit.kinds.executor import CatalogueLine, ExecutionContext
from evalkit.kinds.generate import Generate
from evalkit.kinds.loglikelihood import Loglikelihood
from evalkit.kinds.multiple_choice import MultipleChoice
from evalkit.kinds.outcome import RunFacts, TaskOutcome, fingerprint_json, task_facts, task_fingerprint
from evalkit.kinds.perplexity import Perplexity
from evalkit.kinds.prompt import build_context, choose_fewshot, template_fields
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, Request
from evalkit.results import SampleLog
from evalkit.sources import LoadedDocuments, counted_source, data_identity, load_documents
from evalkit.specs import TaskSpec

_PREPARED_KEPT = 32  # a suite's worth of tasks (each with its few-shot pool)


class DocumentExecutor:
    """Runs a task whose samples are dataset documents, scored by one `TaskKind`."""

    def __init__(self, kind: TaskKind) -> None:
        self.kind = kind
        self.name = kind.name
        # Documents loaded by `prepare` (at planning) for `run` to reuse, by spec and role; bounded,
        # since one executor object serves every task of its kind in the process.
        self._prepared: OrderedDict[tuple[str, str | None, str], LoadedDocuments] = OrderedDict()

    # -- the contract -----------------------------------------------------------------------

    def check(self, spec: TaskSpec) -> None:
        if not spec.given("dataset"):
            raise SpecError(f"{spec.where()}: kind {spec.kind} needs a dataset block")
        self.metrics(spec)
        if self.kind.uses_prompt:
            template_fields(spec.template, f"{spec.where('template')}: template")
            template_fields(spec.instruction, f"{spec.where('instruction')}: instruction")

    def prepare(self, spec: TaskSpec) -> None:
        """Read every document (and the few-shot pool) now: each is checked and its prompt rendered."""
        self.load(spec, "eval")
        if spec.num_fewshot and self.kind.uses_prompt:
            self.load(spec, "fewshot")

    def metrics(self, spec: TaskSpec) -> list[str]:
        """The task's metrics, checked against the kind (the first one is the primary metric)."""
        from evalkit.errors import did_you_mean

        offered = self.kind.metric_names
        chosen = spec.metrics if spec.metrics is not None else list(offered)
        for metric in chosen:
            if metric not in offered:
                hint = did_you_mean(metric, offered)
                extra = f"; did you mean {hint}?" if hint else f"; {spec.kind} offers {', '.join(offered)}"
                raise SpecError(f"{spec.where('metrics')}: unknown metric {metric!r}{extra}")
        if not chosen:
            raise SpecError(f"{spec.where('metrics')}: metrics must not be empty")
        return list(chosen)

    def describe(self, spec: TaskSpec, *, count: bool) -> CatalogueLine:
        if not count:
            hub = spec.dataset.hub
            declared = (
                f"{hub.path}" + (f"/{hub.name}" if hub.name else "") + f" [{hub.split}]" if hub else "local"
            )
            return CatalogueLine("-", declared)
        try:
            s = counted_source(
                spec, document_problem=self.kind.document_problem, renders_prompt=self.kind.uses_prompt
            )
        except EvalkitError as exc:
            return CatalogueLine("-", f"unavailable: {exc}")
        hub_id = f" (= {s.hub_id})" if s.hub_id else ""
        return CatalogueLine(str(s.num_documents), f"{s.origin}: {s.location} [{s.split}]{hub_id}")

    def preview(self, spec: TaskSpec) -> list[str]:
        loaded = self.load(spec, "eval")
        source = loaded.source
        lines = [
            f"source: {source.origin} {source.format} {source.location} (split {source.split})",
            f"samples: {source.num_documents}",
        ]
        if loaded.documents:
            doc = loaded.documents[0]
            context = build_context(spec, doc, [], self.kind.fewshot_answer) if self.kind.uses_prompt else ""
            sample = self.kind.prepare(spec, doc, context)
            lines += ["", "first sample, as sent to the model:"]
            lines += ["  " + repr(request) for request in sample.requests]
            lines.append(f"target: {sample.target!r}")
        return lines

    def run(self, backend: Backend, spec: TaskSpec, context: ExecutionContext) -> TaskOutcome:
        kind = self.kind
        if context.seed is not None:
            spec = spec.model_copy(update={"fewshot_seed": context.seed})
        shots = spec.num_fewshot if context.num_fewshot is None else context.num_fewshot
        if not kind.uses_prompt:
            shots = 0
        metrics = self.metrics(spec)
        loaded = self.load(spec, "eval")
        documents = loaded.documents[: context.limit] if context.limit is not None else loaded.documents
        pool: list[dict[str, Any]] = []
        same_split = True
        if shots:
            fewshot = self.load(spec, "fewshot")
            pool = fewshot.documents
            same_split = fewshot.source.content_sha256 == loaded.source.content_sha256

        chat = backend.describe().chat_template
        prepared: list[PreparedSample] = []
        for doc in documents:
            prompt = ""
            if kind.uses_prompt:
                examples = choose_fewshot(spec, doc, pool, shots, same_split)
                prompt = build_context(spec, doc, examples, kind.fewshot_answer)
            sample = kind.prepare(spec, doc, prompt)
            prepared.append(_with_chat_template(sample, backend) if chat else sample)

        flat: list[Request] = [r for s in prepared for r in s.requests]
        results = context.server.serve(flat, description=spec.name)
        scores, logs, position = [], [], 0
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
        facts = task_facts(
            spec,
            fingerprint=fingerprint,
            primary_metric=metrics[0],
            num_fewshot=shots,
            num_samples=len(prepared),
            source=loaded.source,
        )
        ran = RunFacts(
            executor=self.name,
            limit=context.limit,
            limit_unit="documents",
            seed=spec.fewshot_seed if shots else None,  # nothing else here is random
            batch_size=context.batch_size,
            batch_sizes=context.server.batch_sizes(),
            num_fewshot=shots,
            num_documents=len(prepared),
        )
        return TaskOutcome(facts, kind.aggregate(scores, metrics), logs, ran)

    def load(self, spec: TaskSpec, role: str) -> LoadedDocuments:
        assert role in ("eval", "fewshot")
        if role == "fewshot" and not (spec.dataset.fewshot_mirrors or spec.dataset.fewshot_hub_split):
            role = "eval"  # shots come from the evaluation documents: read them once, not twice
        # Keyed by the data's identity (spec, files' size and time), so a file edited between two
        # runs in one process is read again; the hub's copies are never kept.
        identity = data_identity(spec)
        key = (identity or "", spec.source_file, role)
        if identity is not None and key in self._prepared:
            self._prepared.move_to_end(key)
            return self._prepared[key]
        loaded = load_documents(
            spec,
            "eval" if role == "eval" else "fewshot",
            document_problem=self.kind.document_problem,
            renders_prompt=self.kind.uses_prompt,
        )
        if identity is not None:
            self._prepared[key] = loaded
        while len(self._prepared) > _PREPARED_KEPT:
            self._prepared.popitem(last=False)
        return loaded


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


MULTIPLE_CHOICE = DocumentExecutor(MultipleChoice())
LOGLIKELIHOOD = DocumentExecutor(Loglikelihood())
GENERATE = DocumentExecutor(Generate())
PERPLEXITY = DocumentExecutor(Perplexity())
