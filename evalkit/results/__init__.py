"""Run records: the versioned schema, and the JSON Lines store that keeps them."""

from evalkit.results.schema import (
    SCHEMA_VERSION,
    DataSourceFacts,
    HostFacts,
    LongContextMatrix,
    MetricValue,
    RunConfig,
    RunRecord,
    SampleLog,
    TaskFacts,
)
from evalkit.results.store import ReadProblem, ResultsStore

__all__ = [
    "SCHEMA_VERSION",
    "DataSourceFacts",
    "HostFacts",
    "LongContextMatrix",
    "MetricValue",
    "ReadProblem",
    "ResultsStore",
    "RunConfig",
    "RunRecord",
    "SampleLog",
    "TaskFacts",
]
