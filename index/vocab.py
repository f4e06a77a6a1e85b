"""What a corpus knows, derived from its own text, plus the curated vocabulary in data/.

Nothing here names a place: entities (places, organisations, people) are the words jieba tags
as such in the indexed passages, with administrative suffixes folded (X山区 -> X山); their
pinyin gives English spellings and homophone repairs. Curated word lists (everyday words ->
document words, question cues) are data files an admin can extend.
"""
from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .lexical import STOPWORDS, pos_tags
from .models import Passage
from .sounds import close_sound, same_sound
from .textnorm import simplify

ENTITY_TAGS = {"ns", "nt", "nr", "nz", "nrt"}
PLACE_TAGS = {"ns"}
# Administrative and organisational suffixes: a name with one is folded to its core as well.
SUFFIX = re.compile(r"(经济技术开发区|高新技术产业开发区|开发区|高新区|新区|园区|保护区|自治县|县级市|[区市县镇乡港省])$")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)(?!\s*(?:亿|万|多|余|元|个|项|家|吨|米|人|公里))")
_HANZI = re.compile(r"[\u4e00-\u9fff]+")


def core(name: str) -> str:
    """X山区 -> X山; a bare two-character core is kept whole (东区 stays 东区)."""
    stripped = SUFFIX.sub("", name)
    return stripped if len(stripped) >= 2 else name


def passage_context(p: Passage) -> str:
    """What the ranker reads for a passage: its document title and heading give context the
    text itself may leave out (a table row does not repeat which county it is about)."""
    return simplify(f"{p.title} {p.heading}\n{p.text}")


