"""The files of one index version as the store reads them: the FAISS index (flat or HNSW) and
its rows, manifest.json and passages.jsonl, a scan of vectors.npy that keeps its pages out of
memory, and the record of which files a previous start already verified, so a restart re-reads only
what changed. Also the directory fsync that makes renames durable, shared with docstore.py."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from .models import Passage

EF_SEARCH = 192  # default; PLANBOT_HNSW_EF_SEARCH (IndexSettings.hnsw_ef_search) sets it per store


def make_faiss(vectors: np.ndarray, hnsw_min: int, ef_search: int = EF_SEARCH) -> tuple[faiss.Index, str]:
    """Exact inner product for small corpora, HNSW above `hnsw_min` passages."""
    dim = vectors.shape[1]
    if len(vectors) >= hnsw_min:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
        kind = "hnsw"
    else:
        index, kind = faiss.IndexFlatIP(dim), "flat"
    if len(vectors):
        index.add(vectors)
    return index, kind


class IndexRows:
    """The stored vectors, read back from the FAISS index on demand (flat and HNSW-flat both keep
    them), for a rebuild that reuses unchanged documents and for the spot check."""

    def __init__(self, index: faiss.Index):
        self.index = index

    def __len__(self) -> int:
        return self.index.ntotal

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self.index.reconstruct(int(i))
        return self.index.reconstruct_batch(np.asarray(i, dtype=np.int64))


def _all_finite(path: Path, mapped: np.memmap, rows: int = 8192) -> bool:
    """Scan the file in chunks through ordinary reads, so the mapping's pages stay out of RSS."""
    width = mapped.shape[1] if mapped.ndim == 2 else 1
    with path.open("rb") as fh:
        fh.seek(mapped.offset)
        for _ in range(0, len(mapped), rows):
            chunk = np.fromfile(fh, dtype=np.float32, count=rows * width)
            if not np.isfinite(chunk).all():
                return False
    return True


VERIFIED = ".verified.json"  # per version: files already checked, by (size, mtime_ns)


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _verified(folder: Path) -> dict:
    """Files of this version that a previous load verified (checksum, finite vectors), keyed by the
    size and mtime they had then: a start-up re-reads only what changed since (~1 s per 100k passages)."""
    try:
        seen = json.loads((folder / VERIFIED).read_text())
        return seen if isinstance(seen, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember_verified(folder: Path, seen: dict) -> None:
    tmp = folder / f"{VERIFIED}.{os.getpid()}"
    with contextlib.suppress(OSError):  # a read-only index is simply verified again next time
        tmp.write_text(json.dumps(seen))
        os.replace(tmp, folder / VERIFIED)
    with contextlib.suppress(OSError):
        tmp.unlink()


def _fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable; best effort (not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_manifest(path: Path, corrupt: Callable[[str], Exception]) -> dict:
    """manifest.json of the version folder `path`; anything unreadable raises `corrupt(why)`."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise corrupt("manifest.json is missing") from None
    except (ValueError, OSError) as exc:
        raise corrupt(f"manifest.json is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise corrupt("manifest.json has no file checksums")
    return manifest


def read_passages(path: Path, corrupt: Callable[[str], Exception]) -> list[Passage]:
    """The passages of passages.jsonl at `path`; a line that is not one raises `corrupt(why)`."""
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise corrupt(f"passages.jsonl is not UTF-8 ({exc})") from exc
    passages = []
    for lineno, line in enumerate(lines, 1):
        try:
            passages.extend([Passage(**json.loads(line))] if line.strip() else [])
        except (ValueError, TypeError) as exc:
            raise corrupt(f"passages.jsonl line {lineno} is not a passage ({exc})") from exc
    return passages
