"""Answer extraction and comparison for generated answers, as lm-evaluation-harness 0.4.13 does them.

`extract` is lm-eval's `regex` filter (with `take_first`), `exact_match` its `exact_match` metric
(the Hugging Face `evaluate` one: regexes removed, then case and punctuation dropped), so a
per-sample score equals lm-eval's `process_results` on the same generated text.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)  # SQuAD's and DROP's (after lower-casing)


def extract(text: str, regex: str | None, group_select: int = 0, fallback: str = "") -> str:
    """The answer in `text`: the match at `group_select` of `regex`, stripped; `fallback` if none.

    A match of a pattern with groups is its first non-empty group (lm-eval's handling of an
    alternation such as gsm8k's `(-?[$0-9.,]{2,})|(-?[0-9]+)`); without a regex the whole text.
    """
    if regex is None:
        return text.strip()
    matches = re.findall(regex, text)
    if not matches:
        return fallback
    try:
        match = matches[group_select]
    except IndexError:
        return fallback
    if isinstance(match, tuple):
        match = next((group for group in match if group), fallback)
    return str(match).strip()


def normalise(
    text: str,
    *,
    regexes_to_ignore: list[str] | tuple[str, ...] = (),
    ignore_case: bool = True,
    ignore_punctuation: bool = False,
    collapse_whitespace: bool = False,
) -> str:
    """lm-eval's exact_match preprocessing of one string (plus optional whitespace collapsing)."""
    for regex in regexes_to_ignore:
        text = re.sub(regex, "", text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(_PUNCTUATION)
    return " ".join(text.split()) if collapse_whitespace else text


# --- SQuAD (the squad_v2 metric that lm-eval's squadv2 loads, itself SQuAD 2.0's evaluation script) --


def squad_normalise(text: str) -> str:
    """SQuAD's `normalize_answer`: lower case, punctuation dropped, articles dropped, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", normalise(text, ignore_punctuation=True)).split())


def squad_scores(prediction: str, gold_answers: list[str]) -> tuple[float, float]:
    """SQuAD's (exact match, token F1) of one prediction, each the best over the gold answers.

    As SQuAD 2.0's script (`get_raw_scores`): gold answers that normalise to nothing are dropped and
    none left means the question is unanswerable (gold ""); F1 counts shared tokens with multiplicity,
    and when either side has no tokens it is 1 only if both have none.
    """
    golds = [gold for gold in gold_answers if squad_normalise(gold)] or [""]
    predicted = squad_normalise(prediction)
    exact = max(float(squad_normalise(gold) == predicted) for gold in golds)
    return exact, max(_token_f1(predicted.split(), squad_normalise(gold).split()) for gold in golds)


def _token_f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    overlap = sum((Counter(predicted) & Counter(gold)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


# --- DROP (lm_eval/tasks/drop/utils.py, itself the official DROP evaluation script) ---------------


def drop_scores(generation: str, gold_answers: list[list[str]]) -> tuple[float, float]:
    """DROP's (exact match, F1) of one generation, the best over the gold answers.

    A gold answer is a list of spans; spans and the generation become bags of normalised tokens
    (numbers as floats, articles and punctuation dropped), aligned one to one; a gold answer with
    numbers only counts a span holding one of them. F1 is rounded to 2 places, as DROP does.
    """
    best_em, best_f1 = 0.0, 0.0
    for gold in gold_answers:
        if not gold or not gold[0].strip():
            continue
        em, f1 = _drop_metrics([generation], gold)
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1


def _drop_metrics(predicted: list[str], gold: list[str]) -> tuple[float, float]:
    predicted_spans, predicted_bags = _answer_to_bags(predicted)
    gold_spans, gold_bags = _answer_to_bags(gold)
    exact = set(predicted_spans) == set(gold_spans) and len(predicted_spans) == len(gold_spans)
    per_bag = _align_bags(predicted_bags, gold_bags)
    return float(exact), round(sum(per_bag) / len(per_bag), 2)


def _answer_to_bags(spans: list[str]) -> tuple[list[str], list[set[str]]]:
    normalised = [_drop_normalise(span) for span in spans]
    return normalised, [set(span.split()) for span in normalised]


def _align_bags(predicted: list[set[str]], gold: list[set[str]]) -> list[float]:
    """The best one-to-one alignment of gold and predicted bags (Hungarian), its F1 per gold bag."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    scores = np.zeros([len(gold), len(predicted)])
    for gold_index, gold_bag in enumerate(gold):
        for predicted_index, predicted_bag in enumerate(predicted):
            if _numbers_agree(gold_bag, predicted_bag):
                scores[gold_index, predicted_index] = _bag_f1(predicted_bag, gold_bag)
    rows, columns = linear_sum_assignment(-scores)
    best = [0.0] * max(len(gold), len(predicted))
    for row, column in zip(rows, columns, strict=True):
        best[row] = max(best[row], float(scores[row, column]))
    return best


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    overlap = len(gold & predicted)
    precision = overlap / len(predicted) if predicted else 1.0
    recall = overlap / len(gold) if gold else 1.0
    return 0.0 if precision == 0.0 and recall == 0.0 else 2 * precision * recall / (precision + recall)


def _numbers_agree(gold: set[str], predicted: set[str]) -> bool:
    gold_numbers = {word for word in gold if _is_number(word)}
    return not gold_numbers or bool(gold_numbers & {word for word in predicted if _is_number(word)})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _drop_normalise(answer: str) -> str:
    tokens = []
    for token in re.split(" |-", answer):
        token = token.lower()
        if not _is_number(token):
            token = "".join(ch for ch in token if ch not in string.punctuation)
        token = str(float(token)) if _is_number(token) else token
        tokens.append(" ".join(_ARTICLES.sub(" ", token).split()))
    return " ".join(token for token in tokens if token.strip()).strip()
