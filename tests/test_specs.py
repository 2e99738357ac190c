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


# -- issue 10 case 4: YAML holds plain values only, loads in one pass, within limits ---------------


@pytest.mark.parametrize(
    ("extra", "line", "tag"),
    [
        ("generation: !function\n  max_tokens: 3\n", 7, "'!function'"),  # a tag on a mapping
        ("metrics: !!python/name:os.system [acc]\n", 7, "'!!python/name:os.system'"),  # on a list
        ("tags: !!set {a: null}\n", 7, "'!!set'"),
        ("answer:\n  regex: !!binary aGk=\n", 8, "'!!binary'"),
        ("!custom summary: x\n", 7, "'!custom'"),  # on a key
        ("summary: !!timestamp 2024-01-01\n", 7, "'!!timestamp'"),
    ],
)
def test_yaml_tags_beyond_standard_scalars_are_refused(
    tmp_path: Path, extra: str, line: int, tag: str
) -> None:
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert str(info.value).startswith(f"{path}:{line}: YAML tag {tag} is not supported")


def test_standard_scalar_tags_and_plain_yaml_values_load_as_written(tmp_path: Path) -> None:
    text = GOOD.replace('template: "Q: {question}"', "template: !!str 123") + (
        "num_fewshot: !!int 2\nsummary: 2024-01-01\npublished: {m/acc: 1e-1, n/acc: !!float 1}\n"
    )
    spec = load_task_file(write(tmp_path, text))
    assert spec.template == "123" and spec.num_fewshot == 2
    assert spec.summary == "2024-01-01"  # a date-looking value stays the text written, never a date
    assert spec.published == {"m/acc": 0.1, "n/acc": 1.0}  # YAML 1.2 exponent floats are numbers


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("num_fewshot: !!int abc\n", ":7: 'abc' is not a valid !!int"),
        ("answer: {ignore_case: !!bool maybe}\n", ":7: 'maybe' is not a valid !!bool"),
        ("fewshot_seed: " + "9" * 5000 + "\n", ":7: '999"),
        ("tags: [&a x, *a]\n", ":7: YAML aliases (*a) are not supported"),
        ("? [a, b]\n: 1\n", ":7: a mapping key must be a plain string"),
        ("---\nname: again\n", ":7: expected one YAML document, found a second"),
        ("summary: \x07\n", ":7: invalid YAML: character"),
    ],
)
def test_malformed_yaml_values_are_spec_errors_at_their_line(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert str(info.value).startswith(f"{path}{message}")


def test_deep_nesting_is_refused_with_its_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "tags: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(SpecError, match=rf"^{path}:7: nested deeper than 64 levels$"):
        load_task_file(path)
    block = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(1, 500))
    path = write(tmp_path, GOOD + "params:\n" + block)
    with pytest.raises(SpecError, match=rf"^{path}:71: nested deeper than 64 levels$"):
        load_task_file(path)


def test_files_over_the_size_limit_are_refused_before_parsing(tmp_path: Path) -> None:
    from evalkit.specs._yaml import MAX_BYTES

    path = write(tmp_path, GOOD + "summary: " + "x" * MAX_BYTES + "\n")
    with pytest.raises(
        SpecError, match=rf"^{path}: file is \d+ bytes, over the 1048576-byte \(1 MiB\) limit$"
    ):
        load_task_file(path)


def test_a_large_file_is_parsed_once_with_no_reserialisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old loader composed a node tree, then serialised and re-parsed every scalar: 15 s per MB.
    import yaml

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was parsed more than once")

    for name in ("serialize", "safe_load", "compose", "load"):
        monkeypatch.setattr(yaml, name, forbidden)
    entries = "".join(f"  model-{i:06d}/acc: 0.{i % 1000:03d}\n" for i in range(20_000))
    spec = load_task_file(write(tmp_path, GOOD + "published:\n" + entries))
    assert len(spec.published) == 20_000 and spec.published["model-000007/acc"] == 0.007


def test_a_fifo_or_folder_is_refused_without_reading(tmp_path: Path) -> None:
    import contextlib
    import os
    import threading

    fifo = tmp_path / "demo.yaml"
    os.mkfifo(fifo)

    def unblock_an_old_reader() -> None:
        # Opening a FIFO to read blocks until a writer comes; give a loader that opens it one, so
        # this test fails rather than hangs if the file is read.
        threading.Event().wait(2)
        # ENXIO when nobody is reading: the loader refused the FIFO, as it should.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock_an_old_reader, daemon=True).start()
    with pytest.raises(SpecError, match=rf"^{fifo}: not a regular file$"):
        load_task_file(fifo)
    with pytest.raises(SpecError, match=rf"^{tmp_path}: not a regular file$"):
        load_task_file(tmp_path)


