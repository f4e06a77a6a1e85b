"""Evidence that the best passages answer the question, for the one refusal decision.

Near-miss questions name a real entity and retrieve passages about it that score like answers,
so scores alone cannot tell them apart. What can: whether what the question names (entities,
years, numbers) and what it asks about (the words next to its question word, a value of the
asked kind) stand in the best passage. rank.RankModel weighs these with weights fitted on dev.
"""
from __future__ import annotations

import re
from typing import Protocol

import numpy as np

from . import answer as ans
from .features import NAMES, bigrams, has_value, heads_absent
from .lexical import BM25Index
from .question import Question
from .textnorm import simplify
from .vocab import CorpusVocab

REFUSAL_NAMES = [
    "top_entity_match", "unknown_entity", "year_not_in_corpus", "year_not_in_top", "type_missing_top",
    "top_dense", "words_missing_top3", "words_missing_corpus", "sentence_support",
    "heads_missing_top", "heads_missing_top_sentence", "rarest_missing_top", "number_missing_top",
    "year_unbound", "heads_unbound",
    # the sentence the answer would show: a value of the asked kind (not a year for 多少), the asked
    # words, the question's other words, names, the asked unit, its score, the asked years
    "ans_value", "ans_heads", "ans_words", "ans_entity", "ans_unit", "ans_score", "ans_years",
] + ["top_" + n for n in NAMES]  # and the best passage's ranker features
_YEARISH = re.compile(r"(?:19|20)\d\d")
_NUMBER = re.compile(r"(?:\d+|[一二三四五六七八九十]+)[号期座台届条]")  # 5号机组, 二期: which one is asked
# a year as the text writes one: 2024年 / 2024-05 in Chinese; a bare 1900-2099 in English ("in 2023")
_YEAR_ZH = re.compile(r"(?<![\d.])((?:19|20)\d\d)(?=\s*年|[-/]\d)")
_YEAR_EN = re.compile(r"(?<![\d.,])((?:19|20)\d\d)(?![\d.,]?\d)")
_FIGURE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
BIND_WINDOW = 40  # characters: a head word further than this from every value is not what the value measures


class Corpus(Protocol):
    """What the refusal features read about the indexed passages (the engine's live index)."""
    contexts: list[str]  # simplified title + heading + text
    sentences: list[list[str]]
    years: set[str]
    vocab: CorpusVocab
    bm25: BM25Index


def inputs(q: Question, corpus: Corpus, hits, cues: dict, shown: str | None = None) -> tuple[np.ndarray, str, bool]:
    """(features in REFUSAL_NAMES order, the best passage's context, whether it holds a value of
    the asked kind). `hits`: (passage, score, ranker features, passage index), best first.
    `shown`: the best passage's answering sentence when the caller already chose it (the engine's
    first citation), else chosen here as answer.best_sentence would."""
    top, top_idx = hits[0][0], hits[0][3]
    ctx = bridged(q, corpus.contexts[top_idx])
    low = ctx.lower()
    top_years = set(_YEARISH.findall(ctx)) | {top.date[:4]}
    people = corpus.vocab.people_in(top_idx) if q.asks == "person" else []
    type_in_top = has_value(q.asks, simplify(top.text), cues, people) if q.asks else True
    entity = sum(corpus.vocab.named_in(e, ctx, low) for e in q.entities) / len(q.entities) if q.entities else 1.0
    top3 = [ctx] + [bridged(q, corpus.contexts[h[3]]) for h in hits[1:3]]
    missing = _missing_words(q, corpus, top3, [bridged(q, s) for h in hits[:3] for s in corpus.sentences[h[3]]], cues)
    top_sentences = [bridged(q, s).lower() for s in corpus.sentences[top_idx]]
    # the asked-about word and a value of the asked kind in one sentence (员工 next to a head count)
    sentences = [b for s, b in zip(corpus.sentences[top_idx], top_sentences)
                 if not q.asks or has_value(q.asks, s, cues, people)] or [""]
    numbers = _NUMBER.findall(q.simplified)
    return np.array([
        entity, float(bool(q.unknown)), float(any(y not in corpus.years for y in q.years)),
        float(bool(q.years) and not any(y in top_years for y in q.years)),
        float(bool(q.asks) and not type_in_top), hits[0][2][NAMES.index("dense")], *missing,
        heads_absent(q.heads, low, corpus.bm25.idf), min(heads_absent(q.heads, s, corpus.bm25.idf) for s in sentences),
        _rarest_missing(q, corpus.bm25, low), float(any(n not in ctx for n in numbers)),
        *_unbound(q, top_sentences, top.date[:4], cues),
        *_answer_sentence(q, shown if shown is not None else ans.best_sentence(top, q, cues, people), people, cues),
        *hits[0][2],
    ], np.float32), ctx, type_in_top


