"""General features of a (question, candidate passage) pair: they mean the same in any corpus.

No feature knows a place, a title or a topic; each measures agreement between what the question
names or asks and what the passage (with its document's title, heading and date) holds."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .models import Passage
from .question import Question
from .vocab import YEAR, CorpusVocab

NAMES = [
    "dense", "dense_gap", "bm25", "rrf", "cover_words", "cover_bigrams", "best_sentence",
    "entity_match", "entity_missing", "other_places", "year_asked_here", "year_other_only",
    "year_doc", "recency", "type_value", "length", "lang_match", "title_cover", "heads_here",
    "terms_here",
]
_NAME = re.compile(r"[\u4e00-\u9fff]{2,3}(?=说|表示|介绍|指出|认为|称)")


@dataclass
class Pool:
    """Candidates of one question: passage ids with their raw retriever scores and ranks."""
    ids: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    dense_rank: np.ndarray
    bm25_rank: np.ndarray


def ranks(values: np.ndarray) -> np.ndarray:
    """A pool's retriever ranks: 1 for the largest value."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), np.float32)
    out[order] = np.arange(1, len(values) + 1)
    return out


def bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for run in re.findall(r"[\u4e00-\u9fff]{2,}", text) for i in range(len(run) - 1)}


def has_value(asks: str | None, text: str, cues: dict, people: list[str] = ()) -> bool:
    """The text holds a value of the asked kind: a person (a name jieba tags as one, or someone
    quoted), a date, a count, a figure."""
    if not asks:
        return False
    if asks == "person":
        return any(p in text for p in people) or bool(_NAME.search(text))
    pat = cues.get("value", {}).get(asks)
    return bool(pat and re.search(pat, text))


def featurise(q: Question, pool: Pool, contexts: list[str], sentences: list[list[str]], passages: list[Passage],
              newest: dict[str, float], vocab: CorpusVocab, cues: dict) -> np.ndarray:
    """One row per candidate, columns in NAMES order."""
    n = len(pool.ids)
    out = np.zeros((n, len(NAMES)), np.float32)
    if n == 0:
        return out
    content = q.content + [t for t in q.terms if t not in q.content]
    qgrams = bigrams(re.sub(cues.get("question_words", "^$"), " ", q.simplified))
    dmax = float(pool.dense.max()) if n else 0.0
    bmax = float(pool.bm25.max()) or 1.0
    asked_places = set(q.entities)
    for row, pid in enumerate(pool.ids):
        ctx = contexts[pid]
        low = ctx.lower()
        title_head = ctx.split("\n", 1)[0]
        f = out[row]
        f[0] = pool.dense[row]
        f[1] = pool.dense[row] - dmax
        f[2] = pool.bm25[row] / bmax
        f[3] = 30 * (1 / (60 + pool.dense_rank[row]) + 1 / (60 + pool.bm25_rank[row]))
        f[4] = sum(w in ctx for w in content) / len(content) if content else 0.0
        f[5] = len(qgrams & bigrams(ctx)) / len(qgrams) if qgrams else 0.0
        f[6] = max((len(qgrams & bigrams(s)) / len(qgrams) for s in sentences[pid]), default=0.0) if qgrams else 0.0
        if q.entities:
            hit = sum(vocab.named_in(e, ctx, low) for e in q.entities)
            f[7] = hit / len(q.entities)
            f[8] = float(hit == 0)
        others = [pl for pl in vocab.places_in(int(pid)) if pl not in asked_places]
        f[9] = math.log1p(len(others))
        if q.years:
            here = set(YEAR.findall(ctx))
            f[10] = float(any(y in here for y in q.years))
            f[11] = float(bool(here) and not any(y in here for y in q.years))
            f[12] = float(passages[pid].date[:4] in q.years)
        f[13] = newest.get(passages[pid].date[:7], 0.0) if q.recent else 0.0
        if q.asks:
            people = vocab.people_in(int(pid)) if q.asks == "person" else []
            f[14] = float(any(has_value(q.asks, s, cues, people) for s in sentences[pid]))
        f[15] = math.log1p(len(ctx)) / 6
        f[16] = float((passages[pid].language == "en") == q.english)
        f[17] = sum(w in title_head for w in content) / len(content) if content else 0.0
        f[18] = 1.0 - heads_absent(q.heads, low) if q.heads else 0.0
        f[19] = sum(t in low for t in q.terms) / len(q.terms) if q.terms else 0.0  # translations, glossary words
    return out


def heads_absent(heads: list[str], text: str, idf=None) -> float:
    """Share of the asked-about words (question.heads) the text lacks, each weighed by its idf
    when given (a generic word matters less); a compound word (主导产业) counts by the share of
    its character bigrams the text holds."""
    if not heads:
        return 0.0

    def lacks(w: str) -> float:
        if w in text:
            return 0.0
        grams = [w[i:i + 2] for i in range(len(w) - 1)] if re.fullmatch(r"[\u4e00-\u9fff]{3,}", w) else []
        return 1.0 - sum(g in text for g in grams) / len(grams) if grams else 1.0
    weights = [idf(w) if idf else 1.0 for w in heads]
    return sum(wt * lacks(w) for w, wt in zip(heads, weights)) / (sum(weights) or 1.0)
