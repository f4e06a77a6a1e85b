"""Read documents of several formats plus their metadata.

Metadata comes from YAML front matter (--- ... ---) or a sidecar file
`<name>.meta.json` / `<name>.meta.yaml`; the file name is the fallback title.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .intake import safe_url
from .models import Document
from .textnorm import clean_text, nfkc, to_display

log = logging.getLogger(__name__)
SUFFIXES = {".txt", ".md", ".html", ".htm", ".pdf", ".docx"}
META_KEYS = ("title", "url", "outlet", "date", "language")


@dataclass
class LoadReport:
    documents: list[Document] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # file name -> reason
    failed_ids: list[str] = field(default_factory=list)  # doc ids of those files


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            if not isinstance(meta, dict):
                raise ValueError("front matter is not a mapping")
            return meta, text[end + 4 :].lstrip("\n")
    return {}, text


def _sidecar(path: Path) -> dict:
    for suffix in (".meta.json", ".meta.yaml", ".meta.yml"):
        side = path.with_name(path.stem + suffix)
        if side.exists():
            raw = side.read_text(encoding="utf-8")
            meta = json.loads(raw) if suffix == ".meta.json" else yaml.safe_load(raw)
            if not isinstance(meta, dict):
                raise ValueError(f"{side.name} is not a mapping")
            return meta
    return {}


def _read_html(path: Path) -> tuple[dict, str]:
    """The article body via trafilatura (a main-content extractor), so navigation, share bars and
    footers stay out; the page <title> is the fallback title."""
    import trafilatura
    from bs4 import BeautifulSoup

    raw = path.read_bytes()
    soup = BeautifulSoup(raw, "html.parser")
    meta = {}
    if soup.title and soup.title.string:
        meta["title"] = soup.title.string.strip()
    html = raw.decode("utf-8", errors="replace")
    body = trafilatura.extract(html, include_tables=True, include_comments=False, favor_precision=True) or ""
    wide = trafilatura.extract(html, include_tables=True, include_comments=False, favor_recall=True) or ""
    text = _with_headings(body, wide)
    if not text.strip():  # not an article page: visible text of the block elements
        for tag in soup(["script", "style", "nav", "header", "footer", "aside", "form"]):
            tag.decompose()
        blocks = [el.get_text(" ", strip=True) for el in soup.find_all(["h1", "h2", "h3", "h4", "p", "li"])]
        text = "\n\n".join(b for b in blocks if b) or soup.get_text("\n", strip=True)
    return meta, text


def _with_headings(body: str, wide: str) -> str:
    """trafilatura's precise extraction drops section headings; its recall mode keeps them but
    also keeps link bars. Keep the precise body plus each recall-mode line that directly heads
    a body paragraph."""
    keep = {ln.strip() for ln in body.split("\n") if ln.strip()}
    lines = [ln.strip() for ln in wide.split("\n") if ln.strip()]
    out = [ln for i, ln in enumerate(lines)
           if ln in keep or (i + 1 < len(lines) and lines[i + 1] in keep and len(ln) <= 30)]
    return "\n\n".join(out) if out else body or wide


_PAGE_FOOTER = re.compile(r"(^|\s)(第\s*\d+\s*页|page\s*\d+(\s*of\s*\d+)?|-\s*\d+\s*-)\s*$", re.I)
_ENUMERATED = re.compile(r"^([一二三四五六七八九十]+、|[（(][一二三四五六七八九十\d]+[）)]|\d+[.、．]\D|第[一二三四五六七八九十\d]+[章节部分])")
_ENDS_PARAGRAPH = tuple("。！？!?；;:：”」』)）")


def _reflow(pages: list[str]) -> tuple[str, list[int]]:
    """PDF text arrives as visual lines. A line that fills the text column continues in the next
    line (or on the next page); a shorter one, or one ending a sentence, ends its paragraph.
    Page footers (第2页, Page 2 of 3) are dropped. Returns the text and each page's start offset."""
    lines_per_page = [[ln.strip() for ln in (p or "").split("\n")] for p in pages]
    widths = sorted(len(ln) for lines in lines_per_page for ln in lines if len(ln) > 4)
    full = widths[int(0.8 * (len(widths) - 1))] if widths else 0  # the column width, robust to outliers
    out, cur = [], ""
    for lines in lines_per_page:
        for ln in lines:
            if not ln or _PAGE_FOOTER.search(ln) and len(ln) < 40:
                continue
            if cur and _ENUMERATED.match(ln):  # "二、…", "（三）…", "3." start a new block
                out.append(cur)
                cur = ""
            cur = _join(cur, ln) if cur else ln
            if len(ln) < 0.85 * full or ln.endswith(_ENDS_PARAGRAPH) and len(ln) < full:
                out.append(cur)
                cur = ""
    if cur:
        out.append(cur)
    text = "\n\n".join(out)
    text = re.sub(r"(?<=\d) (?=\d)", "", text)  # pypdf splits numbers: "2 0列" -> "20列"
    return text, _page_offsets(out, lines_per_page, text)


