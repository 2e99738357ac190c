"""Chat models: the chat template on every document kind, few-shot as multi-turn, a system prompt.

The fake backend's template (`<|role|>\\nTEXT\\n` per turn, then `<|assistant|>\\n`) shows the
plumbing; the real tier renders ARC-Easy with SmolLM2-135M-Instruct's own template and compares it
with lm-eval 0.4.13's `fewshot_context` + `construct_requests` for the same document and shots.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fabricate_results import run_main

from evalkit.backends import Backend, load_model
from evalkit.backends.fake import FakeBackend, FakeOptions
from evalkit.errors import SpecError
from evalkit.kinds.base import PreparedSample
from evalkit.kinds.documents import LOGLIKELIHOOD, MULTIPLE_CHOICE, PERPLEXITY
from evalkit.kinds.prompt import build_context, build_conversation
from evalkit.requests import ChatMessage, GenerateRequest, LoglikelihoodRequest, RollingRequest
from evalkit.results import ResultsStore
from evalkit.runner import EvalConfig, RunSummary, evaluate
from evalkit.specs import Catalogue, TaskSpec
from evalkit.specs.dataset import DatasetSpec

SHOT = {"id": "s", "q": "one", "choices": ["1", "2"], "gold": 0, "topic": "x"}
DOC = {"id": "d", "q": "two", "choices": ["1", "2"], "gold": 1, "topic": "numbers"}


def task(**fields: object) -> TaskSpec:
    base: dict[str, object] = {"name": "t", "kind": "multiple_choice", "dataset": DatasetSpec()}
    base.update({"template": "Q: {q}\nA:", **fields})
    return TaskSpec.model_validate(base)


def fake(**options: Any) -> FakeBackend:
    return FakeBackend(options=FakeOptions(chat_template=True, **options))


def config(tmp_path: Path, **fields: Any) -> EvalConfig:
    return EvalConfig(results_dir=tmp_path / "results", show_progress=False, **fields)


# -- the conversation ---------------------------------------------------------------------------


def test_conversation_text_is_the_plain_prompt() -> None:
    spec = task(instruction="About {topic}.\n\n")
    conversation = build_conversation(spec, DOC, [SHOT], MULTIPLE_CHOICE.kind.fewshot_answer)
    assert conversation.text() == "About numbers.\n\nQ: one\nA: 1\n\nQ: two\nA:"
    assert conversation.text() == build_context(spec, DOC, [SHOT], MULTIPLE_CHOICE.kind.fewshot_answer)


def test_conversation_messages_single_and_multi_turn() -> None:
    """lm-eval's layout: the instruction (joined to the system prompt) is the system turn; single
    turn puts shots and query in one user turn, multi-turn gives each shot a user and an assistant turn."""
    spec = task(instruction="About {topic}.")
    conversation = build_conversation(spec, DOC, [SHOT], MULTIPLE_CHOICE.kind.fewshot_answer, "Be brief.")
    system = ChatMessage("system", "Be brief.\n\nAbout numbers.")  # maybe_delimit with "\n\n"
    assert conversation.messages(multiturn=False) == (
        system,
        ChatMessage("user", "Q: one\nA: 1\n\nQ: two\nA:"),
    )
    assert conversation.messages(multiturn=True) == (
        system,
        ChatMessage("user", "Q: one\nA:"),
        ChatMessage("assistant", "1"),
        ChatMessage("user", "Q: two\nA:"),
    )
    bare = build_conversation(task(), DOC, [], MULTIPLE_CHOICE.kind.fewshot_answer)
    assert bare.messages(multiturn=True) == (ChatMessage("user", "Q: two\nA:"),)
    # A system prompt ending in whitespace is joined without another delimiter.
    spaced = build_conversation(spec, DOC, [], MULTIPLE_CHOICE.kind.fewshot_answer, "Be brief.\n")
    assert spaced.system == "Be brief.\nAbout numbers."


def test_fake_template_renders_turns_and_its_system_prompt() -> None:
    assert fake().apply_chat_template("hi") == "<|user|>\nhi\n<|assistant|>\n"
    assert fake(system_prompt="S").apply_chat_template("hi") == "<|system|>\nS\n<|user|>\nhi\n<|assistant|>\n"
    turns = [ChatMessage("user", "a"), ChatMessage("assistant", "b"), ChatMessage("user", "c")]
    assert fake().apply_chat_template(turns) == "<|user|>\na\n<|assistant|>\nb\n<|user|>\nc\n<|assistant|>\n"


# -- every kind under the chat template ---------------------------------------------------------


def test_multiple_choice_continuations_follow_the_assistant_prefix() -> None:
    """lm-eval drops the target delimiter under a chat template: ' 1' becomes '1'."""
    sample = MULTIPLE_CHOICE.sample(task(), DOC, [SHOT], fake(fewshot_multiturn=True, system_prompt="S"))
    context = "<|system|>\nS\n<|user|>\nQ: one\nA:\n<|assistant|>\n1\n<|user|>\nQ: two\nA:\n<|assistant|>\n"
    assert sample.requests == [LoglikelihoodRequest(context, "1"), LoglikelihoodRequest(context, "2")]
    assert sample.prompt == context  # the sample log shows the prompt as sent
    plain = MULTIPLE_CHOICE.sample(task(), DOC, [SHOT], FakeBackend())
    assert plain.requests[0] == LoglikelihoodRequest("Q: one\nA: 1\n\nQ: two\nA:", " 1")


def test_partial_scoring_renders_one_conversation_per_choice() -> None:
    """Winogrande-style documents: each choice has its own query; the shots are the same."""
    spec = task(template="{q}")
    shot = {"id": "s", "q": "A _ b", "contexts": ["A x", "A y"], "choices": ["b", "b"], "gold": 1}
    doc = {"id": "d", "q": "C _ d", "contexts": ["C x", "C y"], "choices": ["d", "d"], "gold": 0}
    sample = MULTIPLE_CHOICE.sample(spec, doc, [shot], fake(fewshot_multiturn=True))
    head = "<|user|>\nA y\n<|assistant|>\nb\n"
    assert sample.requests == [
        LoglikelihoodRequest(head + "<|user|>\nC x\n<|assistant|>\n", "d"),
        LoglikelihoodRequest(head + "<|user|>\nC y\n<|assistant|>\n", "d"),
    ]
    assert sample.prompt == sample.requests[0].context  # the gold choice's context


def test_cloze_keeps_its_continuation_and_perplexity_is_untouched() -> None:
    """lm-eval's loglikelihood requests keep the target as the task writes it, chat or not."""
    spec = task(kind="loglikelihood", template="{text}")
    doc = {"id": "c", "text": "The cat sat on the", "target": "mat"}
    (request,) = LOGLIKELIHOOD.sample(spec, doc, [], fake()).requests
    assert request == LoglikelihoodRequest("<|user|>\nThe cat sat on the\n<|assistant|>\n", " mat")
    prose = {"id": "p", "text": "Some prose."}
    ppl = PERPLEXITY.sample(task(kind="perplexity"), prose, [], fake()).requests
    assert ppl == [RollingRequest("Some prose.")]


