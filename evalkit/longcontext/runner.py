"""The `long_context` task kind: generate the grid for one model, fit its lengths, ask, score, summarise.

Samples are made per model because a length is counted in the model's own tokenizer: for every
cell (row × length × sample) the generator's layout is rendered with as much filler as fits, the
prompt is assembled exactly as it will be sent (template, chat template, answer prefix, special
tokens) and counted, and the generation budget is kept free. Cells longer than the model's context
window are skipped with the reason recorded, or run and marked when the task says
`beyond_window: run`. Requests go through the runner's cache with `prefix_reuse`, so a backend that
can compute shared prefixes once (the transformers backend) does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.backends import Backend
from evalkit.errors import SpecError
from evalkit.kinds import (
    RequestServer,
    RunFacts,
    TaskOutcome,
    fingerprint_json,
    mean_metric,
    task_facts,
    task_fingerprint,
)
from evalkit.longcontext._types import FitError, Fitted, Probe, Rendered
from evalkit.longcontext.check import check_template
from evalkit.longcontext.score import (
    effective_context_length,
    generation_scores,
    ranking_score,
    relative_effective_length,
    row_average,
)
from evalkit.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
)
from evalkit.results import LongContextMatrix, MetricValue, SampleLog, SourceFacts
from evalkit.specs import LongContextSpec, TaskSpec

log = logging.getLogger("evalkit.longcontext")

GENERATION_METRICS = ("ruler_all", "ruler_any", "strict")
RANKING_METRICS = ("ll_rank",)
# Bump when a generator, haystack or the fitter changes the samples a spec and seed produce.
GENERATOR_VERSION = 1
# Prompts longer than this are stored with their middle elided: they regenerate byte-identically
# from the seed, and a full 32k-token grid would otherwise write hundreds of megabytes of logs.
_SHOWN_PROMPT_CHARS = 6000


@dataclass
class _Cell:
    row: int
    column: int
    sample: int
    depth: float | None
    row_value: float | int | None
    length: int
    seed: int
    beyond_window: bool
    fitted: Fitted | None = None
    prompts: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    needle_offsets: list[int] = field(default_factory=list)


@dataclass
class Grid:
    """Every cell of a task for one model, fitted and turned into requests (nothing run yet)."""

    settings: LongContextSpec
    seed: int
    rows: list[tuple[float | None, Any]]
    row_axis: str
    cells: list[_Cell]
    skipped: dict[str, str]
    haystack: Any
    tokenizer: str
    samples: int


def build_grid(
    backend: Backend, spec: TaskSpec, *, seed: int | None = None, limit: int | None = None
) -> Grid:
    """Generate, fit and assemble every cell of `spec` for `backend`'s tokenizer and window."""
    from evalkit.longcontext.generators import get_generator

    settings = spec.long_context
    assert settings is not None
    where = spec.source_file or spec.name
    check_template(settings.template, where)
    task_seed = settings.seed if seed is None else seed
    generator = get_generator(settings.generator)
    base_params = generator.params_model.model_validate(settings.params)
    haystack = None
    if generator.info.uses_haystack:
        from evalkit.longcontext.haystack import HaystackError, make_haystack

        base_dir = Path(spec.source_file).parent if spec.source_file else None
        try:
            haystack = make_haystack(settings.haystack, base_dir)
        except HaystackError as exc:
            raise SpecError(f"{where}: haystack: {exc}") from None

    rows, row_axis = _rows(settings, generator.info.uses_depth)
    samples = min(settings.samples, limit) if limit is not None else settings.samples
    facts = backend.describe()
    window = facts.context_window
    tokens = _prompt_tokens(backend)
    assemble = _assembler(settings, backend if facts.chat_template else None)

    cells: list[_Cell] = []
    skipped: dict[str, str] = {}
    untruncated = _prompt_limit(backend, window)
    for column, length in enumerate(settings.lengths):
        if untruncated is not None and length > untruncated:  # it would cut the prompt: never silently
            skipped[str(length)] = (
                f"longer than the {untruncated} tokens this backend runs without truncating"
            )
            continue
        beyond = window is not None and length > window
        if beyond and settings.beyond_window == "skip":
            skipped[str(length)] = f"longer than the model's context window ({window} tokens)"
            continue
        for sample in range(samples):
            hint: int | None = None
            for row, (depth, row_value) in enumerate(rows):
                cell_seed = _cell_seed(
                    task_seed, spec.name, length, sample, row_value if settings.sweep else None
                )
                params = base_params
                if settings.sweep is not None:
                    params = params.model_copy(update={settings.sweep.param: row_value})
                layout = generator.layout(params, haystack, seed=cell_seed, depth=depth)
                cell = _Cell(row, column, sample, depth, row_value, length, cell_seed, beyond)
                try:
                    cell.fitted = _fit(layout, assemble, tokens, length, settings, hint, where)
                except _TooShort as exc:  # e.g. 64 key-value pairs cannot fit in 256 tokens
                    skipped[f"{length}@{row_axis}={row_value}"] = str(exc)
                    continue
                hint = cell.fitted.rendered.units
                _build_requests(cell, settings, assemble, tokens)
                cells.append(cell)
    identity = _tokenizer_identity(backend)
    return Grid(settings, task_seed, rows, row_axis, cells, skipped, haystack, identity, samples)


