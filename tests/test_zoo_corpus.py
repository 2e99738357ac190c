"""The zoo's synthetic corpus, its committed evaluation data and its tasks (issue 13).

What is checked: a seed gives a byte-identical corpus in a fresh interpreter; the held-out stream is
disjoint from training; the vocabulary is closed and exact; associative-recall drills are well
formed; every fact a story restates was stated earlier and never contradicted; the committed data
files regenerate byte for byte and are answerable; the `zoo_recall` generator hides the only mention
of its character and fits its lengths; the zoo tasks load and run on the fake backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from evalkit.backends.fake import FakeBackend, FakeOptions
from evalkit.longcontext.generators import get_generator
from evalkit.zoo import corpus
from evalkit.zoo.corpus import MQAR_KEYS, MQAR_VALUES, VOCABULARY, words
from evalkit.zoo.eval_data import MQAR_PAIRS, data_dir, mqar_rows, render_files
from evalkit.zoo.generators import ZOO_RECALL, ZooRecallParams

EVALKIT = [sys.executable, "-c", "from evalkit.cli.main import main; main()"]
ZOO_TASKS = ("zoo_heldout", "zoo_mqar_4", "zoo_mqar_8", "zoo_mqar_16", "zoo_recall")


def is_mqar(document: str) -> bool:
    return words(document)[0] in MQAR_KEYS


# ---------------------------------------------------------------------------------------------
# The corpus


def test_same_seed_same_bytes_in_a_fresh_interpreter() -> None:
    code = (
        "import hashlib; from evalkit.zoo.corpus import corpus_text; "
        "print(hashlib.sha256(corpus_text(11, 200).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(corpus.corpus_text(11, 200).encode()).hexdigest()
    assert corpus.corpus_text(11, 200) == "\n\n".join(corpus.training_documents(11, 200))
    assert corpus.training_documents(11, 50) == corpus.training_documents(11, 200)[:50]  # prefix-stable
    assert corpus.training_documents(12, 50) != corpus.training_documents(11, 50)


def test_heldout_stream_is_disjoint_from_training() -> None:
    train, heldout = corpus.training_documents(0, 500), corpus.heldout_documents(0, 500)
    assert not set(train) & set(heldout)
    assert corpus.heldout_documents(0, 20) == heldout[:20]


def test_documents_have_the_promised_sizes_and_mix() -> None:
    documents = corpus.training_documents(3, 1000)
    lengths = [len(words(d)) for d in documents]
    assert min(lengths) >= corpus.MIN_WORDS and max(lengths) <= corpus.MAX_WORDS + 60
    share = sum(map(is_mqar, documents)) / len(documents)
    assert 0.25 < share < 0.35


def test_vocabulary_is_closed_and_exact() -> None:
    documents = corpus.training_documents(5, 2000) + corpus.heldout_documents(5, 500)
    seen = {w for d in documents for w in words(d)}
    assert seen <= set(VOCABULARY)
    assert seen == set(VOCABULARY)  # no word listed that the grammar never emits
    assert len(VOCABULARY) == len(set(VOCABULARY)) and list(VOCABULARY) == sorted(VOCABULARY)
    # the drill words are their own tokens' worth of vocabulary, disjoint from every story word
    story_words = {w for d in documents if not is_mqar(d) for w in words(d)}
    assert not story_words & (set(MQAR_KEYS) | set(MQAR_VALUES))
    assert len(set(MQAR_KEYS)) == len(set(MQAR_VALUES)) == 64 and not set(MQAR_KEYS) & set(MQAR_VALUES)


def test_mqar_drills_are_well_formed() -> None:
    drills = [line for d in corpus.training_documents(7, 600) if is_mqar(d) for line in d.split("\n")]
    assert len(drills) > 200
    sizes = set()
    for line in drills:
        tokens = line.split(" ")
        assert tokens[-1] == "." and tokens.count(".") == 2
        cut = tokens.index(".")
        block, queries = tokens[:cut], tokens[cut + 1 : -1]
        pairs = dict(zip(block[::2], block[1::2], strict=True))
        assert len(pairs) * 2 == len(block)  # distinct keys
        assert len(set(pairs.values())) == len(pairs)  # distinct values
        assert set(pairs) <= set(MQAR_KEYS) and set(pairs.values()) <= set(MQAR_VALUES)
        assert len(queries) == len(block)  # as many queries as pairs
        for key, value in zip(queries[::2], queries[1::2], strict=True):
            assert pairs[key] == value
        sizes.add(len(pairs))
    assert sizes == set(range(corpus.MIN_PAIRS, corpus.MAX_PAIRS + 1))


# Every restatement template of the grammar as a pattern, with the kind of fact it restates.
RESTATEMENTS = [
    (r"(\w+)'s (\w+) is (\w+)\.", "object"),
    (r"(\w+) looked at (?:his|her) (\w+)\. It was (\w+)\.", "object"),
    (r"What colour is (\w+)'s (\w+)\? It is (\w+)\.", "object"),
    (r"(\w+) picked up the (\w+)\. The \2 was (\w+)\.", "object"),
    (r"(\w+)'s pet is a (\w+)\.", "pet"),
    (r"(\w+) played with (?:his|her) (\w+)\.", "pet"),
    (r"(\w+) gave food to the (\w+)\.", "pet"),
    (r"(\w+) went home to the (\w+)\.", "place"),
    (r"(\w+)'s home is near the (\w+)\.", "place"),
    (r"(\w+) walked back to the (\w+)\.", "place"),
]


def statement(attribute: str, groups: tuple[str, ...]) -> str:
    if attribute == "object":
        name, thing, colour = groups
        article = "an" if colour[0] in "aeiou" else "a"
        return f"{name} has {article} {colour} {thing}."
    name, value = groups
    return f"{name} has a {value}." if attribute == "pet" else f"{name} lives near the {value}."


def test_every_restated_fact_was_stated_earlier() -> None:
    stories = [d for d in corpus.training_documents(9, 400) if not is_mqar(d)]
    checked = 0
    for text in stories:
        for pattern, attribute in RESTATEMENTS:
            for match in re.finditer(pattern, text):
                stated = statement(attribute, match.groups())
                assert stated in text[: match.start()], (stated, text)
                checked += 1
        # never contradicted: one colour per (name, object), one pet and one home per name
        owned = re.findall(r"(\w+) has an? (\w+) (\w+)\.", text)
        assert len({(n, o) for n, _, o in owned}) == len(owned)
    assert checked > 3 * len(stories)  # most stories restate several facts


def test_corpus_command_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    assert corpus.main(["--seed", "4", "--count", "7", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == corpus.training_documents(4, 7)
    assert corpus.main(["--seed", "4", "--count", "3", "--out", str(out), "--heldout"]) == 0
    assert [json.loads(x)["text"] for x in out.read_text().splitlines()] == corpus.heldout_documents(4, 3)


# ---------------------------------------------------------------------------------------------
# Evaluation data


def test_committed_data_regenerates_byte_for_byte() -> None:
    rendered = render_files()
    assert sorted(rendered) == sorted(p.name for p in data_dir().iterdir())
    for name, content in rendered.items():
        assert (data_dir() / name).read_bytes() == content, (
            f"{name} is stale: python -m evalkit.zoo.eval_data"
        )


def test_eval_data_check_command(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "evalkit.zoo.eval_data"]
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 0
    assert subprocess.run([*command, "--out", str(tmp_path)], capture_output=True).returncode == 0
    (tmp_path / "mqar_4.jsonl").write_text("{}\n")
    stale = subprocess.run([*command, "--check", "--out", str(tmp_path)], capture_output=True, text=True)
    assert stale.returncode == 1 and "mqar_4.jsonl" in stale.stdout


@pytest.mark.parametrize("pairs", MQAR_PAIRS)
def test_mqar_eval_rows_are_answerable_only_from_the_pairs(pairs: int) -> None:
    rows = mqar_rows(pairs)
    assert len(rows) == 200 and len({r["id"] for r in rows}) == 200
    positions = set()
    for row in rows:
        tokens = str(row["context"]).split(" ")
        cut = tokens.index(".")
        block, after = tokens[:cut], tokens[cut + 1 :]
        table = dict(zip(block[::2], block[1::2], strict=True))
        assert len(table) == pairs
        earlier, key = after[:-1], after[-1]
        assert table[key] == row["target"]
        assert key not in earlier[::2]  # not answerable by copying a recent query
        assert all(table[k] == v for k, v in zip(earlier[::2], earlier[1::2], strict=True))
        positions.add(row["query_position"])
        assert len(earlier) == 2 * int(str(row["query_position"]))
    assert positions == set(range(pairs))


# ---------------------------------------------------------------------------------------------
# The zoo_recall generator


def test_zoo_recall_is_registered() -> None:
    assert get_generator("zoo_recall") is ZOO_RECALL


@pytest.mark.parametrize("seed", range(12))
def test_recall_needle_is_the_only_mention_of_its_character(seed: int) -> None:
    layout = ZOO_RECALL.layout(ZooRecallParams(), None, seed=seed, depth=0.5)
    rendered = layout.render(40, 3)
    (probe,) = rendered.probes
    name = probe.answer_prefix.split("'s ")[0]
    assert words(rendered.context).count(name) == 2  # "There was a girl named Mia. Mia has ..."
    ((start, end),) = rendered.needle_spans
    needle = rendered.context[start:end]
    assert name in needle and probe.answers[0] in words(needle)
    assert len(probe.distractors) == 9 and probe.answers[0] not in probe.distractors
    # the top-up goes first, so the context ends with a whole sentence before the question
    assert rendered.context.endswith(".") and rendered.partial_words == 3
    assert rendered.context.endswith(layout.render(40).context)
    assert set(words(rendered.context + " " + probe.answer_prefix)) <= set(VOCABULARY)


def test_recall_depth_moves_only_the_needle() -> None:
    positions = []
    for depth in (0.0, 0.5, 1.0):
        rendered = ZOO_RECALL.layout(ZooRecallParams(attribute="pet"), None, seed=3, depth=depth).render(30)
        ((start, _),) = rendered.needle_spans
        positions.append(start / len(rendered.context))
        assert rendered.probes[0].answer_prefix.endswith("'s pet is a")
    assert positions[0] == 0.0 and positions[0] < positions[1] < positions[2] < 1.0


def test_recall_rejects_an_unknown_attribute() -> None:
    with pytest.raises(ValidationError):
        ZooRecallParams.model_validate({"attribute": "colour"})


# ---------------------------------------------------------------------------------------------
# The tasks, on the fake backend


def test_zoo_tasks_run_on_fake(tmp_path: Path) -> None:
    from evalkit.runner import EvalConfig, evaluate

    backend = FakeBackend("fake", FakeOptions(context_window=4096))
    config = EvalConfig(results_dir=tmp_path, use_cache=False, show_progress=False, limit=3)
    summary = evaluate([backend], list(ZOO_TASKS), config=config)
    records = {r.task.name: r for r in summary.records}
    assert sorted(records) == sorted(ZOO_TASKS)
    for record in records.values():
        assert record.status == "ok", record.error
    assert records["zoo_heldout"].metrics["word_perplexity"].n == 3
    assert {"acc", "perplexity"} <= set(records["zoo_mqar_16"].metrics)
    matrix = records["zoo_recall"].long_context
    assert matrix is not None and matrix.lengths == [256, 512, 1024, 2048]
    assert "ll_rank" in records["zoo_recall"].metrics


def test_zoo_suite_and_catalogue_through_the_cli(tmp_path: Path) -> None:
    listing = subprocess.run([*EVALKIT, "tasks", "list"], capture_output=True, text=True, check=True).stdout
    for task in ZOO_TASKS:
        assert (
            re.search(rf"^{task}\s", listing, re.MULTILINE) and "invalid" not in listing.split(task)[1][:80]
        )
    run = subprocess.run(
        [*EVALKIT, "run", "-m", "fake", "--suite", "zoo", "--limit", "2", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    stored = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(r["task"]["name"] for r in stored) == sorted(ZOO_TASKS)


def test_bad_zoo_recall_params_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad_zoo.yaml").write_text(
        "name: bad_zoo\nkind: long_context\nlong_context:\n  generator: zoo_recall\n"
        "  params: {attribute: colour}\n  template: '{context}{question}'\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            *EVALKIT,
            "run",
            "-m",
            "fake",
            "-t",
            "bad_zoo",
            "--task-dir",
            str(tmp_path),
            "--results",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "bad_zoo.yaml" in run.stderr and "attribute" in run.stderr


def test_mqar_probe_scores_exactly_the_queried_values() -> None:
    """benchmarks/zoo_mqar_probe.py trains on the queried values only: its mask must mark each
    position whose next token is a value in a drill's query block, and nothing else."""
    pytest.importorskip("torch")
    pytest.importorskip("tokenizers")
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from zoo_mqar_probe import drill_rows

    from evalkit.zoo.tokenizer import load_tokenizer
    from evalkit.zoo.train import CHECKPOINTS, checkpoint_folder

    tokenizer = load_tokenizer(checkpoint_folder(CHECKPOINTS, "zoo-llama"))
    ids, mask = drill_rows(tokenizer, random.Random(3), rows=3, seq_len=200)
    assert ids.shape == (3, 201) and mask.shape == (3, 200)
    for row in range(3):
        text = [str(tokenizer.decode([t])).strip() for t in ids[row].tolist()]
        assert text[0] == "<|endoftext|>"
        in_queries, expected = False, []
        for position in range(1, 201):
            word = text[position]
            if word == ".":
                in_queries = not in_queries
            expected.append(in_queries and word in MQAR_VALUES)
        assert mask[row].tolist() == expected
        assert 0 < sum(expected) < 200
