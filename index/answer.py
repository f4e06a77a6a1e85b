"""Compose an answer from ranked passages, or refuse with a reason a user can read.

A bare similarity threshold cannot tell "莱山的主导产业" from "莱州的主导产业"
(their scores overlap), so refusal looks at what the question asks for: places
and years the documents never mention, and typed questions (who / how much /
when / how many) whose subject never appears beside such a value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .chunking import split_sentences
from .gazetteer import ENCLOSING, PLACES, SUFFIXES, other_place_mentions
from .glossary import bridge
from .lexical import STOPWORDS, pos_tags, tokenize
from .models import Passage
from .textnorm import simplify

_TYPES = {
    "money": (re.compile(r"多少钱|投资.{0,4}多少|多少.{0,4}投资|多少(亿|万)?元|金额|资金|产值|生产总值|收入.{0,4}多少|how much (money|invest)|invest(ment|ed)?\b.*how much|\bcost|\bgdp\b|revenue"),
              re.compile(r"\d+(\.\d+)?\s*(亿|万)?元"), "金额"),
    "person": (re.compile(r"是谁|谁是|谁说|哪几?位|姓名|\bwho (is|was|are)\b"), None, "人名"),
    "date": (re.compile(r"哪一?年|何时|什么时候|哪天|几月|\bwhen\b|what year|which year"),
             re.compile(r"\d+月\d+日|\d{4}年|今年|明年|下半年|上半年"), "时间"),
    "count": (re.compile(r"几个|多少个|几项|几条|几栋|几家|多少家|多少项|多少条|how many"),
              re.compile(r"\d+|[一二两三四五六七八九十百]+(个|项|条|栋|家|大|座)"), "数量"),
}
_GENERIC = set("老新各全本该此我城这那")
_TITLES = ("书记", "主任", "市长", "区长", "县长", "董事长", "总经理", "记者")
_TITLE_NAME = re.compile("(" + "|".join(_TITLES) + r")\s*([\u4e00-\u9fff]{2,3})(?=说|表示|介绍|指出|认为|\s|，|、|）|\))")


@dataclass
class Analysis:
    simplified: str
    tokens: list[str]
    expansions: list[str]
    places: list[str] = field(default_factory=list)
    years: list[str] = field(default_factory=list)
    qtype: str | None = None
    subjects: list[str] = field(default_factory=list)
    english: bool = False
    terms: list[str] = field(default_factory=list)  # plan vocabulary the question means (glossary)


def analyse(question: str, expansions: list[str]) -> Analysis:
    simplified = simplify(question)
    tags = pos_tags(simplified)
    english = len(re.findall(r"[A-Za-z]", simplified)) > len(re.findall(r"[\u4e00-\u9fff]", simplified))
    places = [w for w, f in tags if f == "ns" and not re.fullmatch(r"[A-Za-z]+", w) and w[0] not in _GENERIC]
    places += [p for p in PLACES if p in simplified and p not in places]
    places += [w for w in other_place_mentions(tags) if w not in places]
    subjects = [w for w, f in tags if (f in ("ns", "nr", "nt", "nz") or w in PLACES) and w not in STOPWORDS]
    subjects += [e for e in expansions if e not in subjects]
    subjects = [w for w in subjects if w not in ENCLOSING and _strip_suffix(w) != "烟台" and w[0] not in _GENERIC]
    terms = bridge(simplified)
    qtype = next((name for name, (pat, _, _) in _TYPES.items() if pat.search(simplified.lower())), None)
    return Analysis(
        simplified=simplified, tokens=tokenize(simplified) + expansions + tokenize(" ".join(terms)),
        expansions=expansions, terms=terms,
        places=places, years=re.findall(r"(?<!\d)(20\d\d|19\d\d)(?!\d)(?!\s*(?:亿|万|多|余|元|个|项|家))", simplified),
        qtype=qtype, subjects=subjects, english=english,
    )


def _strip_suffix(place: str) -> str:
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if place.endswith(s) and len(place) > len(s) + 1:
            return place[: -len(s)]
    return place


def unknown_place(a: Analysis, corpus_text: str) -> str | None:
    """A place the question names (or spells in English) that no document mentions.
    A misspelt known place (芝浮 for 芝罘) is not unknown: its repair is in expansions."""
    from .gazetteer import expansions as repair

    for place in a.places:
        base = _strip_suffix(place)
        if place in ENCLOSING or base in ENCLOSING or base in corpus_text:
            continue
        if any(r in corpus_text for r in repair(base)):
            continue
        return place
    if a.english:  # an English spelling of a place the documents never mention
        return next((e for e in a.expansions if e not in corpus_text), None)
    return None


def unpaired_year(a: Analysis, passages: list[Passage]) -> str | None:
    """'芝罘区2023年…' needs one passage naming both the place and the year."""
    if not a.years or not a.places:
        return None
    for year in a.years:
        for place in a.places:
            base = _strip_suffix(place)
            if not any(year in p.text and (base in p.text or place in p.text) for p in passages):
                return f"文档没有把{place}和{year}年放在一起讲，找不到{place}{year}年的具体内容。"
    return None


def unknown_year(a: Analysis, corpus_years: set[str]) -> str | None:
    return next((y for y in a.years if y not in corpus_years), None)


def _has_value(qtype: str, sentence: str) -> bool:
    _, value, _ = _TYPES[qtype]
    if qtype == "person":
        return bool(_TITLE_NAME.search(sentence))
    return bool(value.search(sentence))


def asked_titles(a: Analysis) -> list[str]:
    """The titles (书记, 记者…) a question mentions."""
    return [t for t in _TITLES if t in a.simplified]


def _names_titled(text: str, titles: list[str]) -> bool:
    """`text` names someone by one of `titles` (芝罘区委书记杨升岩)."""
    return any(m.group(1) in titles for m in _TITLE_NAME.finditer(text))


def titled_passages(texts: list[str]) -> dict[str, np.ndarray]:
    out = {t: np.zeros(len(texts), bool) for t in _TITLES}
    for i, text in enumerate(texts):
        for m in _TITLE_NAME.finditer(text):
            out[m.group(1)][i] = True
    return out


def person_focus(a: Analysis, titled: dict[str, np.ndarray], n: int) -> np.ndarray:
    """1 for passages naming a person by the title the question asks about (any title if none)."""
    asked = asked_titles(a) or list(_TITLES)
    hit = np.zeros(n, bool)
    for t in asked:
        hit |= titled[t]
    return hit.astype(np.float32)


def typed_gap(a: Analysis, passages: list[Passage]) -> str | None:
    """The question asks for a value of some type about a subject; no passage has both."""
    if not a.qtype:
        return None
    subjects = [s for s in a.subjects if len(s) >= 2] or []
    titles = asked_titles(a) if a.qtype == "person" else []
    for p in passages:
        text = simplify(p.text)
        if subjects and not any(s in text or _strip_suffix(s) in text for s in subjects):
            continue
        if titles and not _names_titled(text, titles):
            continue
        if _has_value(a.qtype, text):
            return None
    what = "、".join(subjects) if subjects else "这个问题"
    return f"文档提到的内容里没有{what}的{_TYPES[a.qtype][2]}。"


def best_sentence(passage: Passage, a: Analysis) -> str:
    """The sentence sharing most question terms (character bigrams cover unsegmented words)."""
    sentences = split_sentences(passage.text)
    if not sentences:
        return passage.text
    terms = set(a.tokens)
    q = re.sub(r"\W", "", a.simplified) + "".join(a.expansions)
    grams = {q[i : i + 2] for i in range(len(q) - 1)}

    def score(sent: str) -> float:
        s = simplify(sent)
        value = sum(len(t) for t in terms if t in s) + 0.5 * sum(1 for g in grams if g in s)
        if s.rstrip("”’」』）) ").endswith(("？", "?")):  # a rhetorical question is never the answer
            value *= 0.2
        return value

    asked = asked_titles(a)

    def typed(sent: str) -> bool:  # holds the kind of value asked for (a name, a date, a count…)
        if not a.qtype:
            return False
        if a.qtype == "person" and asked:
            return _names_titled(simplify(sent), asked)
        return _has_value(a.qtype, simplify(sent))

    scored = [(score(sent), sent) for sent in sentences]
    value, best = max(scored, key=lambda vs: (vs[0] > 0 and typed(vs[1]), vs[0]))
    return best.strip() if value > 0 else sentences[0].strip()
