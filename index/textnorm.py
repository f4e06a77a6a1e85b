"""Text cleaning shared by ingestion, search and evaluation.

Raw captures mix ASCII and full-width punctuation, carry page chrome, and lost
the ® sign to a `?`; these rules fix that without hand-editing documents.
"""
from __future__ import annotations

import functools
import re
import unicodedata

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CHROME = re.compile(r"^\s*(分享到|分享|返回顶部|打印本页|关闭窗口|责任编辑|【?纠错】?|扫一扫)([\s:：].*)?$")
_QUESTION_WORDS = re.compile(r"(什么|怎么|怎样|如何|为何|为什么|哪|谁|几|多少|吗|呢|是否|何)")
_FULLWIDTH = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；", "(": "（", ")": "）"}
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


def _restore_registered(line: str) -> str:
    """A `?` glued to the next Chinese character, in a clause with no question
    word, is a ® that the capture lost (e.g. `瑞欣妥?成功获批`)."""
    out, clause_start = [], 0
    for i, ch in enumerate(line):
        if ch == "?" and i + 1 < len(line) and re.match(f"[{CJK}]", line[i + 1]):
            clause = line[clause_start:i]
            if not _QUESTION_WORDS.search(clause):
                out.append("®")
                continue
        if ch in ",.;:!?，。；：！？、":
            clause_start = i + 1
        out.append(ch)
    return "".join(out)


def to_display(text: str) -> str:
    """ASCII punctuation next to Chinese text back to its full-width form."""
    def repl(m: re.Match) -> str:
        return _FULLWIDTH[m.group(0)]

    text = re.sub(f"(?<=[{CJK}”’》」』）])[,?!:;]|[,?!:;](?=[{CJK}“‘《「『])", repl, text)
    text = re.sub(r"\.{3}", "…", text)
    text = re.sub(f"\\((?=[{CJK}])|(?<=[{CJK}。，；！？”])\\(", "（", text)
    return re.sub(f"(?<=[{CJK}])\\)", "）", text)


def clean_text(raw: str) -> str:
    """NFKC, chrome removed, ® restored, Chinese punctuation full-width, blank lines kept."""
    lines = []
    for line in nfkc(raw).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = re.sub(r"[ \t\u3000]+", " ", line).strip()
        if _CHROME.match(line):
            continue
        lines.append(to_display(_restore_registered(line)))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def simplify(text: str) -> str:
    return _t2s().convert(text)


def fold(text: str) -> str:
    """Punctuation- and width-insensitive form for matching evidence and snippets."""
    text = simplify(nfkc(text)).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")
