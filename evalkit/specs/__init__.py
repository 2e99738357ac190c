"""Typed specifications of tasks, suites and datasets, loaded from YAML."""

from evalkit.specs._numbers import FiniteFloat, StrictPositiveInt
from evalkit.specs._validate import validate_located
from evalkit.specs._yaml import LocatedYaml, load_located_yaml
from evalkit.specs.catalogue import Catalogue, builtin_task_dir, default_catalogue
from evalkit.specs.dataset import DatasetSpec, HubDataset, Mirror
from evalkit.specs.task import (
    DEFAULT_DEPTHS,
    DEFAULT_LENGTHS,
    RULER_THRESHOLD,
    AnswerSpec,
    EfficiencySpec,
    GenerationSpec,
    LongContextSpec,
    SuiteEntry,
    SuiteSpec,
    SweepSpec,
    TaskSpec,
    load_suite_file,
    load_task_file,
)

__all__ = [
    "DEFAULT_DEPTHS",
    "DEFAULT_LENGTHS",
    "RULER_THRESHOLD",
    "AnswerSpec",
    "Catalogue",
    "DatasetSpec",
    "EfficiencySpec",
    "FiniteFloat",
    "GenerationSpec",
    "HubDataset",
    "LocatedYaml",
    "LongContextSpec",
    "Mirror",
    "StrictPositiveInt",
    "SuiteEntry",
    "SuiteSpec",
    "SweepSpec",
    "TaskSpec",
    "builtin_task_dir",
    "default_catalogue",
    "load_located_yaml",
    "load_suite_file",
    "load_task_file",
    "validate_located",
]
