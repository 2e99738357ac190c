"""Older record versions, upgraded in memory to the current schema.

The store is append-only, so records of older writers stay on disk as they were written; the
reader upgrades each line before validating it. Each step is a plain function on the JSON object
(one per version), so what a version change did to old data can be read here in one place.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from evalkit.results._efficiency import EfficiencyFigures

log = logging.getLogger("evalkit.results")

# How schema 1 counted `limit` per task kind (it stored the number with no unit).
_V1_LIMIT_UNITS = {"long_context": "samples_per_cell", "efficiency": "none"}


@dataclass
class Upgraded:
    """A record's JSON at the current version, and what the upgrade could not carry over."""

    data: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # dotted paths of values that have no v2 field


def upgrade_record(data: dict[str, Any]) -> Upgraded:
    """`data` (a record's JSON of version 1 or 2) at version 2; `data` itself is not changed."""
    version = data.get("schema_version")
    if version == 2:
        return Upgraded(data)
    if version == 1:
        return upgrade_v1(data)
    raise ValueError(f"no upgrade from schema version {version!r}")


def upgrade_v1(data: dict[str, Any]) -> Upgraded:
    """Schema 1 -> 2: a RunConfig that states units and what ran, and typed efficiency figures.

    - config: `limit_unit` from the task kind (long_context counted samples per grid cell,
      efficiency took no limit), `num_documents` = task.num_samples, `executor` = task.kind,
      `batch_sizes` unknown (empty); limit, seed and batch size as stored.
    - efficiency: the engine's keys become `EfficiencyFigures` fields as they are; keys that no
      evalkit writer produced (hand-written records) have no typed home and are dropped, listed in
      `dropped` (the store logs them); a payload left with no figure at all becomes None.
    """
    upgraded = copy.deepcopy(data)
    upgraded["schema_version"] = 2
    task = upgraded.get("task")
    config = upgraded.get("config")
    if isinstance(task, dict) and isinstance(config, dict):
        kind = task.get("kind")
        config.setdefault("limit_unit", _V1_LIMIT_UNITS.get(str(kind), "documents"))
        config.setdefault("batch_sizes", [])
        config.setdefault("num_documents", task.get("num_samples"))
        config.setdefault("executor", kind)
    dropped: list[str] = []
    efficiency = upgraded.get("efficiency")
    if isinstance(efficiency, dict):
        known = EfficiencyFigures.model_fields
        dropped = [f"efficiency.{key}" for key in efficiency if key not in known]
        kept = {key: value for key, value in efficiency.items() if key in known}
        upgraded["efficiency"] = kept or None
    return Upgraded(upgraded, dropped)