def test_run_records_the_options_and_logs_the_rendered_prompts(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    models = [
        "fake,chat_template=true",
        "fake,chat_template=true,fewshot_multiturn=true,system_prompt=Be brief.",
    ]
    summary = evaluate(models, ["toy_gen"], config=config(tmp_path, num_fewshot=1), catalogue=toy_catalogue)
    plain, multi = summary.records
    assert (plain.model.fewshot_multiturn, plain.model.system_prompt) == (False, None)
    assert (multi.model.fewshot_multiturn, multi.model.system_prompt) == (True, "Be brief.")
    assert plain.config.request_key != multi.config.request_key  # not taken for each other's record
    store = ResultsStore(tmp_path / "results")
    plain_prompt = store.read_samples(plain)[0].prompt
    multi_prompt = store.read_samples(multi)[0].prompt
    assert plain_prompt.startswith("<|user|>\nQ: ") and plain_prompt.count("<|user|>") == 1
    assert multi_prompt.startswith("<|system|>\nBe brief.\n<|user|>\nQ: ")
    assert multi_prompt.count("<|user|>") == 2 and multi_prompt.endswith("A:\n<|assistant|>\n")


def test_a_stored_chat_record_is_not_reused_for_another_system_prompt(
    toy_catalogue: Catalogue, tmp_path: Path, fresh_cache: Path
) -> None:
    def run(model: str) -> RunSummary:
        return evaluate([model], ["toy_mc"], config=config(tmp_path), catalogue=toy_catalogue)

    first, again = (
        run("fake,chat_template=true,system_prompt=A"),
        run("fake,chat_template=true,system_prompt=A"),
    )
    assert first.records and not first.reused and again.reused and not again.records
    for other in ("fake,chat_template=true,system_prompt=B", "fake", "fake,chat_template=true"):
        assert run(other).records, other  # each asks for other prompts: run, not reused


def test_long_context_prompts_open_with_the_system_prompt(tmp_path: Path, fresh_cache: Path) -> None:
    """Long-context prompts are one user turn, after the model's system prompt (counted in the length)."""
    from evalkit.specs import builtin_task_dir

    catalogue = Catalogue([builtin_task_dir()])
    model = "fake,chat_template=true,system_prompt=S"
    summary = evaluate([model], ["passkey"], config=config(tmp_path, limit=1), catalogue=catalogue)
    (record,) = summary.records
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert samples and all(s.prompt.startswith("<|system|>\nS\n<|user|>\n") for s in samples)


@pytest.mark.parametrize("option", ["fewshot_multiturn=true", "system_prompt=Be brief."])
def test_chat_only_options_need_the_chat_template(option: str) -> None:
    name = option.split("=")[0]
    with pytest.raises(SpecError, match=f"option {name} needs chat_template=true"):
        load_model(f"fake,{option}")


def test_cli_refuses_a_system_prompt_without_chat_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "-m", "fake,system_prompt=x", "-t", "arc_easy", "--results", str(tmp_path)]
    code, _, err = run_main(args, capsys)
    assert code == 2
    assert (
        err.strip() == "error: --model 'fake,system_prompt=x': option system_prompt needs chat_template=true"
    )


