"""The records that cross module lines: documents in, passages indexed, answers out."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Document:
    doc_id: str
    title: str
    text: str
    url: str = ""
    outlet: str = ""
    date: str = ""
    language: str = "zh-Hans"
    path: str = ""
    pages: list[int] = field(default_factory=list)  # start offset of each page in `text` (pdf)

    @property
    def content_hash(self) -> str:
        import hashlib

        meta = f"{self.title}\n{self.url}\n{self.outlet}\n{self.date}\n{self.language}\n"
        return hashlib.sha256((meta + self.text).encode("utf-8")).hexdigest()[:16]


@dataclass
class Passage:
    passage_id: str
    doc_id: str
    title: str
    heading: str
    paragraph: int
    start: int
    end: int
    text: str
    url: str = ""
    date: str = ""
    page: int = 0  # 1-based page of a paged source (pdf); 0 when the source has no pages
    language: str = ""

    @property
    def embed_text(self) -> str:
        """What is embedded and indexed: the title and heading give a passage the context its
        text may leave out (a table row does not repeat which county it is about)."""
        head = " · ".join(x for x in (self.title, self.heading) if x)
        return f"{head}\n{self.text}" if head else self.text

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Citation:
    rank: int
    passage: Passage
    score: float
    best_sentence: str = ""

    @property
    def marked_text(self) -> str:
        """Snippet with the answering sentence wrapped in 【】 for plain-text outputs."""
        text, best = self.passage.text, self.best_sentence
        if best and best in text:
            return text.replace(best, f"【{best}】", 1)
        return text

    def to_dict(self) -> dict:
        p = self.passage
        return {
            "rank": self.rank, "doc_id": p.doc_id, "title": p.title, "heading": p.heading,
            "paragraph": p.paragraph, "url": p.url, "text": p.text, "date": p.date, "page": p.page,
            "best_sentence": self.best_sentence, "score": round(float(self.score), 4),
        }


@dataclass
class Answer:
    question: str
    answered: bool
    text: str = ""
    reason: str = ""
    citations: list[Citation] = field(default_factory=list)
    latency_ms: float = 0.0
    index_version: str = ""
    resolved_question: str = ""

    def to_dict(self) -> dict:
        return {
            "question": self.question, "answered": self.answered, "reason": self.reason,
            "answer": self.text, "citations": [c.to_dict() for c in self.citations],
            "latency_ms": round(self.latency_ms, 2), "index_version": self.index_version,
        }
