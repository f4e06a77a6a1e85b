"""Which text an answer shows (index/answer.py) and how evaluation scores it: unit tests, no model."""
from __future__ import annotations

from index.answer import figure, best_sentence
from index.chunking import answer_units
from index.config import IndexSettings
from index.evaluate import _answer_holds
from index.models import Passage
from index.question import Question
from index.vocab import curated

CUES = curated(str(IndexSettings().vocab_dir)).cues


def _q(text: str, content: list[str], asks: str | None = None, entities: list[str] = ()) -> Question:
    return Question(text=text, simplified=text, english=False, content=content, entities=list(entities),
                    unknown=[], unknown_places=[], years=[], asks=asks, recent=False)


def test_a_year_or_a_date_is_not_the_figure_asked_but_a_count_beside_it_is():
    assert not figure("2010年开工建设。", CUES)
    assert not figure("5月12日，会上印发了三年行动方案。", CUES)  # 三年 is not a counted thing
    assert figure("2019年，莱州港建成五座码头。", CUES)
    assert figure("全年产量2000吨，总投资1980万元。", CUES)
    assert figure("到今年恰好140年。", CUES)


def test_only_a_table_row_stays_whole_prose_with_a_colon_is_split():
    assert answer_units("冷链物流园：12亿元（投资）；已投产（进度）。") == ["冷链物流园：12亿元（投资）；已投产（进度）。"]
    assert answer_units("据介绍：今年全市GDP增长6%。其中工业增长8%。服务业增长5.1%（初步核算）。") == [
        "据介绍：今年全市GDP增长6%。", "其中工业增长8%。", "服务业增长5.1%（初步核算）。"]


def test_a_quote_of_several_sentences_comes_whole_with_its_speaker():
    text = "会上气氛热烈。“我们有基础。更有信心。要继续在产业上下功夫。”区委书记宫权说，未来三年要打造先行区。"
    p = Passage("a#0", "a", "a", "", 0, 0, len(text), text)
    got = best_sentence(p, _q("宫权说了什么", ["宫权", "未来", "先行区"]), CUES)
    assert got == "“我们有基础。更有信心。要继续在产业上下功夫。”区委书记宫权说，未来三年要打造先行区。"


def test_a_multi_part_answer_holds_only_when_every_part_is_answered():
    row = {"evidence": ["每天开行4对", "最快1小时04分"], "evidence_parts": [["每天开行4对"], ["最快1小时04分"]]}
    assert _answer_holds("① 开通初期每天开行4对 [1]\n② 最快1小时04分 [2]", row)
    assert not _answer_holds("开通初期每天开行4对。", row)
    assert _answer_holds("开通初期每天开行4对。", {"evidence": ["每天开行4对"]})
