"""Benchmarks that print numbers: warm `ask` latency, build throughput, and scale
(synthetic corpora recombined from the article's own sentences)."""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .chunking import split_sentences
from .config import IndexSettings
from .engine import Engine
from .evaluate import _pct, load_gold
from .lexical import release_memory


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    """Resident set right now (Linux), as opposed to the peak, which includes model loading."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def bench_engine(queries: int) -> dict:
    """Cold build into a scratch var/ (throughput) then warm `ask` latency on the gold questions."""
    base = IndexSettings()
    with tempfile.TemporaryDirectory() as tmp:
        settings = base.model_copy(update={"var_dir": Path(tmp)})
        os.symlink(base.model_cache.resolve(), Path(tmp) / "models") if base.model_cache.exists() else None
        engine = Engine(settings)
        engine.embedder  # load the model outside the timed build
        report = engine.build()
        questions = [r["question"] for r in load_gold(Path("data/eval/questions.jsonl"))]
        for q in questions[:5]:
            engine.answer(q)  # warm-up
        lat = [engine.answer(questions[i % len(questions)]).latency_ms for i in range(queries)]
    return {
        "build_passages": report.passages, "build_seconds": round(report.seconds, 2),
        "build_passages_per_s": round(report.passages / report.seconds, 1),
        "ask_p50_ms": round(_pct(lat, 0.5), 1), "ask_p95_ms": round(_pct(lat, 0.95), 1),
        "ask_mean_ms": round(statistics.mean(lat), 1), "queries": queries,
    }


def synthetic_passages(n: int, seed: int = 7) -> list[str]:
    """N passages of 2-5 article sentences, recombined; no outside text."""
    engine_docs = IndexSettings().docs_dir
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(engine_docs.glob("*.txt")))
    sentences = [s.strip() for s in split_sentences(text.replace("\n", "")) if len(s.strip()) > 8]
    rng = random.Random(seed)
    return ["".join(rng.sample(sentences, rng.randint(2, 5))) for _ in range(n)]


def _vectors(emb, texts: list[str], embed_max: int, seed: int = 3) -> tuple[np.ndarray, float, int]:
    """Model vectors for the first `embed_max` passages (timed); beyond that, perturbed copies
    of them so a 100k index exists without 70 minutes of embedding. Returns (vectors, s, embedded)."""
    m = min(len(texts), embed_max)
    t0 = time.perf_counter()
    real = emb.encode_passages(texts[:m], batch_size=32)
    seconds = time.perf_counter() - t0
    if m == len(texts):
        return real, seconds, m
    rng = np.random.default_rng(seed)
    extra = real[np.arange(m, len(texts)) % m] + rng.normal(0, 0.02, (len(texts) - m, real.shape[1])).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.vstack([real, extra]).astype(np.float32), seconds, m


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def bench_scale(n: int, queries: int, embed_max: int) -> dict:
    """One corpus size, both index kinds: build pieces, disk size, full `answer` latency through the
    Engine (BM25 + FAISS + fusion + refusal), FAISS-only latency, HNSW recall@10 against flat."""
    from .models import Passage

    base = IndexSettings()
    texts = synthetic_passages(n)
    passages = [Passage(passage_id=f"synthetic#{i}", doc_id="synthetic", title="synthetic", heading="",
                        paragraph=i, start=0, end=len(t), text=t) for i, t in enumerate(texts)]
    gold = [r["question"] for path in ("data/eval/questions.jsonl", "data/eval/holdout.jsonl")
            for r in load_gold(Path(path))]
    row: dict = {"passages": n}
    with tempfile.TemporaryDirectory() as tmp:
        settings = base.model_copy(update={"var_dir": Path(tmp)})
        os.symlink(base.model_cache.resolve(), Path(tmp) / "models")
        engine = Engine(settings)
        emb = engine.embedder
        vecs, embed_s, embedded = _vectors(emb, texts, embed_max)
        row.update(model_embedded=embedded, embed_passages_per_s=round(embedded / embed_s, 1))
        qvecs = np.vstack([emb.encode_query(q) for q in gold + [t[:30] for t in texts[:100]]])
        versions, write_s = {}, {}
        for kind, hnsw_min in (("flat", n + 1), ("hnsw", 1)):
            t0 = time.perf_counter()
            versions[kind] = engine.store.write(passages, vecs, {"model": emb.name, "documents": {}}, hnsw_min).version
            write_s[kind] = time.perf_counter() - t0
        del vecs, passages, texts  # what remains is what a serving process holds
        release_memory()
        ids, live = {}, None
        for kind, version in versions.items():
            t0 = time.perf_counter()
            stored = engine.store.load(model=emb.name, dim=emb.dim, version=version)
            # BM25 over all N texts and the place lists: built once (in the flat row's load_s)
            live = replace(live, stored=stored) if live else engine._make_live(stored)
            engine._live = live
            load_s = time.perf_counter() - t0
            for q in gold[:5]:
                engine.answer(q)
            lat = [engine.answer(gold[i % len(gold)]).latency_ms for i in range(queries)]
            faiss_lat, found = [], []
            for qv in qvecs:
                t = time.perf_counter()
                _, I = stored.index.search(qv[None, :], 10)
                faiss_lat.append((time.perf_counter() - t) * 1000)
                found.append(I[0])
            ids[kind] = found
            release_memory()
            row[kind] = {
                "write_s": round(write_s[kind], 2), "load_s": round(load_s, 2),
                "disk_mb": round(_dir_mb(engine.store.versions / version), 1),
                "ask_p50_ms": round(_pct(lat, 0.5), 1), "ask_p95_ms": round(_pct(lat, 0.95), 1),
                "faiss_p50_ms": round(_pct(faiss_lat, 0.5), 3), "faiss_p95_ms": round(_pct(faiss_lat, 0.95), 3),
                "rss_serving_mb": round(_rss_now_mb(), 0),  # model + index + BM25 + passages
            }
            del stored
        row["hnsw_recall@10"] = round(float(np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(ids["flat"], ids["hnsw"])])), 4)
    row["rss_peak_mb"] = round(_rss_mb(), 0)
    return row


def _scale_child(n: int, queries: int, embed_max: int, out) -> None:
    out.put(bench_scale(n, queries, embed_max))


def run_bench(args) -> int:
    """Each corpus size runs in a fresh process so its peak RSS is its own."""
    import multiprocessing as mp

    if not args.passages or args.engine:
        print(json.dumps({"engine": bench_engine(args.queries)}, indent=2), flush=True)
    ctx = mp.get_context("spawn")
    for n in args.passages:
        q = ctx.Queue()
        child = ctx.Process(target=_scale_child, args=(n, min(args.queries, 300), args.embed_max, q))
        child.start()
        row = q.get()
        child.join()
        print(json.dumps(row, indent=2), flush=True)
    return 0
