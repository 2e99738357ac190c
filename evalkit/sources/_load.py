"""`load_documents`: pick the copy of a task's data to read, read it, and make it canonical.

Resolution, in order: with `prefer: mirror` (the default) the first mirror that is on this
machine, then the hub; with `prefer: hub` the other way round. Which one was used is recorded
in `SourceFacts`, never silently assumed, and when nothing works the one-line error says what
to install.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.sources import _files, _hub
from evalkit.sources._types import Document, LoadedDocuments, Role, SourceFacts, documents_sha256
from evalkit.specs.dataset import HubDataset, Mirror
from evalkit.specs.task import TaskSpec

_log = logging.getLogger(__name__)


DocumentCheck = Callable[[Document], "str | None"]


def load_documents(
    task: TaskSpec,
    role: Role = "eval",
    *,
    document_problem: DocumentCheck | None = None,
    renders_prompt: bool = True,
) -> LoadedDocuments:
    """The task's documents for evaluation or for few-shot examples, preprocessed, in a fixed order.

    Few-shot documents come from `fewshot_mirrors` / `fewshot_hub_split`; a task that names
    neither draws its examples from the evaluation documents (the kind leaves out the document
    being asked about).

    `document_problem` is the task kind's check of one canonical document (what it needs, e.g.
    `choices` and `gold`), and `renders_prompt` whether the kind formats the template over it:
    both are checked on every document now, so a bad row fails before any model runs.
    """
    spec = task.dataset
    mirrors, hub = list(spec.mirrors), spec.hub
    if role == "fewshot":
        if not spec.fewshot_mirrors and spec.fewshot_hub_split is None:
            return load_documents(
                task, "eval", document_problem=document_problem, renders_prompt=renders_prompt
            )
        mirrors = list(spec.fewshot_mirrors)
        hub = (
            hub.model_copy(update={"split": spec.fewshot_hub_split})
            if hub and spec.fewshot_hub_split
            else None
        )
    raw, facts = _read(task, mirrors, hub)
    if not raw:
        raise DataError(f"{_where(task)}: {facts['location']} holds no documents")
    content_sha256 = documents_sha256(raw)  # before preprocessing, which might change rows in place
    documents = _canonical(task, raw, document_problem, renders_prompt)
    if spec.interleave_by:
        documents = _interleave(task, documents, spec.interleave_by)
    source = SourceFacts(**facts, num_documents=len(documents), content_sha256=content_sha256)
    return LoadedDocuments(documents=documents, source=source)


# --- choosing and reading a copy -------------------------------------------------------------------


def _read(
    task: TaskSpec, mirrors: list[Mirror], hub: HubDataset | None
) -> tuple[list[Document], dict[str, Any]]:
    unavailable: list[tuple[Mirror, str]] = []
    hub_failure: _hub.HubUnavailable | None = None
    if hub is not None and task.dataset.prefer == "hub":
        try:
            return _read_hub(hub)
        except _hub.HubUnavailable as exc:
            hub_failure = exc
    task_dir = Path(task.source_file).parent if task.source_file else Path.cwd()
    for mirror in mirrors:
        try:
            located = _files.locate(mirror, task_dir)
        except _files.MirrorUnavailable as exc:
            unavailable.append((mirror, str(exc)))
            continue
        facts = {
            "origin": "mirror" if mirror.package else "local",
            "format": mirror.format,
            "location": located.location,
            "split": mirror.split,
            "hub_id": _hub_id(task.dataset.hub),
            "version": located.version,
        }
        if hub_failure is not None:  # prefer: hub, but the hub failed; the facts say "mirror"/"local"
            _log.warning(
                "%s: using %s because the hub failed: %s", _where(task), located.location, hub_failure
            )
        return _files.read_mirror(mirror, located), facts
    if hub is not None and hub_failure is None:
        try:
            return _read_hub(hub)
        except _hub.HubUnavailable as exc:
            hub_failure = exc
    raise DataError(_nothing_loaded(task, hub, hub_failure, unavailable))


def _read_hub(hub: HubDataset) -> tuple[list[Document], dict[str, Any]]:
    rows = _hub.load_hub(hub, hub.split)
    facts = {
        "origin": "hub",
        "format": "hub",
        "location": f"{hub.path}:{hub.name}" if hub.name else hub.path,
        "split": hub.split,
        "hub_id": _hub_id(hub),
        "version": hub.revision,
    }
    return rows, facts


def _hub_id(hub: HubDataset | None) -> str | None:
    if hub is None:
        return None
    return f"{hub.path}:{hub.name}" if hub.name else hub.path


def _nothing_loaded(
    task: TaskSpec,
    hub: HubDataset | None,
    hub_failure: _hub.HubUnavailable | None,
    unavailable: list[tuple[Mirror, str]],
) -> str:
    """One line that says what was tried and what to do about it."""
    where = _where(task)
    hints = list(dict.fromkeys(m.install_hint for m, _ in unavailable if m.install_hint))
    looked = "; ".join(reason for _, reason in unavailable)
    if hub is None:
        if not unavailable:
            return f"{where}: the task names no dataset (give dataset.hub or dataset.mirrors)"
        return f"{where}: {looked}" + (f"; install it with: {' or '.join(hints)}" if hints else "")
    what = _hub.describe(hub, hub.split)
    assert hub_failure is not None
    if not unavailable:
        problem = (
            "the hub is unreachable" if hub_failure.unreachable else f"the hub failed: {hub_failure.reason}"
        )
        return f"{where}: {what} has no offline copy named in the task file and {problem}"
    problem = (
        "the hub is unreachable"
        if hub_failure.unreachable
        else f"loading it from the hub failed: {hub_failure.reason}"
    )
    advice = f"install it with: {' or '.join(hints)}" if hints else f"looked for: {looked}"
    return f"{where}: no offline copy of {what} is installed and {problem}; {advice}"


def _where(task: TaskSpec) -> str:
    return task.source_file or f"task {task.name!r}"


# --- making documents canonical --------------------------------------------------------------------


def _canonical(
    task: TaskSpec, raw: list[Document], document_problem: DocumentCheck | None, renders_prompt: bool
) -> list[Document]:
    """Preprocess, give every document a unique string id, and check it has what its kind needs."""
    preprocess = None
    if task.preprocess is not None:
        from evalkit.errors import SpecError, UnknownNameError
        from evalkit.sources.preprocessors import get_preprocessor

        try:
            preprocess = get_preprocessor(task.preprocess)
        except UnknownNameError as exc:
            raise SpecError(f"{task.where('preprocess')}: {exc}") from None
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(raw):
        document = dict(row)
        if preprocess is not None:
            try:
                document = preprocess(document)
            except Exception as exc:  # a row the preprocessor cannot read is a data problem, not a bug
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise DataError(
                    f"{_where(task)}: preprocessor {task.preprocess!r} failed on document {index}: "
                    f"{type(exc).__name__}: {detail}"
                ) from None
        native = document.get("id")
        document["id"] = str(native) if native is not None and native != "" else str(index)
        if document["id"] in seen:
            first, name = seen[document["id"]], document["id"]
            raise DataError(f"{_where(task)}: documents {first} and {index} share the id {name!r}")
        seen[document["id"]] = index
        _check(task, document, document_problem, renders_prompt)
        documents.append(document)
    return documents


def _check(
    task: TaskSpec, document: Document, document_problem: DocumentCheck | None, renders_prompt: bool
) -> None:
    problem = document_problem(document) if document_problem is not None else None
    if problem is None and renders_prompt:
        problem = _render_problem(task, document)
    if problem:
        raise DataError(f"{_where(task)}: document {document['id']!r}: {problem}")


def _render_problem(task: TaskSpec, document: Document) -> str | None:
    """Render the template and instruction now, so a field name typo fails before any model runs.

    Only what the kind will render is checked (the caller skips kinds that render no template,
    like perplexity); a document with per-choice `contexts` uses them in place of the template.
    """
    parts = [("instruction", task.instruction)]
    if document.get("contexts") is None:
        parts.append(("template", task.template))
    for field_name, text in parts:
        try:
            text.format(**document)
        except KeyError as exc:
            fields = ", ".join(sorted(document))
            return f"the {field_name} uses the field {{{exc.args[0]}}}, which is not among: {fields}"
        except (IndexError, ValueError, AttributeError, TypeError) as exc:
            return f"the {field_name} cannot be rendered: {exc}"
    return None


def _interleave(task: TaskSpec, documents: list[Document], field_name: str) -> list[Document]:
    """Round-robin over the groups (sorted by value): group A's 1st, group B's 1st, ..., A's 2nd, ..."""
    groups: dict[str, list[Document]] = {}
    for document in documents:
        if field_name not in document:
            raise DataError(
                f"{_where(task)}: document {document['id']!r} has no field {field_name!r} to interleave by"
            )
        groups.setdefault(str(document[field_name]), []).append(document)
    ordered = [groups[key] for key in sorted(groups)]
    result: list[Document] = []
    for depth in range(max(len(group) for group in ordered)):
        result.extend(group[depth] for group in ordered if depth < len(group))
    return result
