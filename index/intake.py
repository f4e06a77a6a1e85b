"""Checks and storage for documents added from outside (the bot's uploads), not Telegram-specific.

Everything here judges *content*, not names: the real type from the bytes, that it parses, that it
holds text, how far a zip container expands. Problems raise `Rejected` with a short Chinese
message meant for the person who sent the file. Storing a checked file in the documents folder
is docstore.py's job.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .filetype import KIND_NAMES, SUFFIXES, decode_text, sniff

log = logging.getLogger(__name__)

MIN_CHARS_PER_PAGE = 20  # a PDF with less text than this per page is taken for a scan


class Rejected(ValueError):
    """A file or its metadata cannot be taken; str(exc) is the message for the sender."""


# ----------------------------------------------------------------------------- links
def safe_url(url: object, where: str = "") -> str:
    """`url` if it is an absolute http(s) link, else "" (logged): a `javascript:` or `data:` link
    must never reach an `<a href>`."""
    text = str(url or "").strip()
    if not text:
        return ""
    if is_http_url(text):
        return text
    log.warning("dropping link %r%s: only http(s) links are kept", text[:80], f" of {where}" if where else "")
    return ""


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return (parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
            and not any(c.isspace() or ord(c) < 32 for c in text))


# ----------------------------------------------------------------------------- caption metadata
CAPTION_KEYS = {"标题": "title", "题目": "title", "title": "title",
                "日期": "date", "时间": "date", "date": "date",
                "来源": "outlet", "出处": "outlet", "source": "outlet", "outlet": "outlet",
                "链接": "url", "网址": "url", "link": "url", "url": "url"}
_KEY_RE = re.compile(r"^\s*(" + "|".join(sorted(map(re.escape, CAPTION_KEYS), key=len, reverse=True))
                     + r")\s*[:：]\s*(.*?)\s*$", re.IGNORECASE)


def parse_date(text: str) -> str:
    """'2021', '2021-05', '2021-05-20', '2021年5月20日', '2021/5/20', '2021.05' -> ISO-like
    'YYYY', 'YYYY-MM' or 'YYYY-MM-DD'; anything else (or an impossible date) raises Rejected."""
    s = text.strip()
    m = re.fullmatch(r"(\d{4})(?:\s*[-/.年]\s*(\d{1,2})(?:\s*[-/.月]\s*(\d{1,2})\s*日?|\s*月)?)?\s*年?", s)
    if not m:
        raise Rejected(f"日期“{s}”看不懂，请写成 2021-05-20、2021-05 或 2021年5月20日。")
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    if not 1900 <= year <= 2100:
        raise Rejected(f"日期“{s}”的年份不对。")
    try:
        if day:
            return dt.date(year, int(month), int(day)).isoformat()
        if month:
            dt.date(year, int(month), 1)
            return f"{year:04d}-{int(month):02d}"
    except ValueError:
        raise Rejected(f"日期“{s}”不存在，请检查月份和日子。") from None
    return f"{year:04d}"


def parse_caption(caption: str | None) -> dict:
    """`标题：… / 日期：… / 来源：… / 链接：…` (or title/date/source/link), one per line or
    separated by ' / '. Unknown lines are ignored; a bad date or a non-http(s) link raises."""
    meta: dict[str, str] = {}
    for line in re.split(r"\n|\s+/\s+|\s*[;；]\s*", caption or ""):
        m = _KEY_RE.match(line)
        if not m or not m.group(2):
            continue
        key, value = CAPTION_KEYS[m.group(1).lower()], m.group(2)
        if key == "date":
            value = parse_date(value)
        elif key == "url" and not is_http_url(value):
            raise Rejected(f"链接“{value[:60]}”不是 http:// 或 https:// 开头的网址。")
        elif key == "title" and len(value) > 200:
            raise Rejected("标题太长（超过 200 字）。")
        meta[key] = value
    return meta


# ----------------------------------------------------------------------------- type against name (sniffing: filetype.py)
def check_kind(file_name: str, kind: str) -> str:
    """The stored suffix for a file named `file_name` whose bytes are `kind`; raises when the
    name promises a type the bytes are not, or the type is not supported."""
    suffix = Path(file_name or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise Rejected(unsupported_message(suffix))
    expected = SUFFIXES[suffix]
    if kind == "empty":
        raise Rejected("文件是空的，没有内容可以收录。")
    compatible = {"pdf": {"pdf"}, "docx": {"docx"}, "text": {"text", "html"}, "html": {"html", "text"}}[expected]
    if kind == "broken-zip" and expected == "docx":
        raise Rejected("Word 文件已损坏，无法打开。")
    if kind not in compatible:
        extra = "；加密的 Word 文件请先取消密码" if kind == "ole" else ""
        raise Rejected(f"文件名是 {suffix}，但内容是{KIND_NAMES.get(kind, kind)}，不能收录{extra}。")
    return ".htm" if suffix == ".htm" else (".html" if kind == "html" and expected == "html" else suffix)


def unsupported_message(suffix: str) -> str:
    shown = suffix or "（无扩展名）"
    return f"不支持 {shown} 文件。可以收录的类型：PDF、Word（.docx）、.txt、.md、.html。"


def check_zip(data: bytes, max_unpacked: int, max_members: int = 2000) -> None:
    """A docx is a zip: refuse one that expands past `max_unpacked` bytes (zip bombs), has too
    many members, or is encrypted -- judged from the directory, without expanding anything."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Rejected(f"Word 文件已损坏，无法打开（{exc}）。") from None
    if len(infos) > max_members:
        raise Rejected(f"Word 文件里的部件太多（{len(infos)} 个），不像正常文档。")
    if any(i.flag_bits & 0x1 for i in infos):
        raise Rejected("Word 文件已加密，请先取消密码再发送。")
    total = sum(i.file_size for i in infos)
    if total > max_unpacked:
        raise Rejected(f"Word 文件解压后有 {total / 2**20:.1f} MB，超过上限 {max_unpacked / 2**20:.0f} MB。")