def run_long_context_task(
    backend: Backend,
    spec: TaskSpec,
    *,
    seed: int | None,
    limit: int | None,
    server: RequestServer,
) -> TaskOutcome:
    """`limit` caps the samples per cell; requests go one prompt at a time (shared prefixes once)."""
    grid = build_grid(backend, spec, seed=seed, limit=limit)
    settings, cells, haystack, identity = grid.settings, grid.cells, grid.haystack, grid.tokenizer
    rows, row_axis, skipped = grid.rows, grid.row_axis, grid.skipped
    flat = [r for c in cells for r in c.requests]
    results = server.serve(flat, description=spec.name, prefix_reuse=True, batch_size=1)
    metric_names = GENERATION_METRICS if settings.mode == "generate" else RANKING_METRICS
    logs: list[SampleLog] = []
    cell_scores: list[dict[str, float]] = []
    position = 0
    for cell in cells:
        answer = results[position : position + len(cell.requests)]
        position += len(cell.requests)
        scores, response, per_probe = _score_cell(cell, settings, answer)
        cell_scores.append(scores)
        logs.append(_sample_log(cell, settings, scores, response, per_probe, identity, haystack))

    matrix = _matrix(settings, rows, row_axis, cells, cell_scores, metric_names[0], skipped, identity)
    metrics = {m: mean_metric([s[m] / 100.0 for s in cell_scores]) for m in metric_names} if cells else {}
    metrics["effective_context_length"] = _length_metric(
        matrix.effective_context_length, len(settings.lengths)
    )
    metrics["relative_effective_context_length"] = _length_metric(
        matrix.relative_effective_context_length, len(settings.lengths)
    )
    # The fingerprint names the task version (spec, seed, samples), not one model's prompts: prompts
    # are fitted per tokenizer by design, and models must still compare as scored on the same task.
    # The prompts themselves are hashed into the data source's content_sha256.
    spec_json = (
        fingerprint_json(spec) + f"|seed={grid.seed}|samples={grid.samples}|generators={GENERATOR_VERSION}"
    )
    content = hashlib.sha256()
    for cell in cells:
        for prompt in cell.prompts:
            content.update(prompt.encode("utf-8"))
    haystack_name = haystack.identity if haystack is not None else "none"
    task = task_facts(
        spec,
        fingerprint=task_fingerprint(spec_json, []),
        primary_metric=metric_names[0],
        num_fewshot=0,
        num_samples=len(cells),
        source=SourceFacts(
            origin="synthetic",
            format=f"generator:{settings.generator}",
            location=f"haystack={haystack_name}; seed={grid.seed}; tokenizer={identity}",
            split="",
            num_documents=len(cells),
            content_sha256=content.hexdigest(),
        ),
    )
    ran = RunFacts(
        executor=spec.kind,
        limit=limit,
        limit_unit="samples_per_cell",
        seed=grid.seed,
        batch_size=1,
        batch_sizes=server.batch_sizes(),
        num_fewshot=0,
        num_documents=len(cells),
    )
    return TaskOutcome(task, metrics, logs, ran, long_context=matrix)


def _rows(settings: LongContextSpec, uses_depth: bool) -> tuple[list[tuple[float | None, Any]], str]:
    """(depth, row value) per grid row, and the row axis recorded with the matrix."""
    if settings.sweep is not None:
        depth = settings.depths[0] if uses_depth else None
        return [(depth, value) for value in settings.sweep.values], settings.sweep.param
    if not uses_depth:
        return [(None, None)], "all"
    return [(depth, depth) for depth in settings.depths], "depth"


