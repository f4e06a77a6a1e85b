"""Tokenizers for the ONNX embedder: tokenizer.json's Unigram model served by SentencePiece (the
default), or by `tokenizers` when an export wrote no SentencePiece model."""
from __future__ import annotations

from pathlib import Path


class SentencePieceTokenizer:
    """tokenizer.json's Unigram tokenizer served by SentencePiece (see onnxexport.write_sentencepiece):
    ids identical to the `tokenizers` ones, at a quarter of the memory. Reproduces the parts
    SentencePiece does not do itself: special tokens written in the text are split out first (each
    segment gets its own word-start mark, as in `tokenizers`), a segment ending in whitespace keeps
    one trailing "▁" piece, bos/eos are added and the ids truncated to `max_length`."""

    def __init__(self, path: Path, spec: dict, max_length: int):
        import re

        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.bos, self.eos, self.space = int(spec["bos"]), int(spec["eos"]), int(spec["space_piece"])
        self.special = {k: int(v) for k, v in spec["special"].items()}
        self._split = re.compile("(" + "|".join(map(re.escape, sorted(self.special, key=len, reverse=True))) + ")")
        self.max_length = max_length
        self._blank: dict[str, str] = {}  # char -> "space" | "gone" | "text" after normalisation

    def _kind(self, ch: str) -> str:
        kind = self._blank.get(ch)
        if kind is None:
            norm = self.sp.normalize(f"a{ch}a")
            kind = "space" if norm == "▁a▁a" else "gone" if norm == "▁aa" else "text"
            if len(self._blank) < 10_000:
                self._blank[ch] = kind
        return kind

    def _segment(self, text: str) -> list[int]:
        ids = self.sp.encode(text)
        for ch in reversed(text):  # `tokenizers` keeps a trailing space as a piece; SentencePiece drops it
            kind = self._kind(ch)
            if kind == "space":
                return ids + [self.space]
            if kind == "text":
                break
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, part in enumerate(self._split.split(text) if self.special else [text]):
            if i % 2:
                ids.append(self.special[part])
            elif part:
                ids.extend(self._segment(part))
        return [self.bos, *ids[: self.max_length - 2], self.eos]


class FastTokenizer:
    def __init__(self, tok):
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids
