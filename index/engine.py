"""The one facade the CLI and the bot use: build, search, answer."""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import answer as ans
from .chunking import chunk_document
from .config import IndexSettings
from .embedder import Embedder
from .gazetteer import PLACES, expansions
from .lexical import BM25Index
from .loaders import load_documents
from .models import Answer, Citation, Passage
from .store import IndexCorrupt, IndexMissing, IndexStore, StoredIndex, spot_check
from .textnorm import nfkc, simplify

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)

# Fusion weights, tuned on data/eval/questions.jsonl (README: "Quality").
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 0.35
PLACE_BOOST = 0.16  # passages naming the place the question asks about
MIN_DENSE = 0.80   # below this, with no lexical support, nothing in the documents is close
MIN_DENSE_EN = 0.78
TYPE_BOOST = 0.2   # a "who" question and a passage naming someone by the asked title
EN_LEXICAL = 0.3   # English questions lean on the glossary-bridged lexical signal this much


EMPTY_REASON = "问题是空的，请输入一个关于县域经济三年行动方案的问题。"


def is_empty(question: str) -> bool:
    """Nothing to look up (blank, punctuation, emoji): refuse before touching the model."""
    return not re.search(r"[\w\u4e00-\u9fff]", nfkc(question or ""))


@dataclass
class BuildReport:
    version: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    passages: int = 0
    embedded: int = 0
    seconds: float = 0.0


@dataclass
class _Live:
    """Everything one query needs, swapped as a whole when a new index goes live."""
    stored: StoredIndex
    bm25: BM25Index
    corpus_text: str
    years: set[str]
    places: list[str]
    place_passages: dict[str, np.ndarray]  # known place -> passages naming it (place-focus boost)
    place_count: np.ndarray  # how many known places each passage names
    titled: dict[str, np.ndarray]  # title (书记, 记者…) -> passages naming someone by it


