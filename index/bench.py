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
from pathlib import Path

import faiss
import numpy as np

from .chunking import split_sentences
from .config import IndexSettings
from .engine import Engine
from .evaluate import _pct, load_gold
from .store import make_faiss


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def bench_scale(n: int, queries: int, engine: Engine) -> dict:
    texts = synthetic_passages(n)
    emb = engine.embedder
    t0 = time.perf_counter()
    vecs = np.vstack([emb.encode_passages(texts[i : i + 64], batch_size=64) for i in range(0, n, 64)])
    embed_s = time.perf_counter() - t0
    rng = random.Random(1)
    qtexts = [rng.choice(texts)[:30] for _ in range(queries)]
    qvecs = np.vstack([emb.encode_query(q) for q in qtexts])
    row = {"passages": n, "embed_passages_per_s": round(n / embed_s, 1)}
    results = {}
    for kind, hnsw_min in (("flat", n + 1), ("hnsw", 1)):
        t0 = time.perf_counter()
        index, _ = make_faiss(vecs, hnsw_min)
        add_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            faiss.write_index(index, str(Path(tmp) / "i.faiss"))
            size_mb = (Path(tmp) / "i.faiss").stat().st_size / 2**20
        lat, ids = [], []
        for qv in qvecs:
            t = time.perf_counter()
            _, I = index.search(qv[None, :], 10)
            lat.append((time.perf_counter() - t) * 1000)
            ids.append(I[0])
        results[kind] = ids
        row[kind] = {"index_build_s": round(add_s, 2), "size_mb": round(size_mb, 1),
                     "search_p50_ms": round(_pct(lat, 0.5), 3), "search_p95_ms": round(_pct(lat, 0.95), 3)}
    t = time.perf_counter()
    for q in qtexts[:50]:
        emb.encode_query(q)
    row["query_embed_ms"] = round((time.perf_counter() - t) * 1000 / 50, 1)
    row["recall@10_hnsw_vs_flat"] = round(float(np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(results["flat"], results["hnsw"])])), 4)
    row["rss_mb"] = round(_rss_mb(), 0)
    return row


def run_bench(args) -> int:
    out = {"engine": bench_engine(args.queries)}
    print(json.dumps(out, indent=2))
    if args.passages:
        engine = Engine(IndexSettings())
        for n in args.passages:
            row = bench_scale(n, min(args.queries, 200), engine)
            print(json.dumps(row, indent=2), flush=True)
    return 0