def _answer_sentence(q: Question, s: str, people: list[str], cues: dict) -> list[float]:
    """How well the sentence shown as the answer answers: near misses are mostly a passage about
    the right thing whose best sentence holds no figure for the word asked (员工, 票价)."""
    plain = simplify(s)
    low = simplify(bridged(q, s)).lower()
    words = [w for w in q.content if re.fullmatch(r"[\u4e00-\u9fff]{2,}|[a-z]{3,}", w)
             and not any(w in e or e in w for e in q.entities)]
    value = 1.0
    if q.asks:
        value = float(has_value(q.asks, s, cues, people) and (q.asks not in ("number", "count") or ans.figure(plain, cues)))
    unit = ans.unit_figure(q.simplified)
    grams = bigrams(q.simplified)
    most = sum(len(t) for t in q.content + q.terms) + 0.5 * len(grams)
    return [value, 1 - _absent([h.lower() for h in q.heads], low), 1 - _absent(words, low),
            sum(e.lower() in low for e in q.entities) / len(q.entities) if q.entities else 1.0,
            float(bool(unit.search(plain))) if unit else 1.0,
            ans.sentence_score(s, q, grams, cues, people) / most if most else 0.0,
            float(all(y in low for y in q.years)) if q.years else 1.0]


def _years_at(sentence: str) -> tuple[list[tuple[int, str]], bool]:
    """(where each year is written, the year), and whether the sentence is English."""
    english = len(re.findall(r"[a-z]", sentence)) > len(re.findall(r"[\u4e00-\u9fff]", sentence))
    return [(m.start(), m.group(1)) for m in (_YEAR_EN if english else _YEAR_ZH).finditer(sentence)], english


def _values(asks: str | None, sentence: str, cues: dict, years: set[int]) -> list[int]:
    """Where a value of the asked kind starts in the sentence (a figure for number/count: the
    years at `years` and dates are not what 多少 asks; 2000多家 is a figure)."""
    if asks in ("number", "count", None):
        return [m.start() for m in _FIGURE.finditer(sentence)
                if m.start() not in years and not re.match(r"\s*[月日号]", sentence[m.end():])]
    pat = cues.get("value", {}).get(asks)
    return [m.start() for m in re.finditer(pat, sentence)] if pat else []


def _unbound(q: Question, sentences: list[str], doc_year: str, cues: dict) -> tuple[float, float]:
    """Whether a value in the best passage belongs to what is asked, not merely stands beside it:
    (no value there is governed by an asked year — the last year written before it, in English
    also the first one after it ("10 million m2 in 2023"), else the passage's running year, else
    the document's: "2010年发布…2009年产金77.6万两" does not answer for 2010;
    how far the nearest value stands from a word the question asks about, 1 when none in one
    sentence)."""
    year_hit, running, gap = False, doc_year, float(BIND_WINDOW)
    for s in sentences:
        marks, english = _years_at(s)
        heads_at = [m.start() for h in q.heads for m in re.finditer(re.escape(h.lower()), s)]
        for v in _values(q.asks, s, cues, {at for at, _ in marks}):
            before = [y for at, y in marks if at < v]
            after = [y for at, y in marks if at > v] if english else []
            year_hit = year_hit or (before[-1] if before else after[0] if after else running) in q.years
            gap = min([gap] + [abs(v - at) for at in heads_at])
        running = marks[-1][1] if marks else running
    year = float(bool(q.years) and q.asks != "date" and not year_hit)
    return year, (gap / BIND_WINDOW if q.heads else 0.0)


def bridged(q: Question, text: str) -> str:
    """The text, plus the question's Chinese words whose English translation it holds: an
    English passage about 供暖 says heating, and that counts as saying 供暖."""
    if not q.translations:
        return text
    low = text.lower()
    found = [w for w, ts in q.translations.items() if any(re.search(rf"\b{re.escape(t)}", low) for t in ts)]
    return text + ("\n" + " ".join(found) if found else "")


def _absent(words: list[str], text: str) -> float:
    return sum(w not in text for w in words) / len(words) if words else 0.0


def _rarest_missing(q: Question, bm25: BM25Index, text: str) -> float:
    """The rarest question word the passage lacks (票价, 员工 where the corpus barely has them),
    as a share of the largest idf the corpus can give."""
    words = [w for w in q.content if re.fullmatch(r"[\u4e00-\u9fff]{2,}|[a-z0-9]{2,}", w)
             and not any(w in e or e in w for e in q.entities) and w not in text]
    top = np.log(bm25.n + 1) + np.log(2)
    return max((bm25.idf(w) for w in words), default=0.0) / top if bm25.n else 0.0


def _missing_words(q: Question, corpus: Corpus, contexts: list[str], sentences: list[str],
                   cues: dict) -> tuple[float, float, float]:
    """What the question asks about beyond its names: words absent from the top three passages,
    from the whole corpus (员工, 票价, 区长 where no document has them), and how much of it one
    sentence of the top three holds next to a value of the asked kind."""
    words = [w for w in q.content if re.fullmatch(r"[\u4e00-\u9fff]{2,}", w)
             and not any(w in e or e in w for e in q.entities)]
    if not words:
        return 0.0, 0.0, 1.0
    top3 = "\n".join(contexts)
    vocab = corpus.bm25.vocab
    unknown = sum(w not in vocab and not all("#" + w[i:i + 2] in vocab for i in range(len(w) - 1)) for w in words)
    support = max((1 - _absent(words, s) for s in sentences if not q.asks or has_value(q.asks, s, cues)), default=0.0)
    return _absent(words, top3), float(unknown), support
