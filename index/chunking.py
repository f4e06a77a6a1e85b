"""Split cleaned Chinese text into passages that respect sentences, paragraphs
and section headings, so each citation is a readable, self-contained snippet."""
from __future__ import annotations

import re

from .models import Document, Passage
from .textnorm import fold

_END = "。！？!?；;"
_CLOSERS = "”’」』）)》"
_SENTENCE = re.compile(f"[^{_END}]*(?:[{_END}]+[{_CLOSERS}]*|$)")
_NOT_HEADING_END = set(_END + "…" + "，,：:—、" + _CLOSERS)


def split_sentences(text: str) -> list[str]:
    """Sentences with their end marks and closing quotes; `,`/`，` and `?`/`？` alike."""
    return [s for s in (m.group(0) for m in _SENTENCE.finditer(text)) if s.strip()]


def is_heading(line: str, max_len: int = 30) -> bool:
    line = line.strip()
    return 0 < len(line) <= max_len and line[-1] not in _NOT_HEADING_END


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(start offset, paragraph) for each non-empty line."""
    out, pos = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            out.append((pos + line.index(stripped), stripped))
        pos += len(line) + 1
    return out


def _windows(start: int, para: str, max_chars: int) -> list[tuple[int, str]]:
    """Group a long paragraph's sentences into pieces under max_chars."""
    pieces, cur, cur_start, offset = [], "", start, start
    for sent in split_sentences(para):
        if cur and len(cur) + len(sent) > max_chars:
            pieces.append((cur_start, cur))
            cur, cur_start = "", offset
        cur += sent
        offset += len(sent)
    if cur:
        pieces.append((cur_start, cur))
    return pieces


def chunk_document(doc: Document, max_chars: int = 260, min_chars: int = 40) -> list[Passage]:
    passages: list[Passage] = []
    heading_lines: list[str] = []
    heading, para_no = "", 0
    pending: tuple[int, int, str] | None = None  # (paragraph, start, text) of a short paragraph

    def emit(no: int, start: int, text: str) -> None:
        passages.append(Passage(
            passage_id=f"{doc.doc_id}#{len(passages)}", doc_id=doc.doc_id, title=doc.title,
            heading=heading, paragraph=no, start=start, end=start + len(text), text=text,
            url=doc.url, date=doc.date,
        ))

    for idx, (start, para) in enumerate(_paragraphs(doc.text)):
        if idx == 0 and fold(para) == fold(doc.title):
            continue
        if is_heading(para):
            if pending:
                emit(*pending)
                pending = None
            heading_lines.append(para)
            heading = " · ".join(heading_lines[-2:])
            continue
        heading_lines = []
        para_no += 1
        if pending:
            p_no, p_start, p_text = pending
            gap = doc.text[p_start + len(p_text) : start]
            merged = p_text + gap + para
            if len(merged) <= max_chars:
                pending = (p_no, p_start, merged) if len(merged) < min_chars else None
                if pending is None:
                    emit(p_no, p_start, merged)
                continue
            emit(*pending)
            pending = None
        if len(para) < min_chars:
            pending = (para_no, start, para)
            continue
        for w_start, w_text in _windows(start, para, max_chars):
            emit(para_no, w_start, w_text)
    if pending:
        emit(*pending)
    return passages
