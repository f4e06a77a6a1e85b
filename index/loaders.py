"""Read documents of several formats plus their metadata.

Metadata comes from YAML front matter (--- ... ---) or a sidecar file
`<name>.meta.json` / `<name>.meta.yaml`; the file name is the fallback title.
"""
from __future__ import annotations

import json
import logging
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
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    meta = {}
    if soup.title and soup.title.string:
        meta["title"] = soup.title.string.strip()
    for tag in soup(["script", "style", "nav", "header", "footer", "aside", "form"]):
        tag.decompose()
    blocks = [el.get_text(" ", strip=True) for el in soup.find_all(["h1", "h2", "h3", "h4", "p", "li"])]
    text = "\n\n".join(b for b in blocks if b) or soup.get_text("\n", strip=True)
    return meta, text


def _read_pdf(path: Path) -> tuple[dict, str]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    meta = {"title": reader.metadata.title} if reader.metadata and reader.metadata.title else {}
    text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    return meta, text


def _read_docx(path: Path) -> tuple[dict, str]:
    import docx

    d = docx.Document(str(path))
    meta = {"title": d.core_properties.title} if d.core_properties.title else {}
    return meta, "\n\n".join(p.text.strip() for p in d.paragraphs if p.text.strip())


def read_document(path: Path, doc_id: str | None = None) -> Document:
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md"):
        meta, text = _front_matter(path.read_text(encoding="utf-8"))
    elif suffix in (".html", ".htm"):
        meta, text = _read_html(path)
    elif suffix == ".pdf":
        meta, text = _read_pdf(path)
    elif suffix == ".docx":
        meta, text = _read_docx(path)
    else:
        raise ValueError(f"unsupported file type {suffix}")
    meta = {**meta, **_sidecar(path)}
    meta["url"] = safe_url(meta.get("url"), path.name)  # http(s) only: never a javascript: href
    text = clean_text(text)
    if not text:
        raise ValueError("no text could be extracted")
    return Document(
        doc_id=doc_id or path.stem, path=str(path), text=text,
        **{k: str(meta.get(k) or "") for k in META_KEYS if k != "title"},
        title=to_display(nfkc(str(meta.get("title") or path.stem)).strip()),  # same punctuation as the text
    )


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