@dataclass
class CorpusVocab:
    entities: dict[str, np.ndarray] = field(default_factory=dict)  # core name -> passages naming it
    kinds: dict[str, str] = field(default_factory=dict)  # core name -> jieba tag (ns, nt, nr…)
    years: dict[str, np.ndarray] = field(default_factory=dict)  # year -> passages naming it or dated so
    passage_entities: list[list[str]] = field(default_factory=list)
    pinyin: dict[str, str] = field(default_factory=dict)  # toneless pinyin -> name

    @classmethod
    def build(cls, passages: list[Passage]) -> "CorpusVocab":
        texts = [passage_context(p) for p in passages]
        kinds: dict[str, str] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        per_passage: list[set[str]] = []
        for text in texts:
            found = set()
            for word, flag in pos_tags(text):
                if flag in ENTITY_TAGS and _HANZI.fullmatch(word) and len(word) >= 2:
                    for c in {word, core(word)}:  # a name with and without its suffix (X港, X区)
                        counts[c, flag] += 1
                        found.add(c)
            per_passage.append(found)
        for (c, flag), k in sorted(counts.items(), key=lambda kv: -kv[1]):  # the tag it has most often
            kinds.setdefault(c, flag)
        # a name counts wherever it occurs, not only where jieba tagged it
        names = sorted(kinds, key=len, reverse=True)
        pe = [[n for n in names if n in text] for text in texts]
        years: dict[str, list[int]] = defaultdict(list)
        for i, (p, text) in enumerate(zip(passages, texts)):
            ys = set(YEAR.findall(text)) | ({p.date[:4]} if p.date[:4].isdigit() else set())
            for y in ys:
                years[y].append(i)
        return cls.from_parts(kinds, pe, years, _pinyin_index(list(kinds)))

    @classmethod
    def from_parts(cls, kinds: dict[str, str], passage_entities: list[list[str]], years: dict[str, list[int]],
                   pinyin: dict[str, str]) -> "CorpusVocab":
        """The vocabulary from what `build` finds (or derived.py kept): which passages name each
        entity follows from the names in each passage."""
        ents: dict[str, list[int]] = defaultdict(list)
        for i, here in enumerate(passage_entities):
            for n in here:
                ents[n].append(i)
        return cls(entities={n: np.array(ix, np.int64) for n, ix in ents.items()}, kinds=kinds,
                   years={y: np.array(ix, np.int64) for y, ix in years.items()},
                   passage_entities=passage_entities, pinyin=pinyin)

    def places_in(self, i: int) -> list[str]:
        return [n for n in self.passage_entities[i] if self.kinds.get(n) in PLACE_TAGS]

    def people_in(self, i: int) -> list[str]:
        return [n for n in self.passage_entities[i] if self.kinds.get(n) in ("nr", "nrt")]

    def find(self, text: str) -> list[str]:
        """Corpus entities a (simplified) text names, longest first, no name inside another."""
        out: list[str] = []
        for n in sorted(self.entities, key=len, reverse=True):
            if n in text and not any(n in o for o in out):
                out.append(n)
        return out

    def named_in(self, name: str, text: str, low: str) -> bool:
        """`text` names `name`, in characters or, in an English passage (`low`: lower-cased), in
        the corpus's own pinyin spelling of it (Haiyang)."""
        if name in text:
            return True
        key = self._spelling.get(name)
        return bool(key) and key in low

    @functools.cached_property
    def _spelling(self) -> dict[str, str]:
        return {name: key for key, name in self.pinyin.items()}

    def repair(self, text: str, known=()) -> list[str]:
        """Entities the text means but spells in pinyin/English or with a homophone: matched on
        toneless pinyin."""
        return [name for name, _ in self.misspellings(text, known)]

    def misspellings(self, text: str, known=()) -> list[tuple[str, str]]:
        """(corpus name, what the text wrote): a pinyin/English spelling (whole word), or a
        Chinese window of the same length differing in one character whose syllable sounds the
        same or close (same initial or same final). A window that is itself a word (X洋) is
        repaired only to a name of the same sound that the corpus's character bigrams (`known`,
        the BM25 vocabulary) attest beside the next or previous character where they never
        attest the word there (X洋|东方 -> X阳东方: the corpus has 阳东, not 洋东)."""
        from pypinyin import lazy_pinyin

        out: list[tuple[str, str]] = []
        low = text.lower()
        for word in re.findall(r"[a-z]{4,}", low):
            name = self.pinyin.get(word)
            if name and name not in [o[0] for o in out]:
                out.append((name, word))
        names = self._by_length()
        for run in _HANZI.findall(text):
            py = lazy_pinyin(run)
            cuts = _boundaries(run)
            for size in (4, 3, 2):
                for i in range(len(run) - size + 1):
                    window = run[i:i + size]
                    if i not in cuts or i + size not in cuts:
                        continue  # 某地|工业园 holds no misspelt 某地港: a repair spans whole words
                    if any(ch in STOPWORDS for ch in window) or any(window in o[1] or o[1] in window for o in out):
                        continue
                    word = window in self.entities or _is_word(window)  # 开工 is a word, not a misspelt name
                    if word and not known:
                        continue
                    before, after = run[i - 1] if i else "", run[i + size] if i + size < len(run) else ""
                    best = None  # same sound beats a close one; then the name more passages use
                    for name, name_py in names.get(size, ()):
                        diff = [j for j in range(size) if window[j] != name[j]]
                        if len(diff) != 1 or name in text:
                            continue
                        a, b = py[i + diff[0]], name_py[diff[0]]
                        # a name written right plus a near sound next to it (a place + 一产, a place + 站) is not
                        # a misspelling of a longer name; a true homophone (港 written 刚) is
                        if word:
                            ok = same_sound(a, b) and _attested(name, window, before, after, known)
                        else:
                            ok = same_sound(a, b) or (close_sound(a, b) and not self._holds_name(window))
                        if ok:
                            rank = (a == b, len(self.entities.get(name, ())))
                            if best is None or rank > best[0]:
                                best = (rank, name)
                    if best:
                        out.append((best[1], window))
        return out

    def _holds_name(self, window: str) -> bool:
        return any(window[i:j] in self.entities for i in range(len(window))
                   for j in range(i + 2, len(window) + (i > 0)))

    @functools.cached_property
    def _names_py(self) -> dict[int, list[tuple[str, list[str]]]]:
        from pypinyin import lazy_pinyin

        out: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
        for n in self.kinds:
            if 2 <= len(n) <= 4 and _HANZI.fullmatch(n):
                out[len(n)].append((n, lazy_pinyin(n)))
        return out

    def _by_length(self) -> dict[int, list[tuple[str, list[str]]]]:
        return self._names_py

    def correct(self, text: str, known=()) -> str:
        """The text with misspelt corpus names written as the corpus writes them."""
        for name, wrote in self.misspellings(text, known):
            if re.fullmatch(r"[\u4e00-\u9fff]+", wrote):
                text = text.replace(wrote, name)
        return text


