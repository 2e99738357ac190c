"""The trained zoo: its tokenizer, the reproducibility of `make zoo`, and the committed checkpoints.

The committed checkpoints (evalkit/zoo/checkpoints/<name>/) carry a card.json with every
training step's loss; rerunning the first steps with the same code, seed and thread count must
give the same losses, so the committed models are what `make zoo` builds.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evalkit.backends import aliases, load_model, parse_model_spec, resolve_alias
from evalkit.errors import BackendUnavailableError
from evalkit.requests import LoglikelihoodRequest
from evalkit.zoo.corpus import corpus_text, heldout_documents, training_documents
from evalkit.zoo.models import FAMILIES
from evalkit.zoo.tokenizer import ENDOFTEXT, load_tokenizer, save_tokenizer, train_tokenizer
from evalkit.zoo.train import (
    CHECKPOINTS,
    TrainingPlan,
    build_tokenizer,
    checkpoint_folder,
    pack,
    plan_from_card,
    train,
)

NAMES = list(FAMILIES)


def _card(name: str) -> dict[str, Any]:
    path = checkpoint_folder(CHECKPOINTS, name) / "card.json"
    card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return card


@pytest.fixture(scope="module")
def small_tokenizer() -> Any:
    return train_tokenizer([corpus_text(3, 300)])


def test_tokenizer_round_trips_corpus_text_exactly(small_tokenizer: Any) -> None:
    texts = [*training_documents(3, 40), *heldout_documents(3, 40), "Tom's  odd\tspacing,\n\nand émoji 🙂?"]
    for text in texts:
        ids = small_tokenizer.encode(text, add_special_tokens=False)
        assert small_tokenizer.decode(ids) == text
    joined = ENDOFTEXT.join(texts[:3])
    ids = small_tokenizer.encode(joined, add_special_tokens=False)
    assert ids.count(small_tokenizer.eos_token_id) == 2  # the separator is one special token
    assert small_tokenizer.decode(ids) == joined


def test_tokenizer_is_deterministic_and_loads_back(small_tokenizer: Any, tmp_path: Path) -> None:
    again = train_tokenizer([corpus_text(3, 300)])
    save_tokenizer(small_tokenizer, tmp_path / "one")
    save_tokenizer(again, tmp_path / "two")
    assert (tmp_path / "one" / "tokenizer.json").read_bytes() == (
        tmp_path / "two" / "tokenizer.json"
    ).read_bytes()
    loaded = load_tokenizer(tmp_path / "one")
    text = training_documents(3, 1)[0]
    assert loaded.encode(text, add_special_tokens=False) == small_tokenizer.encode(
        text, add_special_tokens=False
    )
    assert loaded.eos_token == loaded.bos_token == ENDOFTEXT


def test_packing_puts_endoftext_before_each_document(small_tokenizer: Any) -> None:
    documents = training_documents(3, 20)
    windows = pack(small_tokenizer, documents, seq_len=64)
    assert windows.shape[1] == 65
    stream = windows.flatten().tolist()
    assert stream[0] == small_tokenizer.eos_token_id
    assert stream.count(small_tokenizer.eos_token_id) <= len(documents)
    first = small_tokenizer.encode(documents[0], add_special_tokens=False)
    assert stream[1 : 1 + len(first)] == first[: len(stream) - 1]


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    plan = TrainingPlan(name="zoo-llama", steps=100, warmup_steps=10, peak_lr=1e-3, final_lr_fraction=0.1)
    rates = [plan.learning_rate(step) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert rates[-1] == pytest.approx(1e-4, rel=0.01)


def test_a_short_run_is_deterministic(small_tokenizer: Any) -> None:
    plan = TrainingPlan(name="zoo-llama", steps=3, documents=60, heldout_documents=10, batch=4, seq_len=64)
    _, one = train(plan, small_tokenizer)
    _, two = train(plan, small_tokenizer)
    assert one.loss_curve == two.loss_curve
    assert one.heldout_curve == two.heldout_curve
    assert one.tokens_seen == 3 * 4 * 64
    assert one.loss_curve[-1] < one.loss_curve[0]  # lr warms up from step one: it already learns


@pytest.mark.parametrize("name", NAMES)
def test_card_describes_the_run(name: str) -> None:
    card = _card(name)
    plan = plan_from_card(card)
    assert card["family"] == FAMILIES[name] and plan.name == name
    assert len(card["loss_curve"]) == card["steps"] == plan.steps
    assert card["tokens_seen"] == plan.steps * plan.batch * plan.seq_len
    assert card["final_train_loss"] == card["loss_curve"][-1]
    assert card["final_heldout_loss"] == card["heldout_curve"][-1][1]
    for key in ("torch", "transformers", "threads", "wall_seconds", "corpus_seed", "lr_schedule"):
        assert card[key] not in (None, "")


def test_zoo_has_matched_size_and_one_token_budget() -> None:
    cards = [_card(name) for name in NAMES]
    sizes = [card["parameters"] for card in cards]
    assert max(sizes) <= 1.1 * min(sizes)
    assert len({(card["tokens_seen"], card["corpus_seed"], card["documents"]) for card in cards}) == 1
    tokenizers = {(checkpoint_folder(CHECKPOINTS, name) / "tokenizer.json").read_bytes() for name in NAMES}
    assert len(tokenizers) == 1


@pytest.mark.parametrize("name", NAMES)
def test_heldout_loss_is_well_below_unigram_entropy(name: str) -> None:
    """Better than any model that ignores context: below the held-out tokens' own unigram entropy."""
    tokenizer = load_tokenizer(checkpoint_folder(CHECKPOINTS, name))
    card = _card(name)
    windows = pack(
        tokenizer, heldout_documents(card["corpus_seed"], card["heldout_documents"]), card["seq_len"]
    )
    counts = Counter(windows[:, 1:].flatten().tolist())
    total = sum(counts.values())
    entropy = -sum(n / total * math.log(n / total) for n in counts.values())
    assert card["final_heldout_loss"] < entropy - 1.0, (card["final_heldout_loss"], entropy)


