"""Versioned FAISS index on disk.

var/index/versions/<version>/ holds index.faiss, vectors.npy, passages.jsonl and
manifest.json; var/index/CURRENT names the live version and is replaced
atomically, so readers see either the old or the new index, never half of one.
A new version is written into a dot-named temp folder, renamed into place, read
back and verified, and only then named by CURRENT: a failure on the way (disk
full) removes what was written and leaves CURRENT alone. Loading re-checks every
file against the manifest, so a damaged version is refused with the reason.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import faiss
import numpy as np

from .modelcache import sha256_file as _sha
from .models import Passage
from .storefiles import (EF_SEARCH, VERIFIED, IndexRows, _all_finite, _fsync_dir, _remember_verified,  # noqa: F401
                         _stat_key, _verified, make_faiss, read_manifest, read_passages)

FORMAT = 1
FILES = ("index.faiss", "vectors.npy", "passages.jsonl")
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")
STALE_TMP_SECONDS = 3600  # a temp folder this old belongs to a build that died
MIN_SPOT_COSINE = 0.999  # re-embedding a stored passage gives ~1.0; another e5 variant gives ~0.86


class IndexError_(RuntimeError):
    """The index on disk is missing, corrupted or built for another model."""

    def __init__(self, message: str, version: str | None = None):
        super().__init__(message)
        self.version = version


class IndexMissing(IndexError_):
    """Nothing has been built yet."""


class IndexMismatch(IndexError_):
    """The index does not fit this configuration (model, dimension, format): rebuild, don't guess."""


class IndexCorrupt(IndexMismatch):
    """Files damaged or disagreeing with their manifest; an older intact version may stand in."""


class IndexWriteFailed(IndexError_):
    """A new version could not be written (disk full, I/O error); the previous one stays live."""


@dataclass
class StoredIndex:
    version: str
    path: Path
    manifest: dict
    index: faiss.Index
    vectors: "IndexRows"
    passages: list[Passage]


Check = Callable[[StoredIndex], None]


def _create(path: Path) -> BinaryIO:
    """Every byte the store writes goes through here: one seam for disk-full tests."""
    return open(path, "wb")


def _write_file(path: Path, data: bytes) -> None:
    with _create(path) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_failed(version: str, step: str, exc: BaseException) -> IndexWriteFailed:
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left" in str(exc)
    return IndexWriteFailed(
        f"could not write index version {version} ({step}): {exc}"
        + ("; the disk is full, free some space and rebuild" if full else "")
        + "; nothing was switched, the previous index stays live", version)


