"""Fine-tuned variants (`adapter=PATH`, `merge=true`) of the transformers backend, on tiny models.

The adapters are made here with PEFT on a tiny random llama (`init_lora_weights=False`, so the
low-rank update is not zero and really changes the numbers). The real demonstration — a LoRA
fine-tune of SmolLM2-135M and its paired gain on a held-out split — is the `real` test at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")  # the finetune extra; in dev, so CI has it (a skip fails there)

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.cli.main import cli  # noqa: E402
from evalkit.errors import SpecError  # noqa: E402
from evalkit.requests import LoglikelihoodRequest  # noqa: E402
from tests.conftest import write_toy_tasks  # noqa: E402
from tests.conftest_hf import save_tiny_model  # noqa: E402

REQUESTS = [
    LoglikelihoodRequest(context="The quick brown fox", continuation=" jumps over the lazy dog."),
    LoglikelihoodRequest(context="Question: Which gas do plants absorb?", continuation=" carbon dioxide"),
    LoglikelihoodRequest(context="Water boils at", continuation=" one hundred degrees"),
]


def _save_adapter(model: Any, folder: Path, seed: int = 1) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama, a LoRA adapter for it, and one for a llama of another width."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny-adapters")
    base = save_tiny_model(root, "llama")
    adapter = _save_adapter(AutoModelForCausalLM.from_pretrained(str(base)), root / "adapter")
    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=512,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    foreign = _save_adapter(other, root / "foreign-adapter")
    return {"base": base, "adapter": adapter, "foreign": foreign, "root": root}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


def _load(spec: str) -> TransformersBackend:
    backend = load_model(spec)
    assert isinstance(backend, TransformersBackend)
    return backend


def _logprobs(backend: TransformersBackend) -> list[float]:
    return [result.logprob for result in backend.loglikelihood(REQUESTS)]


def test_adapter_changes_the_numbers_and_merging_keeps_them(tiny: dict[str, Path]) -> None:
    base = _load(f"hf:{tiny['base']}")
    adapted = _load(f"hf:{tiny['base']},adapter={tiny['adapter']}")
    merged = _load(f"hf:{tiny['base']},adapter={tiny['adapter']},merge=true")
    plain, lora, folded = _logprobs(base), _logprobs(adapted), _logprobs(merged)
    assert max(abs(a - b) for a, b in zip(plain, lora, strict=True)) > 1e-2  # the adapter is applied
    assert max(abs(a - b) for a, b in zip(lora, folded, strict=True)) <= 1e-4  # merging is exact
    # Same class as the base: every scoring path of the backend runs on the adapted model.
    assert type(adapted.model).__name__ == type(merged.model).__name__ == type(base.model).__name__


def test_facts_name_base_and_adapter_and_fingerprints_keep_them_apart(tiny: dict[str, Path]) -> None:
    import hashlib

    facts = {
        name: _load(spec).describe()
        for name, spec in {
            "base": f"hf:{tiny['base']}",
            "again": f"hf:{tiny['base']}",
            "adapted": f"hf:{tiny['base']},adapter={tiny['adapter']}",
            "merged": f"hf:{tiny['base']},adapter={tiny['adapter']},merge=true",
        }.items()
    }
    assert facts["base"].adapter is None and facts["base"].fingerprint == facts["again"].fingerprint
    digest = hashlib.sha256(
        (tiny["adapter"] / "adapter_config.json").read_bytes()
        + (tiny["adapter"] / "adapter_model.safetensors").read_bytes()
    ).hexdigest()
    adapted, merged = facts["adapted"], facts["merged"]
    assert adapted.adapter is not None and adapted.adapter.startswith(f"lora r=4 sha256:{digest[:12]}")
    assert merged.adapter is not None and "(merged)" in merged.adapter
    assert len({facts[n].fingerprint for n in ("base", "adapted", "merged")}) == 3
    # Same base: the source and the parameter count (LoRA matrices not counted) are the base's.
    for variant in (adapted, merged):
        assert (variant.source, variant.parameters) == (facts["base"].source, facts["base"].parameters)


def test_editing_the_adapter_weights_changes_the_fingerprint(tiny: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    copy = Path(shutil.copytree(tiny["adapter"], tmp_path / "edited"))
    weights = copy / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] * 1.5
    save_file(tensors, str(weights))
    original = _load(f"hf:{tiny['base']},adapter={tiny['adapter']}").describe().fingerprint
    assert _load(f"hf:{tiny['base']},adapter={copy}").describe().fingerprint != original


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root, "is not a PEFT adapter: it has no adapter_config.json"),
        (lambda root: _config_only(root, {"peft_type": "PREFIX_TUNING", "r": 4}), "only LoRA"),
        (lambda root: _config_only(root, {"peft_type": "LORA", "r": 4}), "has no adapter_model"),
        (lambda root: _config_only(root, "not json"), "not valid JSON"),
    ],
)
def test_folders_that_are_not_lora_adapters_fail_naming_the_folder(
    tiny: dict[str, Path], tmp_path: Path, make: Any, message: str
) -> None:
    folder = make(tmp_path)
    with pytest.raises(SpecError, match=message) as raised:
        load_model(f"hf:{tiny['base']},adapter={folder}")
    assert str(folder) in str(raised.value) and "\n" not in str(raised.value)


def _config_only(root: Path, config: object) -> Path:
    text = config if isinstance(config, str) else json.dumps(config)
    (root / "adapter_config.json").write_text(text)
    return root


def test_an_adapter_for_another_base_fails_naming_the_folder_and_layer(tiny: dict[str, Path]) -> None:
    with pytest.raises(SpecError) as raised:
        load_model(f"hf:{tiny['base']},adapter={tiny['foreign']}")
    message = str(raised.value)
    assert str(tiny["foreign"]) in message and "does not match the model" in message
    assert "q_proj" in message and "64->64" in message and "another base" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [("merge=true", "merge=true needs adapter=PATH"), ("quantize=int8-dynamic", "needs merge=true")],
)
def test_option_combinations_fail_before_loading(tiny: dict[str, Path], options: str, message: str) -> None:
    spec = f"hf:{tiny['base']},{options}" + ("" if "merge" in options else f",adapter={tiny['adapter']}")
    started = time.perf_counter()
    with pytest.raises(SpecError, match=message):
        load_model(spec)
    assert time.perf_counter() - started < 1.0  # refused before reading any weights


def test_cli_bad_adapter_exits_2_with_one_line(tiny: dict[str, Path], tmp_path: Path) -> None:
    import subprocess

    toy = write_toy_tasks(tmp_path / "tasks")
    spec = f"hf:{tiny['base']},adapter={tiny['foreign']}"
    command = [
        "run",
        "-m",
        spec,
        "-t",
        "toy_mc",
        "--task-dir",
        str(toy),
        "--results",
        str(tmp_path / "r"),
        "-q",
    ]
    completed = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and str(tiny["foreign"]) in lines[-1]


def test_leaderboard_and_compare_pair_the_adapter_with_its_base(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    from evalkit.runner.evaluate import EvalConfig, evaluate
    from evalkit.specs import Catalogue

    toy = write_toy_tasks(tmp_path / "tasks")
    results = tmp_path / "results"
    base_spec, adapted_spec = f"hf:{tiny['base']}", f"hf:{tiny['base']},adapter={tiny['adapter']}"
    config = EvalConfig(use_cache=False, show_progress=False, results_dir=results)
    outcome = evaluate([base_spec, adapted_spec], ["toy_mc"], config=config, catalogue=Catalogue([toy]))
    assert [r.status for r in outcome.records] == ["ok", "ok"], [r.error for r in outcome.records]

    board = CliRunner().invoke(cli, ["leaderboard", "--results", str(results), "--no-ranks"])
    assert board.exit_code == 0, board.output
    assert "Fine-tuned variants (adapters) against their reference" in board.output
    section = board.output.split("Fine-tuned variants (adapters) against their reference", 1)[1]
    rows = [line.split() for line in section.splitlines() if "toy_mc" in line]
    assert len(rows) == 1 and rows[0][-1] == "paired" and rows[0][-2] == "6"

    compared = CliRunner().invoke(
        cli, ["compare", base_spec, adapted_spec, "--results", str(results), "--format", "json"]
    )
    assert compared.exit_code == 0, compared.output
    assert "toy_mc" in compared.output


# -- the real demonstration: SmolLM2-135M fine-tuned by benchmarks/finetune_lora.py -----------------

FINETUNE_STEPS = 60  # the script's defaults (see the README for the measured figures)


@pytest.mark.real
def test_finetuned_smollm2_beats_its_base_on_held_out_facts(tmp_path: Path) -> None:
    """Fine-tune, then evaluate base and adapter on the held-out split and on a slice of quick."""
    from evalkit.report.stats import compare_paired, paired_scores
    from evalkit.results.store import ResultsStore
    from evalkit.runner.evaluate import EvalConfig, evaluate
    from tests.test_reference_results import require_smollm2

    require_smollm2()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import finetune_lora

    adapter = tmp_path / "adapter"
    started = time.perf_counter()
    summary = finetune_lora.finetune(
        adapter, steps=FINETUNE_STEPS, seed=0, rank=8, lr=3e-3, batch=8, threads=1
    )
    trained = time.perf_counter() - started
    assert summary["last_loss"] < summary["first_loss"] / 2

    results = tmp_path / "results"
    config = EvalConfig(use_cache=False, show_progress=False, results_dir=results)
    base_spec, adapted_spec = "smollm2-135m", f"smollm2-135m,adapter={adapter}"
    facts = evaluate([base_spec, adapted_spec], ["synthetic_facts"], config=config).records
    assert [r.status for r in facts] == ["ok", "ok"], [r.error for r in facts]
    base, adapted = facts
    assert adapted.model.adapter is not None and adapted.model.adapter.endswith(f"(peft {peft.__version__})")
    assert "on smollm2-135m" in adapted.model.adapter
    store = ResultsStore(results)
    _, before, after = paired_scores(store, base, store, adapted, "acc")
    held_out = compare_paired(before, after, "acc")
    assert held_out.n == 80 and held_out.difference > 0 and held_out.significant()

    sliced = EvalConfig(use_cache=False, show_progress=False, results_dir=results, limit=20)
    general = evaluate([base_spec, adapted_spec], suite="quick", config=sliced).records
    assert all(r.status == "ok" for r in general), [r.error for r in general if r.status != "ok"]
    quick_before: list[float] = []
    quick_after: list[float] = []
    by_task = {(r.model.fingerprint, r.task.name): r for r in general}
    for record in general:
        if record.model.adapter is not None:
            continue
        mine = by_task[(adapted.model.fingerprint, record.task.name)]
        metric = record.task.primary_metric
        _, a, b = paired_scores(store, record, store, mine, metric)
        quick_before += a
        quick_after += b
    overall = compare_paired(quick_before, quick_after, "acc")
    print(
        f"\nLoRA r=8, {FINETUNE_STEPS} steps, {trained:.0f} s (loss {summary['first_loss']:.2f} -> "
        f"{summary['last_loss']:.2f}); synthetic_facts (80 held out): {held_out.mean_a:.3f} -> "
        f"{held_out.mean_b:.3f}, change {100 * held_out.difference:+.1f} points, 95% CI "
        f"[{100 * held_out.ci95[0]:+.1f}, {100 * held_out.ci95[1]:+.1f}], p={held_out.p_value:.2g}; "
        f"quick --limit 20 ({overall.n} samples): {overall.mean_a:.3f} -> {overall.mean_b:.3f}, change "
        f"{100 * overall.difference:+.1f} [{100 * overall.ci95[0]:+.1f}, {100 * overall.ci95[1]:+.1f}], "
        f"p={overall.p_value:.2g}"
    )


def test_the_fine_tuning_data_is_what_the_script_generates_and_splits_are_disjoint() -> None:
    """tasks/data/synthetic_facts*.jsonl are reproducible, and no evaluated question is trained on."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import finetune_lora

    train, documents = finetune_lora.make_splits()
    on_disk = [
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for path in (finetune_lora.TRAIN_FILE, finetune_lora.EVAL_FILE)
    ]
    assert on_disk == [train, documents] and (len(train), len(documents)) == (160, 80)
    trained = "\n".join(row["text"] for row in train)
    assert not any(document["question"] in trained for document in documents)
    assert all(document["choices"][document["gold"]] in trained for document in documents)