def _cell_seed(task_seed: int, task: str, length: int, sample: int, row_value: object) -> int:
    """A per-sample seed that does not depend on the depth: every depth of a sample shares its
    filler and needle text, so their prompts share a prefix the backend can compute once."""
    text = f"{task_seed}:{task}:{length}:{sample}:{row_value}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _prompt_tokens(backend: Backend) -> Callable[[str], list[int]]:
    from evalkit.backends.capabilities import PromptTokens

    if isinstance(backend, PromptTokens):
        return backend.prompt_token_ids
    return backend.tokenizer.encode


def _prompt_limit(backend: Backend, window: int | None) -> int | None:
    """Tokens the backend runs untruncated; a backend that cannot say truncates at its window."""
    from evalkit.backends.capabilities import PromptTokens

    return backend.prompt_limit() if isinstance(backend, PromptTokens) else window


def _tokenizer_identity(backend: Backend) -> str:
    from evalkit.backends.capabilities import PromptTokens

    if isinstance(backend, PromptTokens):
        return backend.tokenizer_identity()
    return type(backend.tokenizer).__name__


Assembler = Callable[[Rendered, Probe], str]


def _assembler(settings: LongContextSpec, chat: Backend | None) -> Assembler:
    """The prompt exactly as sent: template, then the chat template (if the model uses one), then
    the answer prefix the model continues (RULER appends it after the chat template too)."""

    def assemble(rendered: Rendered, probe: Probe) -> str:
        body = settings.template.format(
            instruction=rendered.instruction, context=rendered.context, question=probe.question
        )
        if chat is not None:
            return chat.apply_chat_template(body) + probe.answer_prefix
        return f"{body} {probe.answer_prefix}" if probe.answer_prefix else body

    return assemble


def _fit(
    layout: Any,
    assemble: Assembler,
    tokens: Callable[[str], list[int]],
    length: int,
    settings: LongContextSpec,
    hint: int | None,
    where: str,
) -> Fitted:
    from evalkit.longcontext.fit import fit, tolerance_for

    def count(rendered: Rendered) -> int:
        return max(len(tokens(assemble(rendered, probe))) for probe in rendered.probes)

    budget = length - settings.max_new_tokens
    if budget <= 0:
        raise SpecError(
            f"{where}: length {length} leaves no room for max_new_tokens={settings.max_new_tokens}"
        )
    try:
        return fit(layout, count, budget, tolerance=tolerance_for(length), hint=hint)
    except FitError as exc:
        if exc.fixed_tokens is not None:
            raise _TooShort(f"too short: {exc}") from None
        raise SpecError(f"{where}: length {length}: {exc}") from None


class _TooShort(Exception):
    """A cell whose fixed parts (instruction, needles, question, budget) exceed its length."""


def _build_requests(
    cell: _Cell, settings: LongContextSpec, assemble: Assembler, tokens: Callable[[str], list[int]]
) -> None:
    assert cell.fitted is not None
    rendered = cell.fitted.rendered
    cell.prompts = [assemble(rendered, probe) for probe in rendered.probes]
    for prompt, probe in zip(cell.prompts, rendered.probes, strict=True):
        if settings.mode == "generate":
            cell.requests.append(GenerateRequest(prompt, tuple(settings.stop), settings.max_new_tokens))
        else:
            for candidate in _candidates(probe, settings):
                cell.requests.append(LoglikelihoodRequest(prompt, f" {candidate}"))
    first = cell.prompts[0]
    start = first.find(rendered.context)
    cell.needle_offsets = (
        [len(tokens(first[: start + span[0]])) for span in rendered.needle_spans] if start >= 0 else []
    )


def _candidates(probe: Probe, settings: LongContextSpec) -> list[str]:
    return [*probe.answers, *probe.distractors[: settings.distractors]]


def _score_cell(
    cell: _Cell, settings: LongContextSpec, results: Sequence[object]
) -> tuple[dict[str, float], str | list[float], list[dict[str, Any]]]:
    """The cell's scores (mean over its probes, 0–100), the response to log, and per-probe details."""
    assert cell.fitted is not None
    probes = cell.fitted.rendered.probes
    per_probe: list[dict[str, Any]] = []
    if settings.mode == "generate":
        texts = []
        for probe, result in zip(probes, results, strict=True):
            assert isinstance(result, GenerateResult)
            texts.append(result.text)
            per_probe.append(
                {
                    "answers": list(probe.answers),
                    "output": result.text,
                    **generation_scores(probe, result.text),
                }
            )
        scores = {m: sum(p[m] for p in per_probe) / len(per_probe) for m in GENERATION_METRICS}
        response: str | list[float] = (
            texts[0] if len(texts) == 1 else "\n".join(f"[{i + 1}] {t}" for i, t in enumerate(texts))
        )
        return scores, response, per_probe
    position = 0
    logprobs: list[float] = []
    for probe in probes:
        candidates = _candidates(probe, settings)
        chunk = results[position : position + len(candidates)]
        position += len(candidates)
        values = []
        for result in chunk:
            assert isinstance(result, LoglikelihoodResult)
            values.append(result.logprob)
        logprobs.extend(values)
        answers, wrong = values[: len(probe.answers)], values[len(probe.answers) :]
        per_probe.append(
            {"candidates": candidates, "logprobs": values, "ll_rank": ranking_score(answers, wrong)}
        )
    scores = {"ll_rank": sum(p["ll_rank"] for p in per_probe) / len(per_probe)}
    return scores, logprobs, per_probe


