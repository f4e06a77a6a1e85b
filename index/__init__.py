"""Retrieval library: documents -> passages -> FAISS + BM25 -> cited answers. No Telegram here."""
from .config import IndexSettings
from .engine import BuildReport, Engine
from .models import Answer, Citation, Document, Passage
from .store import IndexMismatch, IndexMissing

__all__ = ["Answer", "BuildReport", "Citation", "Document", "Engine", "IndexMismatch", "IndexMissing",
           "IndexSettings", "Passage"]
