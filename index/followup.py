"""Resolve a short follow-up ("那X区呢?", "它的目标是什么?") against the previous question."""
from __future__ import annotations

import re
from typing import Callable

_PRONOUN = re.compile(r"^(它|它们|其|他|她|这个|那个|该)")
_THAT_X = re.compile(r"^(那|那么)?\s*(.{1,12}?)\s*(呢|怎么样|如何)\s*[?？]?\s*$")


def _places(text: str) -> list[str]:
    """Place names jieba tags in the text (the engine passes its corpus-derived finder instead)."""
    from .lexical import pos_tags

    return [w for w, f in pos_tags(text) if f == "ns" and len(w) >= 2]


def _place_in(text: str, find: Callable[[str], list[str]]) -> str | None:
    hits = [(text.find(p), p) for p in find(text) if p in text]
    return min(hits)[1] if hits else None


def resolve(question: str, previous: str, find: Callable[[str], list[str]] | None = None) -> str:
    """Rewrite a follow-up into a self-contained question; other questions pass through."""
    q = question.strip()
    if not previous or len(q) > 20:
        return q
    find = find or _places
    m = _THAT_X.match(q)
    old = _place_in(previous, find)
    if m and old:
        new = m.group(2).strip()
        return previous.replace(old, new, 1) if new else q
    if _PRONOUN.match(q) and old:
        return _PRONOUN.sub(old, q, count=1)
    return q
