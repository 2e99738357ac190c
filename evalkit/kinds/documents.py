"""The executor of the document kinds: documents → prompts → requests → scores → metrics.

multiple_choice, loglikelihood, generate and perplexity share this pipeline and differ only in
their `TaskKind` (how a document becomes requests, how results become scores). Each is one
`DocumentExecutor` registered under its kind's name.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from evalkit.backends import Backend, ModelFacts
from evalkit.errors import EvalkitError, SpecError
from evalkit.kinds.base import PreparedSample, TaskKind
from evalkit.kinds.executor import CatalogueLine, ExecutionContext
from evalkit.kinds.generate import Generate
from evalkit.kinds.loglikelihood import Loglikelihood
from evalkit.kinds.multiple_choice import MultipleChoice
from evalkit.kinds.outcome import RunFacts, TaskOutcome, fingerprint_json, task_facts, task_fingerprint
from evalkit.kinds.perplexity import Perplexity
from evalkit.kinds.prompt import (
    Conversation,
    build_context,
    build_conversation,
    choose_fewshot,
    template_fields,
)
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

        model = backend.describe()
        prepared = [
            self.sample(spec, doc, choose_fewshot(spec, doc, pool, shots, same_split), backend, model)
            for doc in documents
        ]

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
                    prompt=sample.prompt,
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

    def sample(
        self,
        spec: TaskSpec,
        doc: dict[str, Any],
        shots: Sequence[dict[str, Any]],
        backend: Backend,
        model: ModelFacts | None = None,
    ) -> PreparedSample:
        """`doc`'s requests exactly as `backend` is sent them: the prompt with these few-shot
        examples, rendered with the model's chat template (and system prompt, multi-turn shots)
        when its spec asks. `model`: the backend's `describe()`, when the caller has it."""
        kind = self.kind
        if not kind.uses_prompt:
            return kind.prepare(spec, doc, "")
        model = model or backend.describe()
        system_prompt = model.system_prompt if model.chat_template else None
        conversation = build_conversation(spec, doc, shots, kind.fewshot_answer, system_prompt)
        sample = kind.prepare(spec, doc, conversation.text())
        if not model.chat_template:
            return sample
        return _ChatRenderer(backend, spec, model.fewshot_multiturn).wrap(sample, conversation)

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


class _ChatRenderer:
    """Renders a sample's requests with the model's chat template, as lm-eval 0.4.13 does with
    `--apply_chat_template` (and `--fewshot_as_multiturn`, `--system_instruction`).

    Each request's context is the sample's plain prompt with its own query (partial scoring gives
    each choice one); it becomes the conversation's messages, rendered up to where the assistant's
    answer starts. A multiple-choice continuation then follows the assistant prefix without the task's
    target delimiter (lm-eval drops it under a chat template); a cloze target keeps its text as is.
    """

    def __init__(self, backend: Backend, spec: TaskSpec, multiturn: bool) -> None:
        self.backend = backend
        self.spec = spec
        self.multiturn = multiturn

    def wrap(self, sample: PreparedSample, conversation: Conversation) -> PreparedSample:
        rendered: dict[str, str] = {}  # by query: the choices of a question share one context

        def render(query: str) -> str:
            if query not in rendered:
                messages = conversation.messages(self.multiturn, query)
                rendered[query] = self.backend.apply_chat_template(messages)
            return rendered[query]

        prefix = conversation.prefix()
        drop_delimiter = self.spec.kind == "multiple_choice"
        requests: list[Request] = []
        for request in sample.requests:
            if not isinstance(request, LoglikelihoodRequest | GenerateRequest):
                requests.append(request)
                continue
            if not request.context.startswith(prefix):
                raise RuntimeError(f"kind {self.spec.kind}: a request's context does not extend the prompt")
            context = render(request.context[len(prefix) :])
            if isinstance(request, GenerateRequest):
                requests.append(dataclasses.replace(request, context=context))
            else:
                continuation = request.continuation
                if drop_delimiter:
                    continuation = continuation.removeprefix(self.spec.target_delimiter)
                requests.append(LoglikelihoodRequest(context, continuation))
        # The log shows the prompt as sent: the document's own query (the gold choice's, when
        # partial scoring gives each choice its own context).
        return dataclasses.replace(sample, prompt=render(conversation.query), requests=requests)


MULTIPLE_CHOICE = DocumentExecutor(MultipleChoice())
LOGLIKELIHOOD = DocumentExecutor(Loglikelihood())
GENERATE = DocumentExecutor(Generate())
PERPLEXITY = DocumentExecutor(Perplexity())