def _sample_log(
    cell: _Cell,
    settings: LongContextSpec,
    scores: dict[str, float],
    response: str | list[float],
    per_probe: list[dict[str, Any]],
    tokenizer: str,
    haystack: Any,
) -> SampleLog:
    assert cell.fitted is not None
    fitted = cell.fitted
    rendered = fitted.rendered
    row = (
        "all"
        if cell.row_value is None
        else f"{cell.row_value:g}"
        if isinstance(cell.row_value, float)
        else str(cell.row_value)
    )
    axis = "depth" if cell.depth is not None and not settings.sweep else "row"
    first = cell.prompts[0]
    extra: dict[str, Any] = {
        "length": cell.length,
        "prompt_tokens": fitted.prompt_tokens,
        "generation_budget": settings.max_new_tokens,
        "total_tokens": fitted.prompt_tokens + settings.max_new_tokens,
        "short_by": cell.length - settings.max_new_tokens - fitted.prompt_tokens,
        "depth": cell.depth,
        "row": cell.row_value,
        "needle_token_offsets": cell.needle_offsets,
        "tokenizer": tokenizer,
        "haystack": haystack.identity if haystack is not None else None,
        "filler_units": rendered.units,
        "partial_words": rendered.partial_words,
        "seed": cell.seed,
        "beyond_window": cell.beyond_window,
        "prompt_sha256": hashlib.sha256(first.encode("utf-8")).hexdigest(),
        "probes": per_probe,
    }
    return SampleLog(
        sample_id=f"len{cell.length}-{axis}{row}-s{cell.sample}",
        prompt=_shown(first),
        target=[a for probe in rendered.probes for a in probe.answers],
        response=response,
        scores={name: value / 100.0 for name, value in scores.items()},
        extra=extra,
    )


def _shown(prompt: str) -> str:
    if len(prompt) <= _SHOWN_PROMPT_CHARS:
        return prompt
    half = _SHOWN_PROMPT_CHARS // 2
    hidden = len(prompt) - 2 * half
    note = f"[… {hidden} characters elided; the seed regenerates them exactly …]"
    return f"{prompt[:half]}\n{note}\n{prompt[-half:]}"


def _matrix(
    settings: LongContextSpec,
    rows: list[tuple[float | None, Any]],
    row_axis: str,
    cells: list[_Cell],
    cell_scores: list[dict[str, float]],
    primary: str,
    skipped: dict[str, str],
    tokenizer: str,
) -> LongContextMatrix:
    sums: dict[tuple[int, int], list[float]] = {}
    for cell, scores in zip(cells, cell_scores, strict=True):
        sums.setdefault((cell.row, cell.column), []).append(scores[primary])
    grid: list[list[float | None]] = [
        [
            (sum(v) / len(v)) if (v := sums.get((row, column))) else None
            for column in range(len(settings.lengths))
        ]
        for row in range(len(rows))
    ]
    averages = [row_average(grid, column) for column in range(len(settings.lengths))]
    lengths = list(settings.lengths)
    return LongContextMatrix(
        lengths=lengths,
        depths=[float(value) if value is not None else 0.0 for _, value in rows],
        scores=grid,
        threshold=settings.threshold,
        effective_context_length=effective_context_length(lengths, averages, settings.threshold),
        row_axis=row_axis,
        relative_fraction=settings.relative_fraction,
        relative_effective_context_length=relative_effective_length(
            lengths, averages, settings.relative_fraction
        ),
        length_scores=averages,
        skipped=skipped,
        beyond_window=sorted({c.length for c in cells if c.beyond_window}),
        tokenizer=tokenizer,
    )


def _length_metric(value: int | None, lengths: int) -> MetricValue:
    """An effective context length as an unbounded metric (0 when no tested length qualifies)."""
    return MetricValue(
        value=float(value or 0), stderr=None, ci95=None, n=lengths, higher_is_better=True, bounded=False
    )
