"""The index an engine serves: one stored version with what a query reads besides its vectors,
held together so a new version replaces all of it at once."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .derived import derive
from .lexical import BM25Index
from .store import StoredIndex
from .vocab import CorpusVocab, core


@dataclass
class Live:
    """Everything one query needs, swapped as a whole when a new index goes live (what refusal
    reads of it is refusal.Corpus)."""
    stored: StoredIndex
    bm25: BM25Index
    vocab: CorpusVocab
    contexts: list[str]  # simplified title + heading + text of each passage
    sentences: list[list[str]]
    years: set[str]
    newest: dict[str, float]  # document month -> 1.0 for the newest … 0.0 for the oldest
    english: bool  # some passages are English: Chinese questions get dictionary translations
    covered: list[str] | None = None  # covered_places(), computed on first use


def make_live(stored: StoredIndex) -> Live:
    """A verified version made servable: its derived data read back (or computed once)."""
    d = derive(stored.path, stored.passages, stored.manifest.get("files", {}).get("passages.jsonl"))
    months = sorted({p.date[:7] for p in stored.passages if p.date})
    return Live(
        stored=stored, bm25=d.bm25, vocab=d.vocab, contexts=d.contexts, sentences=d.sentences,
        years=set(d.vocab.years),
        newest={m: i / max(1, len(months) - 1) for i, m in enumerate(months)},
        english=any(p.language.startswith("en") for p in stored.passages),
    )


def covered_places(live: Live) -> list[str]:
    """The administrative places the documents name (a place written with 区/市/县… somewhere),
    in order of first mention."""
    v = live.vocab
    text = "\n".join(live.contexts)
    admin = {core(n) for n in v.kinds if re.fullmatch(r"[\u4e00-\u9fff]{2,3}[区市县]", n) and core(n) != n}
    admin |= {n for n in v.kinds if re.fullmatch(r"[\u4e00-\u9fff]{2,3}", n) and core(n) == n and any(n + s in text for s in "区市县")}
    return sorted(admin, key=lambda n: text.find(n))[:15]