# ----------------------------------------------------------------------------- whole inspection
@dataclass
class Inspection:
    """What a checked upload is and the metadata it would be stored with."""
    doc_id: str
    suffix: str
    sha256: str
    title: str
    date: str = ""
    outlet: str = ""
    url: str = ""
    pages: int = 0
    chars: int = 0
    first_lines: list[str] = field(default_factory=list)
    original_name: str = ""
    text_sha256: str = ""  # of the extracted text: a re-saved copy of a held file is recognised too


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", Path(name).stem.lower()).strip("-")
    return s[:40].strip("-")


def inspect(data: bytes, file_name: str, work_dir: Path, caption_meta: dict | None = None,
            max_unpacked: int = 100 * 2**20) -> tuple[Inspection, Path]:
    """Check an upload completely and write it (normalised to UTF-8 if it is text) into
    `work_dir`; returns what it is and the file ready for `store`. Raises Rejected."""
    from .loaders import read_document

    kind = sniff(data)
    suffix = check_kind(file_name, kind)
    digest = sha256(data)
    doc_id = f"{slug(file_name) or 'doc'}-{digest[:8]}"
    pages, file_meta = 0, {}
    if kind == "docx":
        check_zip(data, max_unpacked)
        file_meta = _docx_meta(data)
    elif kind == "pdf":
        pages, file_meta = _pdf_check(data)
    else:  # text: stored as UTF-8 whatever it came in
        data = decode_text(data).encode("utf-8")  # type: ignore[union-attr]
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{doc_id}{suffix}"
    path.write_bytes(data)
    try:
        doc = read_document(path, doc_id)
    except ValueError as exc:
        if "no text" in str(exc) and kind == "pdf":
            raise Rejected(_scan_message(pages)) from None
        if "no text" in str(exc):
            raise Rejected("文件里没有可以检索的文字。") from None
        raise Rejected(f"文件无法解析：{exc}") from None
    except Exception as exc:  # the parsers raise all sorts on damaged files
        raise Rejected(f"{KIND_NAMES[kind]}已损坏，无法解析（{type(exc).__name__}）。") from None
    if kind == "pdf" and len(doc.text) < MIN_CHARS_PER_PAGE * max(pages, 1):
        raise Rejected(_scan_message(pages))
    meta = caption_meta or {}
    title = meta.get("title") or (doc.title if doc.title != doc_id else "") or file_meta.get("title") \
        or first_heading(doc.text) or Path(file_name).stem
    date = meta.get("date", "")
    for candidate in ([] if date else [doc.date, file_meta.get("date", "")]):
        try:  # a file's own date that is not a date is dropped, not refused
            date = parse_date(candidate) if candidate else ""
        except Rejected:
            date = ""
        if date:
            break
    lines = [ln.strip() for ln in doc.text.splitlines() if ln.strip()]
    return Inspection(doc_id=doc_id, suffix=suffix, sha256=digest, title=title.strip()[:200], date=date,
                      outlet=meta.get("outlet", ""), url=safe_url(meta.get("url")), pages=pages,
                      chars=len(doc.text), first_lines=lines[:3], original_name=file_name,
                      text_sha256=sha256(doc.text.encode("utf-8"))), path


def _scan_message(pages: int) -> str:
    return (f"这个 PDF（{pages} 页）没有文字层，像是扫描件或图片，无法检索。"
            "请发送带文字的 PDF 或 Word 版本。")


def first_heading(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:80] if len(line) <= 80 else ""
    return ""


def _docx_meta(data: bytes) -> dict:
    import docx

    try:
        props = docx.Document(io.BytesIO(data)).core_properties
    except Exception as exc:
        raise Rejected(f"Word 文件已损坏，无法解析（{type(exc).__name__}）。") from None
    meta = {"title": (props.title or "").strip()}
    when = props.created or props.modified
    if when and when.year > 1980:
        meta["date"] = when.date().isoformat()
    return meta


def _pdf_check(data: bytes) -> tuple[int, dict]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Rejected("PDF 有打开密码（已加密），无法读取，请发送未加密的版本。")
        pages = len(reader.pages)
        info = reader.metadata or {}
    except Rejected:
        raise
    except Exception as exc:
        if any(w in str(exc).lower() for w in ("decrypt", "encrypt", "aes", "cryptography")):
            raise Rejected("PDF 已加密，无法读取，请发送未加密的版本。") from None
        raise Rejected(f"PDF 已损坏，无法解析（{type(exc).__name__}）。") from None
    if pages == 0:
        raise Rejected("PDF 没有页面。")
    meta = {}
    try:
        meta["title"] = str(info.get("/Title") or "").strip()
        raw = str(info.get("/CreationDate") or "")
        if m := re.match(r"D:(\d{4})(\d{2})(\d{2})", raw):
            meta["date"] = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    except Exception:  # odd metadata is not worth refusing a readable PDF
        pass
    return pages, meta


# ----------------------------------------------------------------------------- the documents folder
def as_dict(info: Inspection) -> dict:
    return asdict(info)
