"""Split cleaned text into passages that respect sentences and section headings.

A passage runs across paragraph breaks inside one section (list items, table rows and short
paragraphs keep their neighbours as context) up to `max_chars`, and never across a heading, so
each citation is a readable, self-contained snippet of one section.
"""
from __future__ import annotations

import bisect
import re

from .models import Document, Passage
from .textnorm import fold

_END = "。！？!?；;"
_CLOSERS = "”’」』）)》"
_SENTENCE = re.compile(f"[^{_END}]*(?:[{_END}]+[{_CLOSERS}]*|$)")
_NOT_HEADING_END = set(_END + "…" + "，,：:—、" + _CLOSERS + ".")


def split_sentences(text: str) -> list[str]:
    """Sentences with their end marks and closing quotes; `,`/`，` and `?`/`？` alike.
    English sentences end at '. ' too; a line break always ends a sentence."""
    out = []
    for line in text.split("\n"):
        for s in (m.group(0) for m in _SENTENCE.finditer(line)):
            out.extend(x for x in re.split(r"(?<=[a-z0-9%)]\.)\s+(?=[A-Z])", s) if x.strip())
    return out


# a docx table row as loaders._table_rows writes it: `name：v1（header 1）；v2（header 2）。`
_TABLE_ROW = re.compile(r"[^：\n。！？]{1,60}：(?:[^；\n。！？]*（[^（）\n]+）；)*[^；\n。！？]*（[^（）\n]+）。")


def answer_units(text: str) -> list[str]:
    """The pieces an answer is chosen from: sentences, but a table row whole (its cells are split
    by '；', and one cell alone does not say which row it belongs to)."""
    out = []
    for line in text.split("\n"):
        out.extend([line.strip()] if _TABLE_ROW.fullmatch(line.strip()) else split_sentences(line))
    return out


def is_heading(line: str, max_len: int = 30) -> bool:
    line = line.strip().lstrip("#").strip()
    return 0 < len(line) <= max_len and line[-1] not in _NOT_HEADING_END and not line.startswith("|")


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(start offset, paragraph) for each non-empty line."""
    out, pos = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            out.append((pos + line.index(stripped), stripped))
        pos += len(line) + 1
    return out


def _pieces(start: int, para: str, max_chars: int) -> list[tuple[int, str]]:
    """A paragraph as sentence-aligned pieces under max_chars (a longer sentence stays whole)."""
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
    block: list[tuple[int, str]] = []  # (start, text) pieces of the passage being built

    def flush() -> None:
        if not block:
            return
        start = block[0][0]
        end = block[-1][0] + len(block[-1][1])
        text = doc.text[start:end]
        page = bisect.bisect_right(doc.pages, start) if doc.pages else 0
        passages.append(Passage(
            passage_id=f"{doc.doc_id}#{len(passages)}", doc_id=doc.doc_id, title=doc.title,
            heading=heading, paragraph=para_no, start=start, end=end, text=text,
            url=doc.url, date=doc.date, page=page, language=doc.language,
        ))
        block.clear()

    for idx, (start, para) in enumerate(_paragraphs(doc.text)):
        if idx == 0 and fold(para) == fold(doc.title):
            continue
        if is_heading(para):
            flush()
            heading_lines.append(para.lstrip("#").strip())
            heading = " · ".join(heading_lines[-2:])
            continue
        heading_lines = []
        para_no += 1
        for p_start, piece in _pieces(start, para, max_chars):
            if block and p_start + len(piece) - block[0][0] > max_chars:  # gaps between paragraphs count
                flush()
            block.append((p_start, piece))
    flush()
    return passages
