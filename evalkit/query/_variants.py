"""Which stored models are variants of which reference: quantized or lower-precision variants of a
full-precision reference, and fine-tuned variants (an adapter applied on load) of their base.

This pairs models, not numbers: how large a variant's change is, and how sure, is statistics
and lives with the statistics (:mod:`evalkit.report`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from evalkit.results import RunRecord

REFERENCE_DTYPE = "float32"


def variant_groups(records: Iterable[RunRecord]) -> dict[str, list[str]]:
    """Reference fingerprint -> its variants' fingerprints (sorted), for groups that have both.

    Variants share ``parameters`` and ``family`` with the reference and differ in ``dtype`` or
    ``quantization``; the reference is the best-precision member (see :func:`reference_rank`).
    A model with an adapter is a variant of its base: the same model loaded and prompted the same
    way without the adapter (see :func:`adapter_base`).
    """
    latest_facts: dict[str, RunRecord] = {}
    for record in records:
        latest_facts[record.model.fingerprint] = record
    # Keyed by size and family, not architecture: backends name one architecture differently
    # (transformers "LlamaForCausalLM", llama.cpp "llama"), and a variant must find its reference.
    by_shape: dict[tuple[int, str], list[str]] = defaultdict(list)
    for fingerprint in sorted(latest_facts):
        model = latest_facts[fingerprint].model
        if model.adapter is not None:
            continue  # paired with its own base below, not ranked among precisions
        by_shape[(model.parameters, model.family)].append(fingerprint)
    groups: dict[str, list[str]] = {}
    for members in by_shape.values():
        ranked = sorted(
            (rank, fp) for fp in members if (rank := reference_rank(latest_facts[fp])) is not None
        )
        if not ranked:
            continue
        reference = ranked[0][1]  # best precision; members are sorted, so ties resolve stably
        precision = _precision(latest_facts[reference])
        variants = [fp for fp in members if _precision(latest_facts[fp]) != precision]
        if variants:
            groups[reference] = variants
    for fingerprint in sorted(latest_facts):
        base = adapter_base(latest_facts[fingerprint], latest_facts.values())
        if base is not None:
            groups[base] = sorted([*groups.get(base, []), fingerprint])
    return groups


def adapter_base(adapted: RunRecord, candidates: Iterable[RunRecord]) -> str | None:
    """The fingerprint of the base an adapted model was made from, when the store holds it.

    The base is the same weights loaded the same way without the adapter: same backend, source,
    dtype, quantization and prompting options (``source`` names the weights by content for local
    files and GGUFs).
    """
    if adapted.model.adapter is None:
        return None
    wanted = _loaded_as(adapted)
    bases = sorted(
        r.model.fingerprint for r in candidates if r.model.adapter is None and _loaded_as(r) == wanted
    )
    return bases[0] if bases else None


def _loaded_as(record: RunRecord) -> tuple[object, ...]:
    """How a model was loaded and prompted, but for its adapter: a base must match all of it."""
    model = record.model
    prompting = (model.chat_template, model.fewshot_multiturn, model.system_prompt)
    return (model.backend, model.source, model.dtype, model.quantization, *prompting)


def reference_rank(record: RunRecord) -> int | None:
    """How good a reference the record's model is (lower is better); None when it is a variant.

    0: float32 weights as published. 1: a GGUF file dequantized to float32 with nothing more done
    to it — the closest to full precision a quantized-only release offers (so the native llama.cpp
    run and in-memory re-quantizations of the same file are measured against it).
    """
    model = record.model
    if model.dtype != REFERENCE_DTYPE or model.adapter is not None:
        return None
    if model.quantization is None:
        return 0
    if "(dequantized" in model.quantization and "+" not in model.quantization:
        return 1
    return None


def _precision(record: RunRecord) -> tuple[str, str | None]:
    return (record.model.dtype, record.model.quantization)
