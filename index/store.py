"""Versioned FAISS index on disk.

var/index/versions/<version>/ holds index.faiss, vectors.npy, passages.jsonl and
manifest.json; var/index/CURRENT names the live version and is replaced
atomically, so readers see either the old or the new index, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .models import Passage

FORMAT = 1
FILES = ("index.faiss", "vectors.npy", "passages.jsonl")


class IndexError_(RuntimeError):
    """The index on disk is missing, corrupted or built for another model."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


@dataclass
class StoredIndex:
    version: str
    path: Path
    manifest: dict
    index: faiss.Index
    vectors: np.ndarray
    passages: list[Passage]


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_faiss(vectors: np.ndarray, hnsw_min: int) -> tuple[faiss.Index, str]:
    """Exact inner product for small corpora, HNSW above `hnsw_min` passages."""
    dim = vectors.shape[1]
    if len(vectors) >= hnsw_min:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 96
        kind = "hnsw"
    else:
        index, kind = faiss.IndexFlatIP(dim), "flat"
    if len(vectors):
        index.add(vectors)
    return index, kind


class IndexStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.versions = self.root / "versions"

    def current_version(self) -> str | None:
        cur = self.root / "CURRENT"
        return cur.read_text().strip() or None if cur.exists() else None

    def write(self, passages: list[Passage], vectors: np.ndarray, meta: dict, hnsw_min: int) -> str:
        """Write a new version and switch CURRENT to it; returns the version name."""
        if len(passages) != len(vectors):
            raise ValueError("passages and vectors differ in length")
        version = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.time_ns() % 1_000_000:06d}"
        self.versions.mkdir(parents=True, exist_ok=True)
        tmp = self.versions / f".tmp-{version}"
        tmp.mkdir()
        try:
            index, kind = make_faiss(vectors, hnsw_min)
            faiss.write_index(index, str(tmp / "index.faiss"))
            np.save(tmp / "vectors.npy", vectors)
            with (tmp / "passages.jsonl").open("w", encoding="utf-8") as fh:
                for p in passages:
                    fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
            manifest = {
                "format": FORMAT, "version": version, "index_type": kind,
                "dim": int(vectors.shape[1]), "passage_count": len(passages),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "files": {name: _sha(tmp / name) for name in FILES}, **meta,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
            for name in (*FILES, "manifest.json"):
                with (tmp / name).open("rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, self.versions / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._switch(version)
        return version

    def _switch(self, version: str) -> None:
        tmp = self.root / f".CURRENT.{os.getpid()}"
        tmp.write_text(version)
        os.replace(tmp, self.root / "CURRENT")

    def prune(self, keep: int = 2) -> None:
        """Drop old versions, always keeping the live one."""
        live = self.current_version()
        olds = sorted(p for p in self.versions.glob("*") if p.is_dir() and p.name != live)
        for path in olds[: max(0, len(olds) - (keep - 1))]:
            shutil.rmtree(path, ignore_errors=True)

    def load(self, model: str | None = None, dim: int | None = None, version: str | None = None) -> StoredIndex:
        """Load and verify a version; any disagreement raises with a readable reason."""
        version = version or self.current_version()
        if not version:
            raise IndexMissing(f"no index built yet under {self.root} (run `planbot build`)")
        path = self.versions / version
        mpath = path / "manifest.json"
        if not mpath.exists():
            raise IndexMismatch(f"index version {version}: manifest.json is missing")
        try:
            manifest = json.loads(mpath.read_text())
        except ValueError as exc:
            raise IndexMismatch(f"index version {version}: manifest.json is not valid JSON ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise IndexMismatch(f"index version {version}: format {manifest.get('format')} is not {FORMAT}")
        for name in FILES:
            if not (path / name).exists():
                raise IndexMismatch(f"index version {version}: {name} is missing")
            if _sha(path / name) != manifest["files"].get(name):
                raise IndexMismatch(f"index version {version}: {name} does not match its manifest checksum (corrupted?)")
        if model is not None and manifest.get("model") != model:
            raise IndexMismatch(
                f"index version {version} was built with model {manifest.get('model')!r}, "
                f"but the configured model is {model!r}; rebuild with `planbot build`"
            )
        if dim is not None and manifest.get("dim") != dim:
            raise IndexMismatch(f"index dimension {manifest.get('dim')} differs from the model's {dim}")
        try:
            index = faiss.read_index(str(path / "index.faiss"))
            vectors = np.load(path / "vectors.npy")
        except Exception as exc:
            raise IndexMismatch(f"index version {version}: cannot read index files ({exc})") from exc
        with (path / "passages.jsonl").open(encoding="utf-8") as fh:
            passages = [Passage(**json.loads(line)) for line in fh if line.strip()]
        n = manifest.get("passage_count")
        if not (index.ntotal == len(passages) == len(vectors) == n) or index.d != manifest.get("dim"):
            raise IndexMismatch(
                f"index version {version}: manifest says {n} passages, files hold "
                f"{index.ntotal} vectors / {len(passages)} passages"
            )
        return StoredIndex(version, path, manifest, index, vectors, passages)