@pytest.mark.parametrize("name", NAMES)
def test_committed_checkpoint_scores_through_the_alias(name: str) -> None:
    backend = load_model(name)
    facts = backend.describe()
    assert facts.family == FAMILIES[name]
    story = "Once upon a time, there was a girl named Mia. Mia has a red kite."
    likely, unlikely = backend.loglikelihood(
        [
            LoglikelihoodRequest(context=story + " Mia", continuation=" has"),
            LoglikelihoodRequest(context=story + " Mia", continuation=" Tuesday"),
        ]
    )
    assert math.isfinite(likely.logprob) and likely.num_tokens == 1
    assert likely.logprob > unlikely.logprob + 2.0


def test_int8_alias_loads_quantized() -> None:
    spec = resolve_alias(parse_model_spec("zoo-llama-int8"))
    assert spec.options.get("quantize") == "int8" and spec.target.endswith("zoo_llama")
    backend = load_model("zoo-llama-int8")
    assert backend.describe().quantization not in (None, "", "none")
    (result,) = backend.loglikelihood([LoglikelihoodRequest(context="Tom has a", continuation=" dog")])
    assert math.isfinite(result.logprob)


def test_missing_checkpoint_names_make_zoo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(aliases, "ZOO_CHECKPOINTS", tmp_path)
    with pytest.raises(BackendUnavailableError, match=r"make zoo") as info:
        resolve_alias(parse_model_spec("zoo-mamba"))
    assert "\n" not in str(info.value)


@pytest.mark.real
@pytest.mark.parametrize("name", NAMES)
def test_first_steps_reproduce_the_committed_loss_curve(name: str) -> None:
    """`make zoo` rebuilds the committed model: same tokenizer, same first losses (same threads)."""
    card = _card(name)
    plan = plan_from_card(card)
    tokenizer = build_tokenizer(plan)
    committed = load_tokenizer(checkpoint_folder(CHECKPOINTS, name))
    assert tokenizer.get_vocab() == committed.get_vocab()
    _, run = train(plan, tokenizer, stop_after=5)
    expected = card["loss_curve"][:5]
    assert max(abs(a - b) for a, b in zip(run.loss_curve, expected, strict=True)) <= 1e-4, (
        run.loss_curve,
        expected,
    )
