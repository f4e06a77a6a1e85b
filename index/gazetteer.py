"""Yantai place names: the jieba user dictionary, English/pinyin spellings and
homophone typo repair (来山 -> 莱山) all come from this one table."""
from __future__ import annotations

import functools
import re

# name: (English / pinyin spellings, suffixes people add)
PLACES: dict[str, tuple[str, ...]] = {
    "烟台": ("yantai",),
    "芝罘": ("zhifu",),
    "福山": ("fushan",),
    "莱山": ("laishan",),
    "牟平": ("muping",),
    "蓬莱": ("penglai",),
    "龙口": ("longkou",),
    "莱阳": ("laiyang",),
    "莱州": ("laizhou",),
    "招远": ("zhaoyuan",),
    "栖霞": ("qixia",),
    "海阳": ("haiyang",),
    "长岛": ("changdao", "changshan islands"),
    "昆嵛山": ("kunyushan", "kunyu mountain", "kunyu"),
    "开发区": ("development zone", "economic and technological development zone", "yeda"),
    "高新区": ("high-tech zone", "hi-tech zone", "high tech zone", "hightech zone"),
    "综合保税区": ("bonded zone", "comprehensive bonded zone", "free trade zone"),
    "八角湾": ("bajiao bay",),
    "东方航天港": ("oriental spaceport", "eastern spaceport", "space port", "spaceport"),
}
SUFFIXES = ("区", "市", "县", "保护区")
# Regions that contain the places above: naming them is not asking about another place.
ENCLOSING = {"中国", "全国", "山东", "山东省", "胶东", "胶东半岛", "全省", "省内", "国内", "烟台市"}


# jieba's tags for everyday words that are also city names (延长 v, 各省 r, 南部 f, 平安 a …)
_COMMON_TAGS = {"v", "vn", "vd", "a", "ad", "an", "r", "f", "b", "t", "i", "m", "s", "c", "p"}


@functools.lru_cache(maxsize=1)
def other_places() -> frozenset[str]:
    """Chinese cities jieba's own dictionary knows (大连市 ns -> 大连), so a question about another
    city is recognised even when jieba tags the bare name otherwise. Names that are mainly
    everyday words (延长, 各省, 南部) are left out."""
    import jieba

    tags, cities = {}, set()
    with jieba.dt.get_dict_file() as f:
        for line in f.read().decode("utf-8").splitlines():
            parts = line.split()
            if len(parts) == 3:
                tags[parts[0]] = parts[2]
                if parts[2] == "ns" and re.fullmatch(r"[\u4e00-\u9fff]{2,4}市", parts[0]):
                    cities.add(parts[0][:-1])
    return frozenset(c for c in cities if len(c) >= 2 and c not in PLACES and tags.get(c) not in _COMMON_TAGS
                     and c[0] not in "各全本该此这那外")


def other_place_mentions(tags: list[tuple[str, str]]) -> list[str]:
    """Cities from `other_places` the question names: tagged as a place, or used like one
    (日照市委…, 大连的…); 灯塔工厂 is not a city."""
    out = []
    for i, (word, flag) in enumerate(tags):
        nxt = tags[i + 1][0] if i + 1 < len(tags) else ""
        if word in other_places() and (flag == "ns" or nxt[:1] in ("市", "县", "省", "的")):
            out.append(word)
    return out


def jieba_words() -> list[str]:
    words = []
    for name in PLACES:
        words.append(name)
        words.extend(name + s for s in SUFFIXES if not name.endswith(s[-1]))
    return words


def _hanzi_runs(text: str) -> list[str]:
    return re.findall(r"[\u4e00-\u9fff]+", text)


def expansions(question: str) -> list[str]:
    """Place names the question means but may have spelled in English, pinyin or a homophone."""
    from pypinyin import lazy_pinyin

    found: list[str] = []
    low = question.lower()
    for name, spellings in PLACES.items():
        if name in question:
            continue
        if any(re.search(rf"\b{re.escape(s)}\b", low) for s in spellings):
            found.append(name)
    masked = question
    for name in sorted(PLACES, key=len, reverse=True):
        masked = masked.replace(name, " " * len(name))
    for run in _hanzi_runs(masked):
        py = lazy_pinyin(run)
        for name, name_py in _pinyin_names().items():
            size = len(name)
            for i in range(len(run) - size + 1):
                window = run[i : i + size]
                if window != name and name not in question and name not in found and _sounds_like(
                    window, py[i : i + size], name, name_py
                ):
                    found.append(name)
    return found


@functools.lru_cache(maxsize=1)
def _pinyin_names() -> dict[str, list[str]]:
    from pypinyin import lazy_pinyin

    return {name: lazy_pinyin(name) for name in PLACES if re.fullmatch(r"[\u4e00-\u9fff]+", name)}


def _syllables_close(a: str, b: str) -> bool:
    initials = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
                "r", "z", "c", "s", "y", "w")
    def split(s: str) -> tuple[str, str]:
        for ini in initials:
            if s.startswith(ini):
                return ini, s[len(ini):]
        return "", s
    (ia, fa), (ib, fb) = split(a), split(b)
    return ia == ib or fa == fb


def _sounds_like(window: str, window_py: list[str], name: str, name_py: list[str]) -> bool:
    """Same pinyin, or one syllable close while the other characters are identical."""
    if window_py == name_py:
        return True
    diffs = [i for i in range(len(name)) if window[i] != name[i]]
    return len(diffs) == 1 and _syllables_close(window_py[diffs[0]], name_py[diffs[0]])
