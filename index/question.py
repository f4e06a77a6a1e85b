"""What a question asks: its words, the corpus entities and years it names, the kind of value it
wants, whether it wants the newest figure, and words it uses that the corpus does not know."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .lexical import STOPWORDS, pos_tags, tokenize
from .textnorm import nfkc, simplify
from .translate import chinese_to_english, english_to_chinese
from .vocab import ENTITY_TAGS, YEAR, CorpusVocab, Curated, core, dictionary_places


@dataclass
class Question:
    text: str
    simplified: str
    english: bool
    content: list[str]  # content words, question words and stop words removed
    entities: list[str]  # corpus entities named (repaired spellings included)
    unknown: list[str]  # names the question uses as entities that no document mentions
    unknown_places: list[str]  # of those, the ones that are places (jieba's tag or dictionary)
    years: list[str]
    asks: str | None  # date / person / count / number
    recent: bool
    terms: list[str] = field(default_factory=list)  # glossary + dictionary translations
    tokens: list[str] = field(default_factory=list)  # BM25 query tokens
    parts: list[str] = field(default_factory=list)  # sub-questions of a multi-part question
    heads: list[str] = field(default_factory=list)  # what the question word asks about: 员工 in 有多少员工
    translations: dict[str, list[str]] = field(default_factory=dict)  # Chinese word -> corpus English words

    @property
    def dense_text(self) -> str:
        """The question with its repaired names and translated terms appended for the encoder."""
        extra = [t for t in self.entities + self.terms if t not in self.simplified]
        return self.simplified + ("（" + "、".join(extra[:8]) + "）" if extra else "")


def analyse(text: str, vocab: CorpusVocab, curated: Curated, known_tokens, english_docs: bool = True) -> Question:
    """`english_docs`: the corpus holds English passages, so Chinese words are worth translating."""
    text = nfkc(text).strip()
    simp = vocab.correct(simplify(text), known_tokens)  # 来山 -> the corpus's own spelling, before anything else
    low = simp.lower()
    english = len(re.findall(r"[A-Za-z]", simp)) > 2 * len(re.findall(r"[\u4e00-\u9fff]", simp))
    cues = curated.cues
    qwords = re.compile(cues.get("question_words", "^$"))
    tags = pos_tags(simp)
    content = []
    ctags = re.compile(cues.get("content_tags", ""))
    for w, f in tags:
        if not ctags.match(f):
            continue
        w2 = qwords.sub("", w).strip().lower()
        if len(w2) >= 2 or re.fullmatch(r"[\u4e00-\u9fff]", w2 or "") and f.startswith("n"):
            if w2 not in STOPWORDS and re.search(r"\w", w2) and w2 not in content:
                content.append(w2)
    entities = vocab.find(simp)
    named = {i for e in entities for m in re.finditer(re.escape(e), simp) for i in range(m.start(), m.end())}
    entities += [e for e, written in vocab.misspellings(simp, known_tokens) if e not in entities
                 and not any(named & set(range(m.start(), m.end())) for m in re.finditer(re.escape(written), simp))]
    unknown = []
    for w, f in tags:
        if f in ENTITY_TAGS and re.fullmatch(r"[\u4e00-\u9fff]{2,}", w) and not qwords.search(w) and not vocab.find(w) \
                and core(w) not in vocab.entities and not any(core(w) in e or e in w for e in entities) \
                and not vocab.repair(w):  # a misspelt known name (来山) is not unknown
            unknown.append(w)
    for i, (w, f) in enumerate(tags):  # a city the dictionary knows, used as a place (大连的…, 威海市…)
        nxt = tags[i + 1][0] if i + 1 < len(tags) else ""
        if w in dictionary_places() and w not in unknown and not vocab.find(w) and w not in vocab.entities \
                and not vocab.repair(w) \
                and (f == "ns" or nxt[:1] in ("市", "县", "的", "区")):
            unknown.append(w)
    places = [w for w in unknown if w in dictionary_places() or core(w) in dictionary_places()]
    years = [y for y in YEAR.findall(simp)]
    asks = next((k for k, pat in cues.get("asks", {}).items() if re.search(pat, low)), None)
    recent = bool(re.search(cues.get("recent", "^$"), low))
    terms = curated.bridge(simp)
    if english:
        terms += [t for t in english_to_chinese(simp, known_tokens) if t not in terms]
    translations: dict[str, list[str]] = {}
    if not english and english_docs:
        for w in dict.fromkeys([c for c in content if re.search(r"[\u4e00-\u9fff]", c)] + entities):
            found = chinese_to_english([w], known_tokens) + _romanised([w], known_tokens)
            if found:
                translations[w] = found
                terms += [t for t in found if t not in terms]
    tokens = tokenize(simp) + [t for e in entities for t in tokenize(e)] + [t for x in terms for t in tokenize(x)]
    parts = [p.strip() for p in re.split(cues.get("part_split", "$^"), simp) if len(p.strip()) >= 2]
    asked = " ".join(m.group(0) for pat in cues.get("asks", {}).values() for m in re.finditer(pat, low)
                     if qwords.search(m.group(0)))  # 叫什么名字 is how it asks; 产值 is what it asks about
    heads = [h for h in _heads(tags, qwords, set(cues.get("head_skip", ())), entities, years) if h not in asked]
    return Question(text=text, simplified=simp, english=english, content=content, entities=entities,
                    unknown=unknown, unknown_places=places, years=years, asks=asks, recent=recent, terms=terms, tokens=tokens,
                    parts=parts if len(parts) >= 2 else [], heads=heads, translations=translations)


def _romanised(words: list[str], known_tokens) -> list[str]:
    """Names as an English text spells them (their toneless pinyin, suffix dropped), where the
    corpus's English passages use that spelling: a Chinese question about an English report."""
    from pypinyin import lazy_pinyin

    out = []
    for w in words:
        for name in {w, core(w)}:
            key = "".join(lazy_pinyin(name))
            if 2 <= len(name) <= 4 and len(key) >= 5 and key in known_tokens and key not in out:
                out.append(key)
    return out


