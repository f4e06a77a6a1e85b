"""The lexical signal: BM25 over jieba search-mode tokens of simplified text."""
from __future__ import annotations

import functools
import logging
import re
from collections.abc import Set

import numpy as np

from .textnorm import nfkc, simplify

STOPWORDS = set(
    "的 了 是 在 和 与 及 等 也 都 而 就 将 把 被 对 从 向 以 为 于 之 其 这 那 个 们 有 中 上 下 "
    "什么 哪些 哪个 哪 哪里 怎么 怎样 如何 多少 几 吗 呢 吧 啊 谁 请问 一下 请 "
    "the a an of in on at to for is are was what which who how many much does do did "
    "and or with by from that this it its be as".split()
)
_TOKEN_OK = re.compile(r"[\w\u4e00-\u9fff]")


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    _share_tag_keys(jieba)
    return jieba


def warm() -> None:
    """jieba's dictionary and its POS tag table loaded now, and what loading them left behind handed
    back to the OS: every question needs both, and loaded lazily by the first question the garbage
    would stay in the serving process (~60 MB; derived.py no longer tags passages at start-up)."""
    _jieba()
    release_memory()


def _share_tag_keys(jieba) -> None:
    """jieba.posseg reads the dictionary file a second time for its word -> tag table, so every one
    of its 349k words is a second string object beside the tokenizer's FREQ key. Re-key the table
    with FREQ's own strings (same words, same tags; ~7 MB less resident)."""
    import jieba.posseg as pseg

    tab, freq = pseg.dt.word_tag_tab, jieba.dt.FREQ
    if not tab or next(iter(tab)) is next((w for w in freq if w in tab), None):
        return
    shared = {w: t for w in freq if (t := tab.get(w)) is not None}
    if len(shared) == len(tab):  # every tagged word is a dictionary word; otherwise leave it be
        pseg.dt.word_tag_tab = shared


def tokenize(text: str) -> list[str]:
    """jieba search-mode words, plus character bigrams ("#县域"), which catch paraphrases and typos
    that jieba segments differently."""
    text = simplify(nfkc(text)).lower()
    words = [t for t in _jieba().cut_for_search(text) if t.strip() and _TOKEN_OK.search(t) and t not in STOPWORDS]
    for run in re.findall(r"[\u4e00-\u9fff]{2,}", text):
        words += ["#" + run[i : i + 2] for i in range(len(run) - 1)]
    return words


def pos_tags(text: str) -> list[tuple[str, str]]:
    _jieba()  # also loads jieba.posseg
    import jieba.posseg as pseg

    return [(w.word, w.flag) for w in pseg.cut(simplify(nfkc(text)))]


class TokenSet(Set):
    """A read-only view of an index's tokens that can be weakly referenced (a dict's keys view
    cannot): a cache keyed on it goes with the index version it was derived from."""

    __slots__ = ("_ids", "__weakref__")

    def __init__(self, ids: dict[str, int]):
        self._ids = ids

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __iter__(self):
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class BM25Index:
    def __init__(self, texts: list[str]):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on itself at import
        self.n = len(texts)
        self._vocab_ids: dict[str, int] = {}
        corpus = []
        for text in texts:  # ids per passage as it is tokenised: lists of str for 100k passages take GBs
            toks = tokenize(text) or ["<empty>"]
            corpus.append(np.fromiter((self._vocab_ids.setdefault(t, len(self._vocab_ids)) for t in toks),
                                      np.int32, len(toks)))
        self.model = bm25s.BM25(k1=1.2, b=0.75)
        if corpus:  # bm25s cannot index an empty corpus; scores() answers zeros for it
            self.model.index(bm25s.tokenization.Tokenized(corpus, self._vocab_ids), show_progress=False)
        del corpus
        self._vocab = TokenSet(self._vocab_ids)
        release_memory()

    @classmethod
    def restore(cls, model, n: int) -> "BM25Index":
        """The index as derived.py stored it: a bm25s model indexed with our token ids."""
        self = cls.__new__(cls)
        self.n, self.model = n, model
        self._vocab_ids = model.vocab_dict
        self._vocab = TokenSet(self._vocab_ids)
        return self

    @property
    def vocab(self) -> "TokenSet":
        """The indexed tokens (a view, not a copy; the same object every time, so what is derived
        from it can be cached per index, see translate.py)."""
        return self._vocab

    def idf(self, word: str) -> float:
        """How rare a word is in the corpus, 0 (every passage) .. log(n+1)/0.5 (none). A word jieba
        cut differently in the passages counts by its rarest character bigram."""
        df = self._df(word)
        if df == 0 and len(word) > 2 and re.fullmatch(r"[\u4e00-\u9fff]+", word):
            df = min(self._df("#" + word[i:i + 2]) for i in range(len(word) - 1))
        return float(np.log((self.n + 1) / (df + 0.5)))

    def _df(self, token: str) -> int:
        i = self._vocab_ids.get(token)
        if i is None or not self.n:
            return 0
        indptr = self.model.scores["indptr"]  # bm25s keeps one column per token: its length is the df
        return int(indptr[i + 1] - indptr[i])

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        known = [self._vocab_ids[t] for t in query_tokens if t in self._vocab_ids]
        if not known or self.n == 0:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)


def release_memory() -> None:
    """Hand the freed token lists back to the OS (glibc keeps them otherwise), so a big index's
    one-off build does not stay in the serving process's RSS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
