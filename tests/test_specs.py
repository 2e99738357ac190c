"""Task and suite specs: typed, validated, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.backends import parse_model_spec
from evalkit.errors import SpecError, UnknownNameError
from evalkit.specs import Catalogue, load_task_file

GOOD = """\
name: demo
kind: multiple_choice
dataset:
  mirrors:
    - {format: jsonl, path: data.jsonl, split: test}
template: "Q: {question}"
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_task_loads_with_defaults(tmp_path: Path) -> None:
    spec = load_task_file(write(tmp_path, GOOD))
    assert spec.kind == "multiple_choice"
    assert spec.target_delimiter == " " and spec.fewshot_delimiter == "\n\n"
    assert spec.dataset.mirrors[0].split == "test"
    assert spec.source_file and spec.source_file.endswith("demo.yaml")


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "num_fewshots: 5\n")
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert f"{path}:7:" in str(info.value)
    assert "num_fewshots" in str(info.value) and "'num_fewshot'" in str(info.value)


def test_nested_unknown_key_points_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    - {format: jsonl, path: data.jsonl, split: test}\n",
        "    - format: jsonl\n      path: data.jsonl\n      split: test\n      spilt: x\n",
    )
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert f"{path}:8:" in str(info.value) and "'split'" in str(info.value)


def test_wrong_type_names_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "num_fewshot: many\n")
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert f"{path}:7: num_fewshot:" in str(info.value)


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("multiple_choice", "multiple_choise"))
    with pytest.raises(SpecError, match=r"demo.yaml:2: kind"):
        load_task_file(path)


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "metrics: [acc\n")
    with pytest.raises(SpecError, match=r"demo.yaml:\d+: invalid YAML"):
        load_task_file(path)


def test_yaml_cannot_execute_code(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "preprocess: !function utils.process_docs\n")
    with pytest.raises(SpecError, match=r"demo.yaml:7"):
        load_task_file(path)
    path = write(tmp_path, GOOD + "summary: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match=r"demo.yaml:7"):
        load_task_file(path)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"demo.yaml:7: duplicate key 'kind'"):
        load_task_file(write(tmp_path, GOOD + "kind: generate\n"))


def test_catalogue_suggests_close_task_names(toy_catalogue: Catalogue) -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'toy_mc'"):
        toy_catalogue.task("toy_mcq")
    with pytest.raises(UnknownNameError, match=r"unknown suite 'toyy'; did you mean 'toy'"):
        toy_catalogue.suite("toyy")


def test_task_name_must_match_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD, name="other.yaml")
    with pytest.raises(SpecError, match="must match the file name"):
        Catalogue([tmp_path]).task("other")


def test_suite_with_unknown_task(toy_tasks: Path) -> None:
    (toy_tasks / "suites" / "bad.yaml").write_text("suite: bad\ntasks:\n  - {task: toy_mcc}\n")
    with pytest.raises(UnknownNameError, match=r"bad.yaml.*did you mean 'toy_mc'"):
        Catalogue([toy_tasks]).suite("bad")


def test_builtin_catalogue_files_all_validate() -> None:
    from evalkit.specs import default_catalogue

    catalogue = default_catalogue()
    for name in catalogue.task_names:
        assert catalogue.task(name).name == name
    for name in catalogue.suite_names:
        assert catalogue.suite(name).tasks


@pytest.mark.parametrize(
    ("text", "backend", "target", "options"),
    [
        ("smollm2-135m", "alias", "smollm2-135m", {}),
        ("smollm2-135m,dtype=bfloat16", "alias", "smollm2-135m", {"dtype": "bfloat16"}),
        ("hf:org/model,revision=abc", "transformers", "org/model", {"revision": "abc"}),
        ("gguf:/m/x.gguf", "gguf", "/m/x.gguf", {}),
        ("fake,seed=3", "fake", "", {"seed": "3"}),
    ],
)
def test_model_spec_parsing(text: str, backend: str, target: str, options: dict[str, str]) -> None:
    spec = parse_model_spec(text)
    assert (spec.backend, spec.target, spec.options) == (backend, target, options)


@pytest.mark.parametrize("text", ["", "fake,seed", "fake,seed=1,seed=2", "hf:"])
def test_bad_model_specs(text: str) -> None:
    with pytest.raises(SpecError):
        parse_model_spec(text)


def test_unknown_model_alias_suggests() -> None:
    from evalkit.backends import load_model

    with pytest.raises(UnknownNameError, match="did you mean 'smollm2-135m'"):
        load_model("smollm2-135")


def test_fake_option_typo_suggests() -> None:
    from evalkit.backends import load_model

    with pytest.raises(SpecError, match="unknown option 'sed'; did you mean 'seed'"):
        load_model("fake,sed=1")
