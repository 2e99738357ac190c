"""Time order and display names: the two facts every view needs before it chooses anything."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, datetime

from evalkit.errors import DataError
from evalkit.results import RunRecord

MIN_SUFFIX = 8  # fingerprint characters shown when two models share a display name


def in_time_order(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Records sorted by finish time; ties keep store order, so the later line wins."""
    indexed = sorted(enumerate(records), key=lambda item: (finished_time(item[1]), item[0]))
    return [record for _, record in indexed]


def finished_time(record: RunRecord) -> datetime:
    """``finished_at`` as an aware time; a record whose time cannot be read is a DataError."""
    try:
        moment = datetime.fromisoformat(record.finished_at)
    except ValueError:
        raise DataError(
            f"record {record.record_id}: finished_at {record.finished_at!r} is not an ISO 8601 time"
        ) from None
    # Naive times are written as UTC by evalkit; comparing them with aware ones needs a zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def latest_per_key(ordered: Sequence[RunRecord], key: Callable[[RunRecord], Hashable]) -> list[RunRecord]:
    """The last record per key, in time order (input must already be in time order)."""
    latest: dict[Hashable, RunRecord] = {}
    for record in ordered:
        latest.pop(key(record), None)  # re-insert so dict order follows the latest record
        latest[key(record)] = record
    return list(latest.values())


def display_names(records: Iterable[RunRecord]) -> dict[str, str]:
    """Model fingerprint -> display name; a fingerprint prefix tells apart models sharing a name."""
    fingerprints_by_name: dict[str, set[str]] = defaultdict(set)
    for record in records:
        fingerprints_by_name[record.model.name].add(record.model.fingerprint)
    names: dict[str, str] = {}
    for name, fingerprints in fingerprints_by_name.items():
        if len(fingerprints) == 1:
            names[fingerprints.pop()] = name
            continue
        width = MIN_SUFFIX
        while len({fp[:width] for fp in fingerprints}) < len(fingerprints):
            width += 4
        names.update({fp: f"{name}@{fp[:width]}" for fp in fingerprints})
    return names
