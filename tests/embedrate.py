#!/usr/bin/env python3
"""Passage embedding rate of the served session against the exported graph served as it was before
(full graph with its padding guards, ONNX Runtime's memory arena on), in one run, alternating blocks
so both see the same machine: passages/s through Embedder.encode_passages (every core) and CPU ms
per passage on one thread (steadier on a shared machine). Vectors are checked identical.

`python tests/embedrate.py [--passages 120] [--rounds 3]`
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    import onnxruntime as ort

    from index.bench import synthetic_passages
    from index.config import IndexSettings
    from index.e5model import MODEL_NAME, ONNX_FILE
    from index.embedder import Embedder

    settings = IndexSettings()
    emb = Embedder(settings.embedding_model, settings.model_cache)
    served = emb._onnx.session
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    before = ort.InferenceSession(str(settings.model_cache / MODEL_NAME / ONNX_FILE), opts,
                                  providers=["CPUExecutionProvider"])
    sessions = {"before (exported graph, arena)": before, "served": served}
    texts = synthetic_passages(a.passages, seed=11)
    ids = [np.asarray(emb._onnx.tokenizer.encode(emb._passage_prefix + t), np.int64)[None, :] for t in texts]
    rate: dict[str, list[float]] = {k: [] for k in sessions}
    cpu: dict[str, list[float]] = {k: [] for k in sessions}
    vectors = {}
    for _ in range(a.rounds):
        for name, session in sessions.items():
            emb._onnx.session = session
            t = time.perf_counter()
            vectors[name] = emb.encode_passages(texts)
            rate[name].append(len(texts) / (time.perf_counter() - t))
            t = time.thread_time()
            for x in ids:
                session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x)})
            cpu[name].append((time.thread_time() - t) * 1000 / len(ids))
    emb._onnx.session = served
    same = all(np.array_equal(vectors["served"], v) for v in vectors.values())
    tokens = statistics.median(x.shape[1] for x in ids)
    print(f"{len(texts)} synthetic passages (median {tokens:.0f} tokens), {a.rounds} alternating rounds; "
          f"vectors identical: {same}")
    for name in sessions:
        print(f"{name:32s} {statistics.median(rate[name]):6.1f} passages/s (all cores)   "
              f"{statistics.median(cpu[name]):5.1f} CPU ms/passage (one thread)")
    k0, k1 = list(sessions)
    print(f"served / before: {statistics.median(rate[k1]) / statistics.median(rate[k0]):.2f}x passages/s, "
          f"{statistics.median(cpu[k0]) / statistics.median(cpu[k1]):.2f}x less CPU per passage")
    return 0 if same else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
