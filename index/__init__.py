"""Retrieval library: documents -> passages -> FAISS + BM25 -> cited answers. No Telegram here."""
from .config import IndexSettings
from .engine import BuildReport, Engine
from .models import Answer, Citation, Document, Passage
from .store import IndexCorrupt, IndexError_, IndexMismatch, IndexMissing, IndexWriteFailed

__all__ = ["Answer", "BuildReport", "Citation", "Document", "Engine", "IndexCorrupt", "IndexError_",
           "IndexMismatch", "IndexMissing", "IndexSettings", "IndexWriteFailed", "Passage"]
