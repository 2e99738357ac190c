"""Typed specifications of tasks, suites and datasets, loaded from YAML."""

from evalkit.specs.catalogue import Catalogue, builtin_task_dir, default_catalogue
from evalkit.specs.dataset import DatasetSpec, HubDataset, Mirror
from evalkit.specs.task import (
    AnswerSpec,
    GenerationSpec,
    SuiteEntry,
    SuiteSpec,
    TaskSpec,
    load_suite_file,
    load_task_file,
)

__all__ = [
    "AnswerSpec",
    "Catalogue",
    "DatasetSpec",
    "GenerationSpec",
    "HubDataset",
    "Mirror",
    "SuiteEntry",
    "SuiteSpec",
    "TaskSpec",
    "builtin_task_dir",
    "default_catalogue",
    "load_suite_file",
    "load_task_file",
]