# -- the real template, against lm-eval ------------------------------------------------------------

SYSTEM = "You are a careful science tutor."


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    from evalkit.specs import builtin_task_dir

    return Catalogue([builtin_task_dir()])


@pytest.fixture(scope="module")
def smollm2() -> Iterator[Callable[[str, bool], Backend]]:
    """SmolLM2-135M-Instruct with its chat template and SYSTEM, loaded once per option set (and
    released with the module, before the interpreter exits: llama.cpp's finaliser needs its library)."""
    loaded: dict[tuple[str, bool], Backend] = {}

    def load(backend: str, multiturn: bool) -> Backend:
        if (backend, multiturn) not in loaded:
            turns = ",fewshot_multiturn=true" if multiturn else ""
            spec = f"{backend}smollm2-135m,chat_template=true,system_prompt={SYSTEM}{turns}"
            loaded[backend, multiturn] = load_model(spec)
        return loaded[backend, multiturn]

    yield load
    loaded.clear()


def arc_easy_rows(catalogue: Catalogue) -> tuple[TaskSpec, list[dict[str, Any]]]:
    """ARC-Easy's first three validation rows, hub-shaped as lm-eval reads them: a document, 2 shots."""
    from evalkit.sources._files import locate, read_mirror

    spec = catalogue.task("arc_easy")
    mirror = spec.dataset.fewshot_mirrors[0]
    return spec, read_mirror(mirror, locate(mirror, Path(spec.source_file or ".").parent))[:3]


def our_sample(spec: TaskSpec, rows: list[dict[str, Any]], backend: Backend) -> PreparedSample:
    from evalkit.sources._load import _canonical as canonical

    doc, *shots = canonical(spec, rows, MULTIPLE_CHOICE.kind.document_problem, True)
    return MULTIPLE_CHOICE.sample(spec, doc, shots, backend)


