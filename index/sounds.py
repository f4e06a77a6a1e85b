"""How alike two toneless pinyin syllables sound: what vocab.py's misspelling repair compares a
written character with a corpus name's character by (来 for 莱, 刚 for 港)."""
from __future__ import annotations

_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c",
             "s", "y", "w")


def close_sound(a: str, b: str) -> bool:
    """Two syllables a reader might confuse: the same, or sharing the initial or the final."""
    if same_sound(a, b):
        return True

    def split(s: str) -> tuple[str, str]:
        ini = next((i for i in _INITIALS if s.startswith(i)), "")
        return ini, s[len(ini):]
    (ia, fa), (ib, fb) = split(a), split(b)
    return (ia == ib and ia != "") or (fa == fb and fa != "")


def same_sound(a: str, b: str) -> bool:
    """The same sound up to the usual fuzzy-pinyin pairs (zh/z, ch/c, sh/s, n/l, h/f, -ang/-an,
    -eng/-en, -ing/-in)."""
    return _fuzzy(a) == _fuzzy(b)


def _fuzzy(s: str) -> str:
    for hard, soft in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if s.startswith(hard):
            s = soft + s[2:]
            break
    if s[:1] in ("n", "h"):
        s = {"n": "l", "h": "f"}[s[0]] + s[1:]
    for hard, soft in (("ang", "an"), ("eng", "en"), ("ing", "in")):
        if s.endswith(hard):
            return s[: -len(hard)] + soft
    return s
