"""Retrieval library: documents -> passages -> FAISS + BM25 -> cited answers. No Telegram here."""
import os as _os

# pypinyin copies its character and phrase dictionaries at import unless told not to; nothing here
# modifies them, so the copy is ~28 MB of resident memory for nothing (set before any import of it).
_os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")

from .config import IndexSettings
from .engine import BuildReport, Engine
from .models import Answer, Citation, Document, Passage
from .store import IndexCorrupt, IndexError_, IndexMismatch, IndexMissing, IndexWriteFailed

__all__ = ["Answer", "BuildReport", "Citation", "Document", "Engine", "IndexCorrupt", "IndexError_",
           "IndexMismatch", "IndexMissing", "IndexSettings", "IndexWriteFailed", "Passage"]
