"""The build's ingest stage: which passages a new index version holds, and which need embedding.

A document whose content hash is unchanged keeps its passages and vectors from the previous
version; a new or changed one is chunked and queued for the embedder; a document that failed to
load keeps its previous passages rather than vanishing from the index.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .chunking import chunk_document
from .loaders import LoadReport
from .models import Passage
from .store import StoredIndex


@dataclass
class Plan:
    passages: list[Passage] = field(default_factory=list)
    vectors: list[np.ndarray | None] = field(default_factory=list)  # None: still to embed
    documents: dict[str, dict] = field(default_factory=dict)  # doc_id -> manifest entry
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[int]:
        return [i for i, v in enumerate(self.vectors) if v is None]

    def _keep(self, previous: StoredIndex, idx: list[int]) -> None:
        self.passages.extend(previous.passages[i] for i in idx)
        self.vectors.extend(previous.vectors[i] for i in idx)


def plan(loaded: LoadReport, previous: StoredIndex | None, max_chars: int) -> Plan:
    out = Plan()
    old_docs = previous.manifest.get("documents", {}) if previous else {}
    old_rows: dict[str, list[int]] = defaultdict(list)  # doc_id -> its passages in the previous version
    for i, p in enumerate(previous.passages if previous else []):
        old_rows[p.doc_id].append(i)
    for doc in loaded.documents:
        old = old_docs.get(doc.doc_id)
        before = len(out.passages)
        if old and old.get("hash") == doc.content_hash:
            out.unchanged.append(doc.doc_id)
            out._keep(previous, old_rows[doc.doc_id])
        else:
            (out.changed if old else out.added).append(doc.doc_id)
            for p in chunk_document(doc, max_chars=max_chars):
                out.passages.append(p)
                out.vectors.append(None)
        out.documents[doc.doc_id] = {
            "hash": doc.content_hash, "title": doc.title, "date": doc.date, "url": doc.url,
            "outlet": doc.outlet, "path": doc.path, "passages": len(out.passages) - before,
        }
    out.removed = [d for d in old_docs if d not in out.documents and d not in loaded.failed_ids]
    for doc_id in loaded.failed_ids:
        if doc_id in old_docs and doc_id not in out.documents:
            out._keep(previous, old_rows[doc_id])
            out.documents[doc_id] = old_docs[doc_id]
    return out


def embed(p: Plan, encode: Callable[..., np.ndarray], batch_size: int,
          progress: Callable[[str, int, int], None] | None = None) -> int:
    """Fill the plan's missing vectors in batches (progress after each); returns how many."""
    todo = p.todo
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        vecs = encode([p.passages[i].embed_text for i in batch], batch_size=batch_size)
        for i, v in zip(batch, vecs):
            p.vectors[i] = v
        if progress:
            progress("embed", min(start + batch_size, len(todo)), len(todo))
    return len(todo)