class Engine:
    def __init__(self, settings: IndexSettings | None = None, embedder: Embedder | None = None):
        self.settings = settings or IndexSettings()
        self.store = IndexStore(self.settings.index_dir)
        self._embedder = embedder
        self._live: _Live | None = None
        self._build_lock = threading.Lock()
        self._distrusted: set[str] = set()  # versions whose vectors failed the spot check

    # -- lifecycle -------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.settings.embedding_model, self.settings.model_cache)
        return self._embedder

    @classmethod
    def open(cls, settings: IndexSettings | None = None, build_if_missing: bool = True) -> "Engine":
        engine = cls(settings)
        try:
            engine.load()
        except IndexMissing:
            if not build_if_missing:
                raise
            engine.build()
        return engine

    def load(self) -> None:
        """Serve CURRENT. If it is damaged and nothing is live yet, serve the newest intact older
        version (logged) rather than stay down; a live engine keeps what it serves and raises."""
        emb = self.embedder

        def check(stored: StoredIndex) -> None:
            spot_check(stored, emb.encode_passages, emb.name)

        try:
            stored = self.store.load(model=emb.name, dim=emb.dim, check=check)
        except IndexCorrupt as exc:
            self._distrusted.add(exc.version or "")
            if self._live is not None:
                raise
            stored = self.store.load_fallback(exc, model=emb.name, dim=emb.dim, check=check)
            log.warning("%s; serving the older intact version %s until the next build", exc, stored.version)
        self._live = self._make_live(stored)

    def _make_live(self, stored: StoredIndex) -> _Live:
        corpus_text = simplify("\n".join(p.text for p in stored.passages))
        dates = [d.get("date", "") for d in stored.manifest.get("documents", {}).values()]
        places = [p for p in PLACES if p in corpus_text and p != "烟台"]
        place_passages = {pl: np.array([i for i, p in enumerate(stored.passages) if pl in p.text], np.int64)
                          for pl in places}
        place_count = np.zeros(len(stored.passages), np.float32)
        for idx in place_passages.values():
            place_count[idx] += 1
        return _Live(
            stored=stored, bm25=BM25Index([p.text for p in stored.passages]), corpus_text=corpus_text,
            years=set(re.findall(r"(?<!\d)(20\d\d)(?=\s*年)", corpus_text))
            | {d[:4] for d in dates if d[:4].isdigit()},
            places=places,
            place_passages=place_passages,
            place_count=place_count,
            titled=ans.titled_passages([p.text for p in stored.passages]),
        )

    @property
    def version(self) -> str:
        return self._live.stored.version if self._live else ""

    @property
    def manifest(self) -> dict:
        return self._live.stored.manifest if self._live else {}

    def documents(self) -> list[dict]:
        return [{"doc_id": k, **v} for k, v in self.manifest.get("documents", {}).items()]

    def covered_places(self) -> list[str]:
        return self._live.places if self._live else []

    @property
    def building(self) -> bool:
        return self._build_lock.locked()

    def build(self, progress: Progress | None = None, batch_size: int = 16) -> BuildReport:
        """Re-embed only documents whose content hash changed, write a new version, switch to it."""
        if not self._build_lock.acquire(blocking=False):
            raise RuntimeError("a build is already running")
        try:
            return self._build(progress, batch_size)
        finally:
            self._build_lock.release()

    def _build(self, progress: Progress | None, batch_size: int) -> BuildReport:
        t0 = time.perf_counter()
        s = self.settings
        loaded = load_documents(s.docs_dir)
        if not loaded.documents:
            raise RuntimeError(f"no readable documents in {s.docs_dir}: {loaded.failures or 'folder is empty'}")
        emb = self.embedder
        chunking = {"max_chars": s.max_passage_chars}
        previous = self._previous(emb.name, chunking)
        old_docs = previous.manifest.get("documents", {}) if previous else {}
        report = BuildReport(version="", failures=loaded.failures)
        passages: list[Passage] = []
        vectors: list[np.ndarray] = []
        todo: list[tuple[int, Passage]] = []
        docs_meta = {}
        for doc in loaded.documents:
            ps = chunk_document(doc, max_chars=s.max_passage_chars)
            old = old_docs.get(doc.doc_id)
            if old and old.get("hash") == doc.content_hash:
                report.unchanged.append(doc.doc_id)
                idx = [i for i, p in enumerate(previous.passages) if p.doc_id == doc.doc_id]
                passages.extend(previous.passages[i] for i in idx)
                vectors.extend(previous.vectors[i] for i in idx)
            else:
                (report.changed if old else report.added).append(doc.doc_id)
                for p in ps:
                    todo.append((len(passages), p))
                    passages.append(p)
                    vectors.append(None)  # type: ignore[arg-type]
            docs_meta[doc.doc_id] = {
                "hash": doc.content_hash, "title": doc.title, "date": doc.date, "url": doc.url,
                "outlet": doc.outlet, "path": doc.path,
                "passages": sum(1 for p in passages if p.doc_id == doc.doc_id),
            }
        report.removed = [d for d in old_docs if d not in docs_meta and d not in loaded.failed_ids]
        # A document that failed to load keeps its previous passages rather than vanishing.
        for doc_id in loaded.failed_ids:
            if doc_id in old_docs and doc_id not in docs_meta:
                idx = [i for i, p in enumerate(previous.passages) if p.doc_id == doc_id]
                passages.extend(previous.passages[i] for i in idx)
                vectors.extend(previous.vectors[i] for i in idx)
                docs_meta[doc_id] = old_docs[doc_id]
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vecs = emb.encode_passages([p.text for _, p in batch], batch_size=batch_size)
            for (i, _), v in zip(batch, vecs):
                vectors[i] = v
            if progress:
                progress("embed", min(start + batch_size, len(todo)), len(todo))
        report.embedded = len(todo)
        if not passages:  # e.g. documents holding only a title: an empty index would answer nothing
            raise RuntimeError(f"the documents in {s.docs_dir} contain no text to index")
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, emb.dim), np.float32)
        meta = {"model": emb.name, "chunking": chunking, "documents": docs_meta}
        stored = self.store.write(passages, matrix, meta, s.hnsw_min_passages)  # read back and verified
        self._live = self._make_live(stored)
        self.store.prune(keep=3)
        report.version, report.passages = stored.version, len(passages)
        report.seconds = time.perf_counter() - t0
        return report

    def _previous(self, model: str, chunking: dict) -> StoredIndex | None:
        try:
            prev = self._live.stored if self._live else self.store.load(model=model)
        except Exception as exc:
            log.info("no reusable previous index: %s", exc)
            return None
        if prev.version in self._distrusted or prev.manifest.get("model") != model \
                or prev.manifest.get("chunking") != chunking:
            return None
        return prev

    # -- query -----------------------------------------------------------------
    def search(self, question: str, k: int = 10, retriever: str | None = None,
               live: _Live | None = None, analysis: ans.Analysis | None = None) -> list[tuple[Passage, float, float, float]]:
        """[(passage, fused, dense, lexical)] best first."""
        live = live or self._live
        if live is None:
            raise IndexMissing("no index loaded")
        retriever = retriever or self.settings.retriever
        a = analysis or ans.analyse(nfkc(question).strip(), expansions(simplify(nfkc(question))))
        n = len(live.stored.passages)
        if n == 0:
            return []
        dense = np.zeros(n, np.float32)
        if retriever in ("dense", "hybrid"):
            hints = a.expansions + a.terms  # place repairs and glossary terms steer the dense query too
            qtext = a.simplified + ("（" + "、".join(hints) + "）" if hints else "")
            qv = self.embedder.encode_query(qtext)
            kk = min(n, max(k * 5, 50))
            sims, ids = live.stored.index.search(qv[None, :], kk)
            dense[:] = sims[0][-1] if kk < n else 0.0
            dense[ids[0][ids[0] >= 0]] = sims[0][ids[0] >= 0]
        lexical = np.zeros(n, np.float32)
        if retriever in ("bm25", "hybrid"):
            raw = live.bm25.scores(a.tokens)
            lexical = raw / raw.max() if raw.max() > 0 else raw
        if retriever == "dense":
            fused = dense
        elif retriever == "bm25":
            fused = lexical
        else:
            w = LEXICAL_WEIGHT * (EN_LEXICAL if a.english else 1.0)
            fused = DENSE_WEIGHT * dense + w * lexical
        names = [p for p in a.places + a.expansions if p not in ("烟台", "烟台市")]
        if names and retriever != "dense":
            fused = fused + PLACE_BOOST * self._place_focus(live, names)
        if a.qtype == "person" and retriever != "dense":  # "谁…" wants a passage that names someone
            fused = fused + TYPE_BOOST * ans.person_focus(a, live.titled, n)
        top = np.argpartition(-fused, k - 1)[:k] if k < n else np.arange(n)  # O(n), not a full sort
        order = top[np.argsort(-fused[top])]
        if names and retriever == "hybrid":
            order = self._diversify(live, names, order, fused)[:k]
        return [(live.stored.passages[i], float(fused[i]), float(dense[i]), float(lexical[i])) for i in order]

    @staticmethod
    def _known(live: _Live, names: list[str]) -> list[str]:
        """Asked names mapped onto the indexed places (莱山区 -> 莱山), in question order."""
        out = []
        for nm in names:
            for cand in (nm, ans._strip_suffix(nm)):
                if cand in live.place_passages and cand not in out:
                    out.append(cand)
                    break
        return out

    @staticmethod
    def _place_focus(live: _Live, names: list[str]) -> np.ndarray:
        """1 for a passage about the asked place; diluted for roll-calls naming many places.
        Inverted lists keep this O(matches), not O(passages), per query."""
        n = len(live.stored.passages)
        named = np.zeros(n, np.float32)
        for place in Engine._known(live, names):
            named[live.place_passages[place]] += 1
        matched = named > 0
        for nm in names:  # a name outside the gazetteer (烟台山): rare, scan only if it occurs at all
            if nm not in live.place_passages and ans._strip_suffix(nm) not in live.place_passages \
                    and nm in live.corpus_text:
                matched |= np.array([nm in p.text for p in live.stored.passages])
        out = np.zeros(n, np.float32)
        out[matched] = 1.0 / (1.0 + live.place_count[matched] - named[matched])
        return out

    @staticmethod
    def _diversify(live: _Live, names: list[str], order: np.ndarray, fused: np.ndarray) -> np.ndarray:
        """A question about several places ("长岛和昆嵛山…") leads with each place's best passage,
        in the order asked, so no place is crowded out of the citations."""
        places = Engine._known(live, names)
        if len(places) < 2:
            return order
        lead: list[int] = []
        asked = np.zeros(len(fused), np.int64)  # how many of the asked places each passage names
        for place in places:
            asked[live.place_passages[place]] += 1
        for place in places:
            idx = live.place_passages[place]
            idx = idx[np.argsort(-fused[idx])]
            focused = [i for i in idx if asked[i] == 1]  # about this place alone, if any
            cands = [i for i in focused + list(idx) if i not in lead]
            if cands:
                lead.append(int(cands[0]))
        rest = [int(i) for i in order if i not in lead]
        return np.array(lead + rest)

    def answer(self, question: str, retriever: str | None = None, top_k: int | None = None) -> Answer:
        t0 = time.perf_counter()
        live = self._live
        result = Answer(question=question, answered=False, index_version=live.stored.version if live else "")
        try:
            text = nfkc(question or "").strip()
            if is_empty(text):
                result.reason = EMPTY_REASON
                return result
            if live is None:
                result.reason = "索引还没有建立，请先运行 planbot build。"
                return result
            k = top_k or self.settings.top_k
            a = ans.analyse(text, expansions(simplify(text)))
            hits = self.search(text, k=max(k, 5), retriever=retriever, live=live, analysis=a)
            top = [h[0] for h in hits[:k]]
            reason = self._refusal(a, live, hits, top)
            if reason:
                result.reason = reason
                return result
            result.citations = [
                Citation(rank=i + 1, passage=p, score=fused, best_sentence=ans.best_sentence(p, a))
                for i, (p, fused, _, _) in enumerate(hits[:k])
            ]
            result.answered = True
            result.text = result.citations[0].best_sentence
            return result
        finally:
            result.latency_ms = (time.perf_counter() - t0) * 1000

    def _refusal(self, a: ans.Analysis, live: _Live, hits, top: list[Passage]) -> str | None:
        covered = "、".join(live.places)
        place = ans.unknown_place(a, live.corpus_text)
        if place:
            return f"文档中没有提到“{place}”。文档涉及的区市和园区有：{covered}。"
        year = ans.unknown_year(a, live.years)
        if year:
            span = f"（文档发布于{min(live.years)}年，目标截至{max(live.years)}年）" if live.years else ""
            return f"文档没有涉及{year}年的内容{span}。"
        pool = [h[0] for h in hits]
        gap = ans.unpaired_year(a, pool) or ans.typed_gap(a, pool)
        if gap:
            return gap
        if not hits:
            return "文档里没有相关内容。"
        best_dense = max(h[2] for h in hits)
        best_lex = max(h[3] for h in hits)
        known = [t for t in a.tokens if t in live.bm25.vocab]
        coverage = len(known) / max(1, len(a.tokens))
        floor = MIN_DENSE_EN if a.english else MIN_DENSE
        supported = any(e in live.corpus_text for e in a.expansions) if a.english else (coverage >= 0.5 and best_lex > 0)
        if best_dense < floor and not supported:
            return f"文档里没有和这个问题相关的内容。文档讲的是烟台振兴县域经济三年行动方案，涉及：{covered}。"
        return None
