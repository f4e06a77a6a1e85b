"""The documents folder as uploads change it, not Telegram-specific: files are stored atomically
(the document and its `.meta.json` appear together or not at all), found again by content, and
removed by moving them into an archive folder, from which they can be restored by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .intake import SUFFIXES, Inspection, Rejected, sha256
from .storefiles import _fsync_dir


def doc_files(docs_dir: Path, doc_id: str) -> list[Path]:
    """The document file(s) behind an index doc_id (its stem, or its full name for duplicates)."""
    if not docs_dir.is_dir():
        return []
    out = []
    for p in docs_dir.iterdir():
        if ".meta." in p.name or p.name.startswith(".") or p.suffix.lower() not in SUFFIXES:
            continue
        if p.name == doc_id or p.stem == doc_id:
            out.append(p)
    return out


def sidecar(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.json")


def read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(sidecar(path).read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def find_duplicate(docs_dir: Path, digest: str, text_digest: str = "") -> Path | None:
    """A document already in the folder with these exact bytes, or (for uploads, whose
    metadata records it) the same extracted text."""
    if not docs_dir.is_dir():
        return None
    for p in sorted(docs_dir.iterdir()):
        if ".meta." in p.name or p.name.startswith(".") or p.suffix.lower() not in SUFFIXES:
            continue
        meta = read_sidecar(p)
        known = meta.get("sha256")
        if known == digest or (not known and sha256(p.read_bytes()) == digest):
            return p
        if text_digest and meta.get("text_sha256") == text_digest:
            return p
    return None


def store(src: Path, docs_dir: Path, info: Inspection, added_by: str) -> Path:
    """Put the checked file and its `.meta.json` into `docs_dir`, never half: both are written
    and fsynced in a hidden folder inside docs_dir (same filesystem; the loader skips dot
    names), then renamed in -- the metadata first, so a build never sees the document without
    it -- and the folder synced. Returns the stored document path."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    target = docs_dir / f"{info.doc_id}{info.suffix}"
    if target.exists() or sidecar(target).exists():
        raise Rejected(f"文档 {info.doc_id} 已经存在。")
    stage = Path(tempfile.mkdtemp(prefix=".incoming-", dir=docs_dir))
    try:
        doc_tmp, meta_tmp = stage / target.name, stage / sidecar(target).name
        shutil.copyfile(src, doc_tmp)
        meta = {"title": info.title, "date": info.date, "outlet": info.outlet, "url": info.url,
                "added_by": added_by, "added_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "sha256": info.sha256, "text_sha256": info.text_sha256, "original_name": info.original_name}
        meta_tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        for p in (doc_tmp, meta_tmp):
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(meta_tmp, sidecar(target))
        try:
            os.replace(doc_tmp, target)
        except BaseException:
            sidecar(target).unlink(missing_ok=True)
            raise
        _fsync_dir(docs_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def archive(docs_dir: Path, doc_id: str, archive_dir: Path) -> Path:
    """Move a document and its metadata into `archive_dir/<time>-<doc_id>/` (recoverable: move
    them back and rebuild). The document goes first, so it leaves the index as a whole."""
    files = doc_files(docs_dir, doc_id)
    if not files:
        raise Rejected(f"没有找到文档 {doc_id} 的文件。")
    dest = archive_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{doc_id}"
    dest.mkdir(parents=True, exist_ok=False)
    for doc in files:
        shutil.move(str(doc), dest / doc.name)
        for side in (sidecar(doc), doc.with_name(doc.stem + ".meta.yaml"), doc.with_name(doc.stem + ".meta.yml")):
            if side.exists():
                shutil.move(str(side), dest / side.name)
    _fsync_dir(docs_dir)
    return dest


def restore(archived: Path, docs_dir: Path) -> None:
    """Undo `archive` (used when the rebuild after a removal fails)."""
    for p in sorted(archived.iterdir(), key=lambda p: ".meta." not in p.name):  # metadata first
        shutil.move(str(p), docs_dir / p.name)
    archived.rmdir()


def unstore(path: Path) -> None:
    """Undo `store` (used when the rebuild after an upload fails): the document first."""
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


def clean_stale(docs_dir: Path, incoming_dir: Path) -> None:
    """At start-up: checked uploads nobody confirmed and hidden staging folders of a store that
    was killed half-way (never seen by builds) are removed. A read-only folder is left alone."""
    shutil.rmtree(incoming_dir, ignore_errors=True)
    if docs_dir.is_dir():
        for stage in docs_dir.glob(".incoming-*"):
            shutil.rmtree(stage, ignore_errors=True)
