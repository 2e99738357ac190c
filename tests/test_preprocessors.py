"""The built-in preprocessors on hand-written documents: every field a template or kind relies on."""

from __future__ import annotations

import pytest

from evalkit.errors import SpecError, UnknownNameError
from evalkit.sources.preprocessors import get_preprocessor, list_preprocessors, preprocessor

BUILTIN = ["arc", "boolq", "hellaswag", "lambada", "mmlu", "openbookqa", "piqa", "sciq", "winogrande"]


def test_registry_lists_the_builtin_preprocessors() -> None:
    assert set(BUILTIN) <= set(list_preprocessors())
    assert list_preprocessors() == sorted(list_preprocessors())


def test_unknown_preprocessor_suggests_the_close_name() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown preprocessor 'hellaswg'; did you mean 'hellaswag'"):
        get_preprocessor("hellaswg")


def test_registering_a_second_function_under_a_taken_name_fails() -> None:
    with pytest.raises(SpecError, match=r"preprocessor 'arc' is already registered by evalkit"):

        @preprocessor("arc")
        def another_arc(doc: dict[str, object]) -> dict[str, object]:
            return doc


def test_hellaswag_removes_wikihow_tags_and_capitalizes_ctx_b() -> None:
    doc = {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to plant tomatoes [title] Dig a hole.",
        "ctx_b": "then water it",
        "endings": ["[step] Water the plant daily.", "sing to it [substeps] loudly.", " Wait. "],
        "label": "2",
    }
    out = get_preprocessor("hellaswag")(doc)
    assert out["query"] == "Home and Garden: How to plant tomatoes. Dig a hole. Then water it"
    # lm-eval strips before removing tags, so a leading tag leaves a leading space: kept on purpose.
    assert out["choices"] == [" Water the plant daily.", "sing to it loudly.", "Wait."]
    assert out["gold"] == 2
    assert out["ctx_a"] == doc["ctx_a"]  # raw fields stay available to templates


def test_winogrande_builds_partial_contexts_around_the_blank() -> None:
    doc = {
        "sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "2",
    }
    out = get_preprocessor("winogrande")(doc)
    assert out["contexts"] == [
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    ]
    assert out["choices"] == ["always got the easier cases.", "always got the easier cases."]
    assert out["gold"] == 1


def test_mmlu_letters_the_options_and_names_the_subject() -> None:
    doc = {
        "question": "  Which gas do plants take in?\n",
        "subject": "high_school_biology",
        "choices": ["Oxygen", "Carbon dioxide", "Helium", "Neon"],
        "answer": 1,
    }
    out = get_preprocessor("mmlu")(doc)
    template = "{question}\nA. {option_a}\nB. {option_b}\nC. {option_c}\nD. {option_d}\nAnswer:"
    assert template.format(**out) == (
        "Which gas do plants take in?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Neon\nAnswer:"
    )
    assert out["choices"] == ["A", "B", "C", "D"]
    assert out["gold"] == 1
    assert out["subject_name"] == "high school biology"


def test_mmlu_rejects_a_question_without_four_options() -> None:
    with pytest.raises(ValueError, match="4 options"):
        get_preprocessor("mmlu")({"question": "q", "subject": "s", "choices": ["a", "b"], "answer": 0})


def test_sciq_puts_the_correct_answer_last_and_strips_the_support() -> None:
    doc = {
        "question": "What do plants make?",
        "distractor1": "rocks",
        "distractor2": "metal",
        "distractor3": "glass",
        "correct_answer": "sugar",
        "support": "\n  Plants photosynthesize.",
    }
    out = get_preprocessor("sciq")(doc)
    assert out["choices"] == ["rocks", "metal", "glass", "sugar"]
    assert out["gold"] == 3
    assert out["support"] == "Plants photosynthesize."


def test_arc_reads_hub_rows_with_numeric_labels() -> None:
    doc = {
        "id": "Q1",
        "question": "Which is a mammal?",
        "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["1", "2", "3", "4"]},
        "answerKey": "2",
    }
    out = get_preprocessor("arc")(doc)
    assert (out["question"], out["choices"], out["gold"]) == (
        "Which is a mammal?",
        ["shark", "whale", "trout", "eel"],
        1,
    )


def test_arc_reads_olmes_request_docs() -> None:
    doc = {
        "id": "Q1",
        "query": "Question: Which is a mammal?\nAnswer:",
        "choices": ["shark", "whale"],
        "gold": 1,
    }
    out = get_preprocessor("arc")(doc)
    assert (out["question"], out["choices"], out["gold"]) == ("Which is a mammal?", ["shark", "whale"], 1)


def test_arc_refuses_an_olmes_query_in_another_format() -> None:
    with pytest.raises(ValueError, match="expected a query"):
        get_preprocessor("arc")({"query": "Q: Which?\nA:", "choices": ["a"], "gold": 0})


def test_openbookqa_strips_the_answer_key_like_lm_eval() -> None:
    doc = {
        "id": "7-1",
        "question_stem": "The sun is a",
        "choices": {"text": ["star", "planet", "moon", "comet"], "label": ["A", "B", "C", "D"]},
        "answerKey": " A",
    }
    out = get_preprocessor("openbookqa")(doc)
    assert (out["choices"][0], out["gold"]) == ("star", 0)
    olmes = {"id": "7-1", "query": "Question: The sun is a\nAnswer:", "choices": ["star", "moon"], "gold": 0}
    assert get_preprocessor("openbookqa")(olmes)["question_stem"] == "The sun is a"


def test_boolq_takes_gold_from_superglue_label_or_google_answer() -> None:
    boolq = get_preprocessor("boolq")
    assert boolq({"question": "q", "passage": "p", "label": 1})["gold"] == 1
    assert boolq({"question": "q", "passage": "p", "answer": False})["gold"] == 0
    assert boolq({"question": "q", "passage": "p", "answer": True})["choices"] == ["no", "yes"]


def test_piqa_offers_both_solutions() -> None:
    out = get_preprocessor("piqa")({"goal": "Open a jar", "sol1": "twist", "sol2": "shout", "label": 0})
    assert (out["choices"], out["gold"]) == (["twist", "shout"], 0)


def test_lambada_splits_on_single_spaces_like_lm_eval() -> None:
    out = get_preprocessor("lambada")({"text": "He said  hello to his friend Shane"})
    assert (out["context"], out["target"]) == ("He said  hello to his friend", "Shane")
    olmes = get_preprocessor("lambada")({"id": 0, "query": "He said hello to", "answers_text": ["Shane"]})
    assert (olmes["context"], olmes["target"], olmes["text"]) == (
        "He said hello to",
        "Shane",
        "He said hello to Shane",
    )