def test_non_utf8_text_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_bytes(GOOD.encode() + b"summary: caf\xe9\n")
    with pytest.raises(SpecError, match=rf"^{path}:7: not UTF-8 text \(byte 0xe9\)$"):
        load_task_file(path)


# -- issue 10 case 5: numbers are strict and finite --------------------------------------------------

LONG = """\
name: demo
kind: long_context
long_context:
  generator: passkey
  lengths: [256, 512]
"""
EFFICIENCY = "name: demo\nkind: efficiency\nefficiency:\n  min_seconds: 2\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LONG.replace("256,", "'256',"), ":5: long_context.lengths.0: Input should be a valid integer"),
        (LONG + "  threshold: .nan\n", ":6: long_context.threshold: Input should be a finite number"),
        (LONG + "  depths: [0.5, .inf]\n", ":6: long_context.depths.1: Input should be a finite number"),
        (LONG + "  samples: 2.0\n", ":6: long_context.samples: Input should be a valid integer"),
        (EFFICIENCY.replace("2", ".inf"), ":4: efficiency.min_seconds: Input should be a finite number"),
        (EFFICIENCY.replace("2", '"2"'), ":4: efficiency.min_seconds: Input should be a valid number"),
        (EFFICIENCY + "  isolate: 'no'\n", ":5: efficiency.isolate: Input should be a valid boolean"),
        (EFFICIENCY + "  timeout_s: true\n", ":5: efficiency.timeout_s: Input should be a valid number"),
        (GOOD + "num_fewshot: true\n", ":7: num_fewshot: Input should be a valid integer"),
        (GOOD + "published: {m/acc: '0.5'}\n", ":7: published.m/acc: Input should be a valid number"),
        (GOOD + "published: {m/acc: -.inf}\n", ":7: published.m/acc: Input should be a finite number"),
    ],
)  # fmt: skip
def test_spec_numbers_are_strict_and_finite(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert str(info.value).startswith(f"{path}{message}")


def test_an_int_is_accepted_where_a_float_is_meant(tmp_path: Path) -> None:
    spec = load_task_file(write(tmp_path, EFFICIENCY))
    assert spec.efficiency is not None and spec.efficiency.min_seconds == 2.0
    spec = load_task_file(write(tmp_path, LONG + "  depths: [0, 1]\n  relative_fraction: 1\n"))
    assert spec.long_context is not None and spec.long_context.depths == [0.0, 1.0]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{task: toy_mc, limit: '5'}", "bad.yaml:3: tasks.0.limit: Input should be a valid integer"),
        ("{task: toy_mc, num_fewshot: no}", "bad.yaml:3: tasks.0.num_fewshot: Input should be a valid int"),
        ("{task: toy_mc, depths: [.nan]}", "bad.yaml:3: tasks.0.depths.0: Input should be a finite number"),
        ("{task: toy_mc, sweep: [1.5]}", "bad.yaml:3: tasks.0.sweep.0: Input should be a valid integer"),
    ],
)  # fmt: skip
def test_suite_numbers_are_strict(toy_tasks: Path, entry: str, message: str) -> None:
    (toy_tasks / "suites" / "bad.yaml").write_text(f"suite: bad\ntasks:\n  - {entry}\n")
    with pytest.raises(SpecError, match=message):
        Catalogue([toy_tasks]).suite("bad")


def test_one_task_name_in_two_of_the_users_folders_is_an_error_naming_both(tmp_path: Path) -> None:
    """It used to take the last folder's silently; shadowing a built-in task stays allowed."""
    from evalkit.errors import SpecError
    from evalkit.specs import default_catalogue

    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "mine.yaml").write_text("name: mine\nkind: efficiency\n")
    (first / "arc_easy.yaml").write_text("name: arc_easy\nkind: efficiency\n")  # shadows the built-in
    catalogue = default_catalogue([first, second])
    with pytest.raises(SpecError, match=r"task 'mine' is defined twice: .*a/mine\.yaml and .*b/mine\.yaml"):
        catalogue.task("mine")
    assert catalogue.task("arc_easy").kind == "efficiency"
    assert default_catalogue([first]).task("mine").kind == "efficiency"


@pytest.mark.parametrize(
    ("answer", "line", "field"),
    [
        ('  regex: "The answer is (\\\\d+"\n', 8, "answer.regex"),
        ('  regex: "(\\\\d+)"\n  flexible_regex: "[0-9"\n', 9, "answer.flexible_regex"),
        ('  regexes_to_ignore: [",", "(?P<x"]\n', 8, "answer.regexes_to_ignore"),
    ],
)
def test_an_answer_regex_that_does_not_compile_names_its_file_and_line(
    tmp_path: Path, answer: str, line: int, field: str
) -> None:
    text = GOOD.replace("kind: multiple_choice", "kind: generate") + "answer:\n" + answer
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_task_file(path)
    assert str(info.value).startswith(f"{path}:{line}: {field}")
    assert "does not compile" in str(info.value)