def spot_check(stored: StoredIndex, encode_passages: Callable[[list[str]], np.ndarray], model: str = "") -> None:
    """Re-embed a few stored passages. Vectors made by another model, or paired with the wrong
    passages, disagree with them even when every checksum and count in the manifest matches."""
    n = len(stored.passages)
    if not n:
        return
    idx = sorted({0, n // 2, n - 1})
    fresh = np.asarray(encode_passages([stored.passages[i].embed_text for i in idx]), np.float32)
    cosines = (fresh * stored.vectors[idx]).sum(axis=1)
    for i, cos in zip(idx, cosines):
        if cos < MIN_SPOT_COSINE:
            raise IndexCorrupt(
                f"index version {stored.version}: the stored vector of passage {stored.passages[i].passage_id} "
                f"is not {model or 'the model'}'s embedding of its text (cosine {cos:.2f}); the vectors were "
                f"made by another model or belong to other passages", stored.version)


class IndexStore:
    def __init__(self, root: Path, ef_search: int = EF_SEARCH):
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.ef_search = ef_search  # applied to every HNSW index loaded: a setting, not a file property

    def current_version(self) -> str | None:
        """The version CURRENT names; None before the first build; IndexCorrupt if it is garbage."""
        cur = self.root / "CURRENT"
        try:
            text = cur.read_bytes().decode("utf-8", "replace").strip()
        except FileNotFoundError:
            return None
        if not VERSION_RE.fullmatch(text):
            raise IndexCorrupt(f"{cur} does not name an index version (it holds {text[:40]!r})")
        return text

    def write(self, passages: list[Passage], vectors: np.ndarray, meta: dict, hnsw_min: int) -> StoredIndex:
        """Write a new version and switch CURRENT to it; returns it as read back and verified."""
        if len(passages) != len(vectors):
            raise ValueError("passages and vectors differ in length")
        version = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.time_ns() % 1_000_000:06d}"
        tmp, final = self.versions / f".tmp-{version}", self.versions / version
        step = f"creating {tmp}"
        try:
            self.versions.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            index, kind = make_faiss(vectors, hnsw_min, self.ef_search)
            npy = io.BytesIO()
            np.save(npy, vectors)
            lines = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in passages)
            blobs = {"index.faiss": faiss.serialize_index(index).tobytes(), "vectors.npy": npy.getvalue(),
                     "passages.jsonl": lines.encode("utf-8")}
            for name in FILES:
                step = f"writing {name}"
                _write_file(tmp / name, blobs[name])
            manifest = {
                "format": FORMAT, "version": version, "index_type": kind,
                "dim": int(vectors.shape[1]), "passage_count": len(passages),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "built_ns": time.time_ns(),
                "files": {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()},
                "sizes": {name: len(b) for name, b in blobs.items()}, **meta,
            }
            step = "writing manifest.json"
            _write_file(tmp / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
            _fsync_dir(tmp)
            step = "renaming into place"
            os.replace(tmp, final)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, Exception):
                raise _write_failed(version, step, exc) from exc
            raise
        try:
            step = "reading it back"
            stored = self.load(version=version)  # what is on disk, not what we meant to write
            step = "switching CURRENT"
            self._switch(version)
        except BaseException as exc:
            shutil.rmtree(final, ignore_errors=True)
            if isinstance(exc, Exception):
                raise _write_failed(version, step, exc) from exc
            raise
        return stored

    def _switch(self, version: str) -> None:
        tmp = self.root / f".CURRENT.{os.getpid()}"
        try:
            _write_file(tmp, version.encode())
            os.replace(tmp, self.root / "CURRENT")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def version_names(self) -> list[str]:
        """Complete version folders (temp folders excluded), newest build first."""
        def key(path: Path) -> tuple[int, str]:
            try:
                return int(json.loads((path / "manifest.json").read_text()).get("built_ns", 0)), path.name
            except (OSError, ValueError, AttributeError, TypeError):
                return 0, path.name

        if not self.versions.is_dir():
            return []
        dirs = [p for p in self.versions.iterdir() if p.is_dir() and VERSION_RE.fullmatch(p.name)]
        return [p.name for p in sorted(dirs, key=key, reverse=True)]

    def prune(self, keep: int = 2) -> None:
        """Drop old versions, always keeping the live one, and temp folders of builds that died."""
        try:
            live = self.current_version()
        except IndexCorrupt:
            live = None
        olds = [v for v in self.version_names() if v != live]
        for name in olds[max(0, keep - 1):]:
            shutil.rmtree(self.versions / name, ignore_errors=True)
        cutoff = time.time() - STALE_TMP_SECONDS
        for path in [*self.versions.glob(".tmp-*"), *self.root.glob(".CURRENT.*")]:
            with contextlib.suppress(OSError):  # gone already, or another process's business
                if path.lstat().st_mtime < cutoff:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()

    def load(self, model: str | None = None, dim: int | None = None, version: str | None = None,
             check: Check | None = None) -> StoredIndex:
        """Load and verify a version; any disagreement raises with a readable reason."""
        version = version or self.current_version()
        if not version:
            raise IndexMissing(f"no index built yet under {self.root} (run `planbot build`)")
        path = self.versions / version

        def corrupt(why: str) -> IndexCorrupt:
            return IndexCorrupt(f"index version {version}: {why}", version)

        if not path.is_dir():
            raise corrupt(f"its folder {path} does not exist")
        manifest = read_manifest(path, corrupt)
        if manifest.get("format") != FORMAT:
            raise IndexMismatch(f"index version {version}: format {manifest.get('format')} is not {FORMAT} "
                                f"(written by another planbot release?); rebuild with `planbot build`", version)
        sizes = manifest.get("sizes") if isinstance(manifest.get("sizes"), dict) else {}
        seen, fresh = _verified(path), {}
        for name in FILES:
            if not (path / name).is_file():
                raise corrupt(f"{name} is missing")
            size = (path / name).stat().st_size
            if name in sizes and size != sizes[name]:
                raise corrupt(f"{name} has {size} bytes, its manifest says {sizes[name]} (truncated or overwritten)")
            fresh[name] = [*_stat_key(path / name), manifest["files"].get(name)]
            if seen.get(name) == fresh[name]:
                continue  # verified before, untouched since
            if _sha(path / name) != manifest["files"].get(name):
                raise corrupt(f"{name} does not match its manifest checksum (corrupted?)")
        try:
            index = faiss.read_index(str(path / "index.faiss"))
            if hasattr(index, "hnsw"):
                index.hnsw.efSearch = self.ef_search
            # Only the header is mapped: FAISS already holds every vector (see IndexRows), so keeping
            # vectors.npy in memory too would cost N x dim x 4 bytes of RSS for nothing.
            vectors = np.load(path / "vectors.npy", allow_pickle=False, mmap_mode="r")
        except Exception as exc:
            raise corrupt(f"cannot read index files ({exc})") from exc
        passages = read_passages(path / "passages.jsonl", corrupt)
        n, mdim = manifest.get("passage_count"), manifest.get("dim")
        if vectors.ndim != 2 or vectors.dtype != np.float32 or (
                seen.get("vectors.npy") != fresh["vectors.npy"] and not _all_finite(path / "vectors.npy", vectors)):
            raise corrupt(f"vectors.npy holds {vectors.dtype} {vectors.shape}, not finite float32 rows")
        if not (index.ntotal == len(passages) == len(vectors) == n):
            raise corrupt(f"manifest says {n} passages, files hold {index.ntotal} vectors / {len(passages)} passages")
        if not (index.d == vectors.shape[1] == mdim):
            raise corrupt(f"manifest says dimension {mdim}, index.faiss holds {index.d}-dim vectors, "
                          f"vectors.npy {vectors.shape[1]}-dim")
        if model is not None and manifest.get("model") != model:
            raise IndexMismatch(
                f"index version {version} was built with model {manifest.get('model')!r}, "
                f"but the configured model is {model!r}; rebuild with `planbot build`", version)
        if dim is not None and mdim != dim:
            raise IndexMismatch(f"index version {version}: index dimension {mdim} differs from the model's {dim}; "
                                f"rebuild with `planbot build`", version)
        head = np.array(vectors[:8])  # the only rows of the mapping ever touched
        del vectors
        if not np.allclose(index.reconstruct_n(0, len(head)), head):
            raise corrupt("index.faiss and vectors.npy hold different vectors")
        stored = StoredIndex(version, path, manifest, index, IndexRows(index), passages)
        if check:
            check(stored)
        if seen != fresh:
            _remember_verified(path, fresh)
        return stored

    def load_fallback(self, problem: IndexError_, model: str | None = None, dim: int | None = None,
                      check: Check | None = None) -> StoredIndex:
        """The newest intact version other than the damaged one; raises `problem`, extended, if none is."""
        skipped = []
        for name in self.version_names():
            if name == problem.version:
                continue
            try:
                return self.load(model, dim, name, check)
            except IndexError_ as exc:
                skipped.append(str(exc))
        tail = f" ({len(skipped)} older versions are unusable too)" if skipped else ""
        raise type(problem)(f"{problem}; no intact older version to fall back to{tail}"
                            + ("" if "planbot build" in str(problem) else "; rebuild with `planbot build`"),
                            problem.version) from problem
