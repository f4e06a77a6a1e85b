"""Compose an answer from ranked passages, or say plainly what the documents lack.

The answer is the sentence(s) holding what was asked; a question in several parts gets one line
per part, each from the cited passage that answers it best. A refusal names what is missing
(an entity or year no document has, a value of the asked kind) and what the documents do hold.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .chunking import answer_units
from .features import bigrams, has_value
from .models import Citation, Passage
from .question import Question
from .textnorm import simplify
from .vocab import CorpusVocab

_ASKED = {"date": "时间", "person": "人名", "count": "数量", "number": "数字"}


def sentence_score(sentence: str, q: Question, grams: set[str], cues: dict, people=()) -> float:
    s = simplify(sentence)
    value = sum(len(t) for t in q.content + q.terms if t in s) + 0.5 * len(grams & bigrams(s))
    value += sum(len(e) for e in q.entities if e in s) * 0.5 + 2.0 * sum(y in s for y in q.years)
    if q.asks and not (has_value(q.asks, s, cues, people) and (q.asks not in ("number", "count") or figure(s, cues))):
        value *= 0.3  # asked for a figure, a date, a name: it must hold one (a year is not 多少's figure)
    unit = unit_figure(q.simplified)
    if unit and unit.search(s):
        value *= 1.5  # a figure in the unit asked
    if s.rstrip("”’」』）) ").endswith(("？", "?")):  # a rhetorical question is never the answer
        value *= 0.2
    return value


_ASKED_UNIT = re.compile(r"(?:几|多少)([万亿千百]?[\u4e00-\u9fff])")  # 几对 -> 对, 多少万吨 -> 万吨


@lru_cache(maxsize=256)
def unit_figure(question: str) -> re.Pattern | None:
    """A figure in the unit the question asks in: 4对 for 每天开几对车, 140年 for 多少年 (not the
    article 一个, not 2010年). Once per question, not once per sentence scored."""
    unit = _ASKED_UNIT.search(question)
    if not unit:
        return None
    lead = r"(?<![\d.])\d{1,3}" if unit.group(1) == "年" else r"(?:\d|[两三四五六七八九十百千])"
    return re.compile(lead + r"\s*[万亿千百]?" + re.escape(unit.group(1)))
_SAID = re.compile(r"[^，。“”]{1,24}?(?:说|表示|介绍|指出|认为|(?<![名简号])称)[，,：:]")
_NUMERAL = re.compile(r"(?<![\d.])\d+(?:[.,]\d+)*(?![\d.])")


def figure(sentence: str, cues: dict) -> bool:
    """A figure that is not a year, a date or a table's number (表1): 2010年 and "in 2023" are when,
    not how many; 140年 and 2000吨 are figures, and so is a counted 五座 beside a year."""
    for m in _NUMERAL.finditer(sentence):
        after, before = sentence[m.end():m.end() + 1], sentence[max(0, m.start() - 3):m.start()]
        year = re.fullmatch(r"(19|20)\d\d", m.group()) and (after in ("年", "-", "/") or before.lower() == "in ")
        if year or after in ("月", "日", "号") or before[-1:] in ("表", "图"):
            continue
        return True
    return not _NUMERAL.search(sentence) or has_value("count", re.sub(r"\d", "", sentence), cues)


def best_sentence(passage: Passage, q: Question, cues: dict, people=(), grams: set[str] | None = None) -> str:
    sentences = answer_units(passage.text)
    if not sentences:
        return passage.text
    grams = grams if grams is not None else bigrams(q.simplified)
    scored = [(sentence_score(s, q, grams, cues, people), i) for i, s in enumerate(sentences)]
    value, at = max(scored, key=lambda vi: vi[0])
    if value <= 0:
        return sentences[0].strip()
    best = sentences[at].strip()
    if at and _SAID.match(simplify(best)) and sentences[at - 1].rstrip().endswith(("”", "」", "』")):
        start = at - 1  # "…" 某某说，…: what was said is the answer too, from where the quote opens
        while start > max(0, at - 4) and not re.search("[“「『]", sentences[start]):
            start -= 1
        quoted = "".join(x.strip() for x in sentences[start:at]) + best
        if re.search("[“「『]", quoted) and quoted in passage.text:
            return quoted
    return best


def compose(q: Question, citations: list[Citation], cues: dict) -> str:
    """One line, or one line per part with its citation number: "① … [2]"."""
    if not citations:
        return ""
    if not q.parts or len(citations) < 2:
        return _by_year(q, citations, cues) or citations[0].best_sentence
    picked: dict[str, tuple[str, int]] = {}  # sentence -> (the parts it answers, its citation number)
    for n, part in enumerate(q.parts[:4]):
        grams = bigrams(part)
        sub = Question(text=part, simplified=part, english=q.english,
                       content=[c for c in q.content if c in part] or q.content,
                       entities=[e for e in q.entities if e in part], unknown=[], unknown_places=[], years=[y for y in q.years if y in part],
                       asks=next((k for k, pat in cues.get("asks", {}).items() if re.search(pat, part.lower())), None),
                       recent=q.recent, terms=[])
        best = max(((sentence_score(s, sub, grams, cues), -c.rank, s.strip())  # a tie goes to the better citation
                    for c in citations for s in answer_units(c.passage.text)), default=None)
        if best and best[0] > 0:  # one sentence may answer two parts: it is shown once, with both marks
            marks, _ = picked.get(best[2], ("", -best[1]))
            picked[best[2]] = (marks + "①②③④"[n], -best[1])
    if len(picked) == 1 and len(next(iter(picked.values()))[0]) >= 2:
        (sentence, (_, rank)), = picked.items()
        return sentence if rank == 1 else f"{sentence} [{rank}]"
    lines = [f"{marks} {s} [{rank}]" for s, (marks, rank) in picked.items()]
    return "\n".join(lines) if len(lines) >= 2 else citations[0].best_sentence


def _by_year(q: Question, citations: list[Citation], cues: dict) -> str:
    """Documents of different years give the asked figure and the question names no year: one
    line per year, newest first, each with its citation number, so nobody takes an old figure
    for today's ("2019年：… [1]" / "2011年：… [3]")."""
    if q.years or q.asks not in ("number", "count") or not q.heads:
        return ""
    grams = bigrams(q.simplified)
    top = sentence_score(citations[0].best_sentence, q, grams, cues)
    lines: dict[str, tuple[int, str]] = {}
    for c in citations[:3]:
        year, s = c.passage.date[:4], c.best_sentence
        if not year or year in lines or not has_value(q.asks, s, cues) \
                or not all(h in s for h in q.heads):  # every line gives the 面积 asked about
            continue
        if c.rank == 1 or sentence_score(s, q, grams, cues) >= 0.7 * top > 0:
            lines[year] = (c.rank, s)
    if len(lines) < 2:
        return ""
    return "\n".join(f"{y}年：{s} [{r}]" for y, (r, s) in sorted(lines.items(), reverse=True))


def refusal_reason(q: Question, vocab: CorpusVocab, corpus_years: set[str], top: Passage | None,
                   top_text: str, type_in_top: bool) -> str:
    """Name what is missing and what is there, e.g. 资料里没有2019年X区的数据；有2020、2022年的。"""
    if q.unknown:
        return f"资料里没有提到“{'、'.join(q.unknown[:3])}”。"
    subject = "、".join(q.entities[:2])
    missing_years = [y for y in q.years if y not in corpus_years]
    if q.years and (missing_years or not any(y in top_text for y in q.years)):
        y = (missing_years or q.years)[0]
        have = sorted({yy for e in q.entities[:1] for yy, ix in vocab.years.items()
                       if len(ix) and set(ix.tolist()) & set(vocab.entities.get(e, []).tolist())})
        tail = f"；有{'、'.join(have[-4:])}年的" if have and subject else ""
        return f"资料里没有{y}年{subject}的数据{tail}。"
    if q.asks and not type_in_top:
        return f"资料里有关于{subject or '这个话题'}的内容，但没有找到问的{_ASKED.get(q.asks, '内容')}。"
    if subject:
        return f"资料里关于{subject}的内容回答不了这个问题。"
    return "资料里没有和这个问题相关的内容。"