def _join(left: str, right: str) -> str:
    """Glue a wrapped line: no space between CJK or inside numbers, one space between words."""
    if re.search(r"[A-Za-z,]$", left) and re.match(r"[A-Za-z(]", right):
        return left + " " + right
    return left + right


def _page_offsets(paragraphs: list[str], pages: list[list[str]], text: str) -> list[int]:
    """Start offset in `text` of each page, found by the page's first substantial line."""
    offsets, pos = [], 0
    for lines in pages:
        first = next((ln for ln in lines if len(ln) > 4 and not _PAGE_FOOTER.search(ln)), "")
        probe = re.sub(r"(?<=\d) (?=\d)", "", first[:12])
        at = text.find(probe, pos) if probe else -1
        if at >= 0:
            pos = at
        offsets.append(pos)
    return offsets


def _read_pdf(path: Path) -> tuple[dict, str, list[int]]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    meta = {"title": reader.metadata.title} if reader.metadata and reader.metadata.title else {}
    text, pages = _reflow([page.extract_text() or "" for page in reader.pages])
    return meta, text, pages


def _table_rows(table) -> list[str]:
    """One line per row. The first cell names the row; every other cell is followed by its
    column header, so a row read alone still says what each figure is:
    `对上争取资金：突破2亿元（数据）；围绕六条主导产业链（备注）。`"""
    rows = [[c.text.strip() for c in row.cells] for row in table.rows]
    if not rows:
        return []
    header, body = (rows[0], rows[1:]) if len(rows) > 1 else ([""] * len(rows[0]), rows)
    lines = []
    for cells in body:
        if not any(cells):
            continue
        parts = [f"{v}（{h}）" if h else v for v, h in zip(cells[1:], header[1:]) if v]
        lines.append(cells[0] + ("：" + "；".join(parts) if parts else "") + "。")
    return lines


def _read_docx(path: Path) -> tuple[dict, str]:
    """Paragraphs and tables in document order; Title/Heading styles stay headings."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    d = docx.Document(str(path))
    meta = {"title": d.core_properties.title} if d.core_properties.title else {}
    blocks = []
    for child in d.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(child, d)
            if para.text.strip():
                blocks.append(para.text.strip())
                if not meta.get("title") and (para.style is not None and para.style.name == "Title"):
                    meta["title"] = para.text.strip()
        elif tag == "tbl":
            blocks.append("\n".join(_table_rows(Table(child, d))))
    return meta, "\n\n".join(b for b in blocks if b)


def read_document(path: Path, doc_id: str | None = None) -> Document:
    suffix = path.suffix.lower()
    pages: list[int] = []
    if suffix in (".txt", ".md"):
        meta, text = _front_matter(path.read_text(encoding="utf-8"))
    elif suffix in (".html", ".htm"):
        meta, text = _read_html(path)
    elif suffix == ".pdf":
        meta, text, pages = _read_pdf(path)
    elif suffix == ".docx":
        meta, text = _read_docx(path)
    else:
        raise ValueError(f"unsupported file type {suffix}")
    meta = {**meta, **_sidecar(path)}
    meta["url"] = safe_url(meta.get("url"), path.name)  # http(s) only: never a javascript: href
    if pages:  # cleaning changes offsets: find each page again after it
        text, pages = _clean_paged(text, pages)
    else:
        text = clean_text(text)
    if not text:
        raise ValueError("no text could be extracted")
    return Document(
        doc_id=doc_id or path.stem, path=str(path), text=text, pages=pages,
        **{k: str(meta.get(k) or "") for k in META_KEYS if k != "title"},
        title=to_display(nfkc(str(meta.get("title") or path.stem)).strip()),  # same punctuation as the text
    )


def _clean_paged(text: str, pages: list[int]) -> tuple[str, list[int]]:
    bounds = pages + [len(text)]
    parts = [clean_text(text[a:b]) for a, b in zip(bounds, bounds[1:])]
    offsets, pos = [], 0
    for part in parts:
        offsets.append(pos)
        pos += len(part) + 2 if part else 0
    return "\n\n".join(p for p in parts if p), offsets


def load_documents(docs_dir: Path) -> LoadReport:
    """Every readable document; unreadable ones are reported by name and skipped."""
    report = LoadReport()
    if not docs_dir.is_dir():
        report.failures[str(docs_dir)] = "documents folder does not exist"
        return report
    paths = [p for p in sorted(docs_dir.iterdir())
             if not p.name.startswith(".") and p.suffix.lower() in SUFFIXES and ".meta." not in p.name]
    stems = [p.stem for p in paths]
    for path in paths:
        doc_id = path.stem if stems.count(path.stem) == 1 else path.name  # plan.txt + plan.md stay apart
        try:
            report.documents.append(read_document(path, doc_id))
        except Exception as exc:  # one bad file must not stop the others
            log.warning("skipping %s: %s", path.name, exc)
            report.failures[path.name] = f"{type(exc).__name__}: {exc}"
            report.failed_ids.append(doc_id)
    return report
