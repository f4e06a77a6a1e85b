"""What a file really is, judged from its bytes, not its name: the kinds planbot tells apart,
the suffixes it stores and the kind each promises, and text decoding."""
from __future__ import annotations

import io
import re
import zipfile

SUFFIXES = {".pdf": "pdf", ".docx": "docx", ".txt": "text", ".md": "text", ".html": "html", ".htm": "html"}
KIND_NAMES = {"pdf": "PDF", "docx": "Word 文档（.docx）", "text": "纯文本", "html": "网页（HTML）",
              "zip": "ZIP 压缩包", "broken-zip": "损坏的 ZIP 压缩包", "ole": "加密的 Office 文件或旧版 .doc/.xls", "exe": "可执行程序",
              "image": "图片", "binary": "无法识别的二进制文件", "empty": "空文件"}


def sniff(data: bytes) -> str:
    """The real type: pdf, docx, zip, ole, exe, image, text, html, binary or empty."""
    head = data[:8]
    if not data.strip():
        return "empty"
    if data[:1024].lstrip().startswith(b"%PDF-") or head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return "broken-zip"
        return "docx" if {"[Content_Types].xml", "word/document.xml"} <= names else "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.startswith((b"MZ", b"\x7fELF", b"\xfe\xed\xfa", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!")):
        return "exe"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")) or data[8:12] == b"WEBP":
        return "image"
    text = decode_text(data)
    if text is None:
        return "binary"
    if re.search(r"<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", text[:2048], re.IGNORECASE):
        return "html"
    return "text"


def decode_text(data: bytes) -> str | None:
    """UTF-8 (with or without BOM), else GB18030 (Chinese Windows); None for binary data."""
    if b"\x00" in data[:4096]:
        return None
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for c in text[:4096] if ord(c) < 32 and c not in "\n\r\t\f")
        return text if controls <= len(text[:4096]) // 100 else None
    return None