def _attested(name: str, wrote: str, before: str, after: str, known) -> bool:
    """The corpus joins `name` to a neighbouring character and never joins `wrote` to it."""
    def seen(a: str, b: str) -> bool:
        return bool(a and b) and "#" + a + b in known
    return (seen(name[-1], after) and not seen(wrote[-1], after)) or (seen(before, name[0]) and not seen(before, wrote[0]))


def _boundaries(run: str) -> set[int]:
    """Offsets where jieba's dictionary segmentation of `run` puts a word break."""
    from .lexical import _jieba

    cuts, at = {0}, 0
    for w in _jieba().cut(run, HMM=False):
        at += len(w)
        cuts.add(at)
    return cuts


def _is_word(text: str) -> bool:
    import jieba

    from .lexical import _jieba

    _jieba()
    return jieba.dt.FREQ.get(text, 0) > 0


def _pinyin_index(names: list[str]) -> dict[str, str]:
    from pypinyin import lazy_pinyin

    seen: dict[str, str] = {}
    clash: set[str] = set()
    for n in names:
        if 2 <= len(n) <= 4:
            key = "".join(lazy_pinyin(n))
            if key in seen and seen[key] != n:
                clash.add(key)
            seen.setdefault(key, n)
    return {k: v for k, v in seen.items() if k not in clash}


@functools.lru_cache(maxsize=1)
def dictionary_places() -> frozenset[str]:
    """Cities and counties jieba's own dictionary knows (大连市 ns -> 大连), so a question about a
    place no document mentions is recognised even where jieba tags the bare name otherwise.
    Names that are mainly everyday words (延长 v, 南部 f) are left out."""
    import jieba.posseg

    from .lexical import _jieba

    _jieba()
    tags = jieba.posseg.dt.word_tag_tab  # jieba's own word -> tag table, already in memory for tagging
    names = {w[:-1] for w, t in tags.items() if t == "ns" and re.fullmatch(r"[\u4e00-\u9fff]{2,4}[市县]", w)}
    everyday = {"v", "vn", "vd", "a", "ad", "an", "r", "f", "b", "t", "i", "m", "s", "c", "p"}
    return frozenset(n for n in names if len(n) >= 2 and tags.get(n) not in everyday and n[0] not in "各全本该此这那外")


@dataclass
class Curated:
    """data/vocab: glossary (word -> document words) and question cues."""
    glossary: dict[str, list[str]]
    cues: dict

    @classmethod
    def load(cls, folder: Path) -> "Curated":
        glossary: dict[str, list[str]] = {}
        path = Path(folder) / "glossary.tsv"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#") and "\t" in line:
                    word, terms = line.split("\t", 1)
                    glossary[word.strip().lower()] = [t.strip() for t in terms.split("|") if t.strip()]
        cues_path = Path(folder) / "question.json"
        cues = json.loads(cues_path.read_text(encoding="utf-8")) if cues_path.exists() else {}
        return cls(glossary, cues)

    def bridge(self, text: str) -> list[str]:
        """Document words for the everyday or English words the text uses."""
        low = text.lower()
        words = set(re.findall(r"[a-z][a-z\-]*", low))
        out: list[str] = []
        for word, terms in self.glossary.items():
            hit = (word in words or (" " in word and re.search(rf"\b{re.escape(word)}\b", low))) \
                if re.match(r"[a-z]", word) else word in low
            if hit:
                out.extend(t for t in terms if t not in low and t not in out)
        return out


@functools.lru_cache(maxsize=4)
def curated(folder: str) -> Curated:
    return Curated.load(Path(folder))