@pytest.mark.real
@pytest.mark.parametrize("multiturn", [True, False])
def test_smollm2_arc_easy_prompt_equals_lm_eval(
    multiturn: bool, catalogue: Catalogue, smollm2: Callable[[str, bool], Backend]
) -> None:
    """ARC-Easy, 2 shots, a system prompt: evalkit's requests equal lm-eval 0.4.13's, built with
    `apply_chat_template`, `fewshot_as_multiturn` and `system_instruction` and HFLM's own
    `apply_chat_template` over SmolLM2-135M-Instruct's tokenizer."""
    import datasets
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks._yaml_loader import load_yaml

    backend = smollm2("", multiturn)
    spec, rows = arc_easy_rows(catalogue)
    ours = our_sample(spec, rows, backend)

    config = load_yaml(Path(os.path.dirname(lm_eval.tasks.__file__)) / "arc/arc_easy.yaml")
    config = {key: value for key, value in config.items() if key not in ("tag", "group")}
    dataset = datasets.Dataset.from_list(rows)
    config["custom_dataset"] = lambda **_: datasets.DatasetDict(
        {split: dataset for split in ("train", "validation", "test")}
    )
    theirs = ConfigurableTask(config=config)
    theirs.sampler.sample = lambda n, eval_doc=None: rows[1 : 1 + n]  # the same shots
    hflm = SimpleNamespace(tokenizer=backend.hf_tokenizer, chat_template_args={})  # type: ignore[attr-defined]
    their_doc = theirs.eval_docs[0]
    context = theirs.fewshot_context(
        their_doc,
        2,
        system_instruction=SYSTEM,
        apply_chat_template=True,
        fewshot_as_multiturn=multiturn,
        chat_template=partial(HFLM.apply_chat_template, hflm),
    )
    instances = theirs.construct_requests(
        their_doc, context, metadata=("arc_easy", 0, 0), apply_chat_template=True
    )
    pairs = [(r.context, r.continuation) for r in ours.requests if isinstance(r, LoglikelihoodRequest)]
    assert pairs == [tuple(i.arguments[:2]) for i in instances]
    assert len(pairs) == len(rows[0]["choices"]["text"])
    assert ours.prompt == context
    assert context.count("<|im_start|>user") == (3 if multiturn else 1)
    assert context.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    print(json.dumps({"multiturn": multiturn, "prompt": context}))


@pytest.mark.real
def test_llamacpp_renders_the_conversation_as_transformers_does(
    catalogue: Catalogue, smollm2: Callable[[str, bool], Backend]
) -> None:
    """llama.cpp renders the GGUF's template itself: the same multi-turn prompt, token for token."""
    spec, rows = arc_easy_rows(catalogue)
    from evalkit.backends.capabilities import PromptTokens

    native, dequantized = smollm2("llamacpp:", True), smollm2("", True)
    ours = our_sample(spec, rows, native)
    assert ours == our_sample(spec, rows, dequantized)
    assert isinstance(native, PromptTokens) and isinstance(dequantized, PromptTokens)
    ids = native.prompt_token_ids(ours.prompt)
    assert ids == dequantized.prompt_token_ids(ours.prompt)
    assert ids.count(native.tokenizer.encode("<|im_start|>")[0]) == 7  # system, 3 user, 3 assistant


def test_generate_requests_are_wrapped(toy_catalogue: Catalogue) -> None:
    from evalkit.kinds.documents import GENERATE

    spec = toy_catalogue.task("toy_gen")
    doc = {"id": "g", "question": "Capital of France?", "answers": ["Paris"]}
    (request,) = GENERATE.sample(spec, doc, [], fake(system_prompt="S")).requests
    assert isinstance(request, GenerateRequest)
    assert request.context == "<|system|>\nS\n<|user|>\nQ: Capital of France?\nA:\n<|assistant|>\n"
    assert request.stop == ("\n",)
