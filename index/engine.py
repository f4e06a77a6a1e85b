"""The one facade the CLI and the bot use: build, load, answer.

A document goes loaders -> ingest (chunking; what to re-embed) -> embedder + lexical -> store
(`build`). A question goes question.analyse -> candidates (dense ∪ BM25) -> features.featurise ->
rank (learned weights) -> answer.best_sentence / compose, or refusal.inputs -> the refusal decision
and answer.refusal_reason (`answer`).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import answer as ans
from . import ingest
from .config import IndexSettings
from .embedder import Embedder
from .features import Pool, featurise, ranks
from .lexical import release_memory, tokenize
from .live import Live, covered_places, make_live
from .loaders import load_documents
from .models import Answer, Citation, Passage
from .question import Question, analyse
from . import refusal
from .rank import RankModel
from .store import IndexCorrupt, IndexMissing, IndexStore, StoredIndex, spot_check
from .textnorm import nfkc
from .vocab import curated

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)

CANDIDATES = 30  # per retriever; their union is what the reranker sees
RRF_K = 60


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


class Engine:
    def __init__(self, settings: IndexSettings | None = None, embedder: Embedder | None = None):
        self.settings = settings or IndexSettings()
        self.store = IndexStore(self.settings.index_dir, self.settings.hnsw_ef_search)
        self._embedder = embedder
        self._live: Live | None = None
        self._build_lock = threading.Lock()
        self._distrusted: set[str] = set()  # versions whose vectors failed the spot check
        self._model: RankModel | None = None

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
        self._live = make_live(stored)

    @property
    def version(self) -> str:
        return self._live.stored.version if self._live else ""

    @property
    def manifest(self) -> dict:
        return self._live.stored.manifest if self._live else {}

    def documents(self) -> list[dict]:
        return [{"doc_id": k, **v} for k, v in self.manifest.get("documents", {}).items()]

    def covered_places(self) -> list[str]:
        """The administrative places the documents name (a place written with 区/市/县… somewhere),
        in order of first mention: what a refusal can offer instead."""
        live = self._live
        if not live:
            return []
        if live.covered is None:  # once per index version: it scans the whole corpus text
            live.covered = covered_places(live)
        return live.covered

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
        todo = ingest.plan(loaded, previous, s.max_passage_chars)
        report = BuildReport(version="", failures=loaded.failures, added=todo.added, changed=todo.changed,
                             removed=todo.removed, unchanged=todo.unchanged)
        report.embedded = ingest.embed(todo, emb.encode_passages, batch_size, progress)
        passages, vectors = todo.passages, todo.vectors
        if not passages:  # e.g. documents holding only a title: an empty index would answer nothing
            raise RuntimeError(f"the documents in {s.docs_dir} contain no text to index")
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, emb.dim), np.float32)
        meta = {"model": emb.name, "chunking": chunking, "documents": todo.documents}
        stored = self.store.write(passages, matrix, meta, s.hnsw_min_passages)  # read back and verified
        self._live = make_live(stored)
        release_memory()  # the previous version's BM25, vocabulary and passages, just dropped
        getattr(emb, "page_out", lambda: None)()  # the weight pages the embedding touched
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

    # -- query: question -> candidates -> features -> rank -> answer or refuse ---------------
    @property
    def model(self) -> RankModel:
        if self._model is None:
            self._model = RankModel.load(self.settings.rank_model)
        return self._model

    def analyse(self, question: str, live: Live | None = None) -> Question:
        live = live or self._live
        return analyse(question, live.vocab, curated(str(self.settings.vocab_dir)), live.bm25.vocab,
                       english_docs=live.english)

    def candidates(self, q: Question, live: Live, k: int = CANDIDATES, plain: bool = False) -> Pool:
        """Union of the dense and the BM25 top-k, with both scores for every member. `plain`:
        the question as typed, without repaired names, glossary terms or translations (baselines)."""
        n = len(live.stored.passages)
        kk = min(n, k)
        qv = self.embedder.encode_query(q.simplified if plain else q.dense_text)
        _, dids = live.stored.index.search(qv[None, :], kk)
        dids = dids[0][dids[0] >= 0]
        raw = live.bm25.scores(tokenize(q.simplified) if plain else q.tokens)
        bids = np.argpartition(-raw, kk - 1)[:kk] if kk < n else np.arange(n)
        bids = bids[raw[bids] > 0]
        ids = np.array(list(dict.fromkeys([int(i) for i in dids] + [int(i) for i in bids])), np.int64)
        dense = (np.asarray(live.stored.vectors[np.sort(ids)], np.float32) @ qv)[np.argsort(np.argsort(ids))]
        bm = raw[ids]
        return Pool(ids=ids, dense=dense, bm25=bm,
                    dense_rank=ranks(dense), bm25_rank=np.where(bm > 0, ranks(bm), 2 * k))

    def search(self, question: str | Question, k: int = 10, retriever: str | None = None,
               live: Live | None = None) -> list[tuple[Passage, float, np.ndarray, int]]:
        """[(passage, score, features, passage index)] best first. retriever: hybrid (planbot's learned ranker),
        or the plain baselines bm25, dense and rrf."""
        live = live or self._live
        if live is None:
            raise IndexMissing("no index loaded")
        if not live.stored.passages:
            return []
        q = question if isinstance(question, Question) else self.analyse(question, live)
        retriever = retriever or self.settings.retriever
        pool = self.candidates(q, live, plain=retriever != "hybrid")
        cues = curated(str(self.settings.vocab_dir)).cues
        x = featurise(q, pool, live.contexts, live.sentences, live.stored.passages, live.newest, live.vocab, cues)
        if retriever == "dense":
            scores = pool.dense
        elif retriever == "bm25":
            scores = pool.bm25
        elif retriever == "rrf":
            scores = 1 / (RRF_K + pool.dense_rank) + 1 / (RRF_K + pool.bm25_rank)
        else:
            scores = self.model.rank(x)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(live.stored.passages[pool.ids[i]], float(scores[i]), x[i], int(pool.ids[i])) for i in order]

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
            cues = curated(str(self.settings.vocab_dir)).cues
            q = self.analyse(text, live)
            retriever = retriever or self.settings.retriever
            hits = self.search(q, k=max(k, 5), retriever=retriever, live=live)
            if not hits:
                result.reason = "资料里没有和这个问题相关的内容。"
                return result
            top_idx = hits[0][3]
            people = live.vocab.people_in(top_idx) if q.asks == "person" else []
            result.citations = [
                Citation(rank=i + 1, passage=p, score=score,
                         best_sentence=ans.best_sentence(p, q, cues, people if i == 0 else ()))
                for i, (p, score, _, _) in enumerate(hits[:k])
            ]
            if retriever == "hybrid":
                reason = self._refusal(q, live, hits, cues, result.citations[0].best_sentence)
                if reason:
                    result.citations = []
                    result.reason = reason
                    return result
            result.answered = True
            result.text = ans.compose(q, result.citations, cues)
            return result
        finally:
            result.latency_ms = (time.perf_counter() - t0) * 1000

    def refusal_inputs(self, q: Question, live: Live, hits, cues: dict,
                       shown: str | None = None) -> tuple[np.ndarray, str, bool]:
        return refusal.inputs(q, live, hits, cues, shown)

    def _refusal(self, q: Question, live: Live, hits, cues: dict, shown: str) -> str | None:
        r, ctx, type_in_top = self.refusal_inputs(q, live, hits, cues, shown)
        if q.unknown_places:  # a place no document mentions: nothing in them can be about it
            return ans.refusal_reason(q, live.vocab, live.years, hits[0][0], ctx, type_in_top)
        if self.model.answerable(r) >= self.model.threshold:
            return None
        return ans.refusal_reason(q, live.vocab, live.years, hits[0][0], ctx, type_in_top)