def _heads(tags: list[tuple[str, str]], qwords: re.Pattern, skip: set[str], entities: list[str],
           years: list[str]) -> list[str]:
    """The words next to each question word (票价 in 票价多少, 员工 in 多少员工, 总经理 in 总经理是谁):
    the attribute asked for. A near-miss question names a real entity but an attribute no
    passage about it gives, so these words are what an answering passage has to hold."""
    words: list[tuple[str, str]] = []
    for w, f in tags:  # 多 + 大 as jieba cuts it is the question word 多大
        w = w.lower()
        if w.strip() and re.search(r"\w", w):
            if words and qwords.fullmatch(words[-1][0] + w) and not qwords.fullmatch(w):
                words[-1] = (words[-1][0] + w, "r")
            else:
                words.append((w, f))
    out: list[str] = []

    def take(head: str, tag: str) -> None:
        if not (tag[:1] in ("n", "v", "q") or tag == "eng") or (len(head) < 2 and tag != "q"):
            return  # 叫, 了: not what the question asks about; a unit (亩, 吨) is
        if head in years or head == "年" or any(head in e or e in head for e in entities) or head in out:
            return
        out.append(head)

    for i, (w, _) in enumerate(words):
        if not qwords.fullmatch(w):
            continue
        for step in (-1, 1):
            j = i + step
            while 0 <= j < len(words) and (words[j][0] in skip or words[j][0] in STOPWORDS or qwords.fullmatch(words[j][0])):
                j += step
            if not 0 <= j < len(words):
                continue
            take(*words[j])
            if step == 1 and len(words[j][0]) == 1 and words[j][1][:1] in ("m", "q", "n"):
                run = ""  # 多少条国际航线, 多少吨黄金: past the unit, the nouns that say what is counted
                for w2, f2 in words[j + 1:]:
                    if not f2.startswith("n") or qwords.fullmatch(w2):
                        break
                    run += w2
                if len(run) >= 2:
                    take(run, "n")
    return out
