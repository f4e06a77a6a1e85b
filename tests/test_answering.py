"""Issue 8: answers from general signals. The engine knows only what its documents say: places,
organisations and years come from the indexed text, vocabulary from data files, weights from
data/rank/model.json (fitted on the dev split). These tests use the real model and real files."""
from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import docs_settings
from index.loaders import read_document

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "eval" / "corpus"


def test_index_code_holds_no_list_of_places_titles_or_vocabulary():
    """The names the old gazetteer and glossary spelt out must not appear in index/*.py."""
    names = ["莱山", "芝罘", "福山", "牟平", "蓬莱", "海阳", "招远", "书记", "航天", "风电", "laishan", "yantai"]
    for path in (REPO / "index").glob("*.py"):
        text = "\n".join(ln for ln in path.read_text(encoding="utf-8").splitlines()
                         if not ln.startswith("PROBE = "))  # the model's probe sentence is not a list
        found = [n for n in names if n in text]
        assert not found, f"{path.name} names {found}"


def test_vocabulary_is_derived_from_the_documents(doc_engine):
    vocab = doc_engine._live.vocab
    assert "莱山" in vocab.entities and "牟平" in vocab.entities  # 莱山区 folded to its core
    assert vocab.repair("来山的主导产业") == ["莱山"]  # a homophone typo, repaired by pinyin
    assert "莱山" in vocab.repair("What does Laishan focus on?")  # an English spelling


def test_typo_question_cites_the_right_district(doc_engine):
    a = doc_engine.answer("来山的主导产业是什么")
    assert a.answered, a.reason
    assert "莱山" in a.citations[0].passage.text


def test_unknown_place_is_refused_by_name(doc_engine):
    a = doc_engine.answer("大连的县域经济怎么发展?")
    assert not a.answered and a.citations == []
    assert "大连" in a.reason


def test_docx_table_row_becomes_a_cited_passage(tmp_path):
    """Each row is one line; each cell keeps its column header."""
    import docx

    d = docx.Document()
    d.add_heading("某县重点项目", level=0)
    d.add_heading("项目清单", level=1)
    t = d.add_table(rows=3, cols=3)
    for r, cells in enumerate([["项目", "投资", "进度"], ["海上光伏基地", "48亿元", "2024年开工"],
                               ["冷链物流园", "12亿元", "已投产"]]):
        for c, v in enumerate(cells):
            t.cell(r, c).text = v
    path = tmp_path / "projects.docx"
    d.save(path)
    doc = read_document(path)
    assert "海上光伏基地：48亿元（投资）" in doc.text and "2024年开工（进度）。\n冷链物流园：12亿元（投资）" in doc.text
    from index.chunking import chunk_document

    rows = [p for p in chunk_document(doc) if "冷链物流园" in p.text]
    assert rows and rows[0].heading == "项目清单"
    # the question sets give a row as check.py extracts it, cells joined by " | ": the labelled
    # row counts as citing it, another row does not
    from index.evaluate import first_hit

    cited = [{"rank": 1, "text": rows[0].text}]
    assert first_hit(cited, ["冷链物流园 | 12亿元 | 已投产"]) == 1
    assert first_hit(cited, ["冷链物流园 | 48亿元 | 已投产"]) is None


def test_wrapped_pdf_text_is_reflowed_and_pages_are_named():
    doc = read_document(CORPUS / "zhaoyuan-huangjin-2025.pdf")
    # the source breaks this sentence after "黄" and the number after "1"
    assert "国内主要黄金上市公司" in doc.text
    assert "年销售收入突破160亿元" in doc.text
    assert "第2页" not in doc.text  # page footer dropped
    from index.chunking import chunk_document

    pages = {p.page for p in chunk_document(doc)}
    assert pages == {1, 2}


def test_html_page_keeps_the_article_and_drops_site_chrome(tmp_path):
    page = """<html><head><title>某区樱桃节开幕</title></head><body>
    <div class="nav"><a href="/">首页</a> | <a href="/news">新闻中心</a> | <a href="/gov">政务公开</a></div>
    <div class="article"><h1>某区樱桃节开幕</h1>
    <p>5月28日，第五届樱桃节在某区开幕，全区樱桃种植面积已超过10万亩，年产量3000多万公斤。</p>
    <p>本届樱桃节首次引入农超对接，采购商与果农现场签约，销售收入有望达到3.7亿元。</p></div>
    <div class="footer">版权所有 某某网 联系我们 网站地图 打印本页 关闭窗口</div></body></html>"""
    path = tmp_path / "cherry.html"
    path.write_text(page, encoding="utf-8")
    doc = read_document(path)
    assert "全区樱桃种植面积已超过10万亩" in doc.text
    for chrome in ("新闻中心", "政务公开", "版权所有", "网站地图"):
        assert chrome not in doc.text
    assert doc.title == "某区樱桃节开幕"


def test_citations_carry_document_date_and_readable_snippets(doc_engine):
    a = doc_engine.answer("牟平的主导产业是什么")
    assert a.answered
    for c in a.citations:
        assert c.passage.date.startswith("2021") and c.to_dict()["date"] == c.passage.date
        assert len(c.passage.text) <= 600


def test_year_question_names_what_is_missing(doc_engine):
    a = doc_engine.answer("2019年牟平区的地区生产总值是多少?")
    assert not a.answered
    assert "2019" in a.reason


def test_fitted_model_is_data_with_its_command():
    model = json.loads((REPO / "data" / "rank" / "model.json").read_text(encoding="utf-8"))
    assert model["info"]["command"].startswith("planbot fit")
    assert "data/eval/dev.jsonl" in model["info"]["fitted_on"]
    # the split and the newest frozen one are never fitted on; test2-test8 were scored once
    # by earlier rounds and are tuning data now
    assert "test.jsonl" not in json.dumps(model["info"]) and "test9.jsonl" not in json.dumps(model["info"])
    assert model["refusal"]["kind"] == "forest" and len(model["refusal"]["trees"]) >= 100
    assert 0 < model["threshold"] < 1


def test_typo_repair_leaves_correctly_spelt_words_alone(doc_engine):
    """Only a whole word that sounds like a corpus name is repaired: 来山 is, but a question
    holding a correctly spelt name next to other words keeps its words."""
    vocab = doc_engine._live.vocab
    assert vocab.correct("来山的主导产业是什么") == "莱山的主导产业是什么"
    for text in ("牟平区工业园有多少家企业?", "莱阳市委书记是谁?", "烟台机场一年运送多少旅客?"):
        assert vocab.correct(text) == text
    # a real word is taken for a name only where the corpus joins the name, never the word, to
    # what follows: 海阳东方航天港 is in the article, 海洋东方 nowhere; 海洋经济 stays as written
    known = doc_engine._live.bm25.vocab
    assert vocab.correct("海洋东方航天港要打造成什么样?", known) == "海阳东方航天港要打造成什么样?"
    for text in ("海洋经济怎么发展?", "长岛的海洋生态怎么样?"):
        assert vocab.correct(text, known) == text


def test_figures_from_documents_of_different_years_are_labelled_by_year(tmp_path, embedder):
    """Two reports give the same figure for different years; a question naming no year gets one
    line per year, newest first, each with its own citation."""
    from index.config import IndexSettings
    from index.engine import Engine

    docs = tmp_path / "docs"
    docs.mkdir()
    for stem, date, area, output in (("apple-2019", "2019-05", "30", "50"), ("apple-2023", "2023-06", "42", "61")):
        (docs / f"{stem}.txt").write_text(
            f"青川县苹果产业发展情况\n\n据县农业农村局介绍，青川县苹果种植面积达到{area}万亩，年产量{output}万吨。"
            f"全县建成冷库120座，苹果远销东南亚。\n", encoding="utf-8")
        (docs / f"{stem}.meta.json").write_text(json.dumps({"title": f"青川县苹果产业（{date[:4]}）", "date": date}),
                                                 encoding="utf-8")
    engine = Engine(IndexSettings(docs_dir=docs, var_dir=tmp_path / "var"), embedder=embedder)
    engine.build()
    a = engine.answer("青川县苹果种植面积有多少?")
    assert a.answered, a.reason
    lines = a.text.splitlines()
    assert len(lines) == 2, a.text
    assert lines[0].startswith("2023年：") and "42万亩" in lines[0]
    assert lines[1].startswith("2019年：") and "30万亩" in lines[1]
    for line in lines:  # each line points at the citation it came from
        n = int(re.search(r"\[(\d)\]$", line).group(1))
        assert line.split("：", 1)[1].split(" [")[0] in a.citations[n - 1].passage.text


def test_answer_to_a_table_question_is_the_whole_row_not_a_year(tmp_path, model_cache, embedder):
    """The answer text gives the row with its name and every labelled cell (a cell alone does not say
    which row it is), and a sentence whose only digits are a year is not the figure 多少 asks for."""
    import docx

    from index.engine import Engine

    settings = docs_settings(tmp_path, model_cache, {})
    d = docx.Document()
    d.add_heading("某县重点项目", level=0)
    d.add_paragraph("冷链物流园于2021年签约落地，是全县农产品出口的重要平台。")
    d.add_paragraph("表1 某县重点项目清单")
    t = d.add_table(rows=3, cols=3)
    for r, cells in enumerate([["项目", "投资", "进度"], ["海上光伏基地", "48亿元", "2024年开工"],
                               ["冷链物流园", "12亿元", "已投产"]]):
        for c, v in enumerate(cells):
            t.cell(r, c).text = v
    d.save(settings.docs_dir / "projects.docx")
    engine = Engine(settings, embedder=embedder)
    engine.build()
    a = engine.answer("冷链物流园投资多少?")
    assert a.answered, a.reason
    assert a.text == "冷链物流园：12亿元（投资）；已投产（进度）。", a.text


def test_a_speakers_line_is_answered_with_what_was_said(doc_engine):
    """When the answering sentence is the attribution after a quote ("…”莱山区委书记宫权说，…"), the
    quote comes with it: what the official said is the answer, not only who said it."""
    a = doc_engine.answer("莱山的主导产业是什么")
    assert a.answered, a.reason
    assert "继续在产业上下功夫" in a.text and "宫权说" in a.text, a.text
    assert a.text in a.citations[0].passage.text  # one contiguous stretch of the cited passage


def test_a_figure_in_the_asked_unit_is_the_answer_and_two_parts_share_one_sentence(tmp_path, model_cache, embedder):
    """几对车 is answered by the sentence with "4对", not by the one with the most names in it; a
    sentence that answers both parts of a question is shown once, not dropped for the second part."""
    from index.answer import compose
    from index.config import IndexSettings
    from index.engine import Engine
    from index.models import Citation, Passage
    from index.question import Question
    from index.vocab import curated

    engine = Engine(docs_settings(tmp_path, model_cache, {
        "gaotie.txt": "青河高铁通车\n\n青河高铁西起青河站，东至白沙站，全长193公里，是一条高速铁路。"
                      "开通初期每天开行动车组列车4对，青河到白沙最快1小时04分。\n",
        "zhan.txt": "青河高铁沿线车站\n\n青河高铁沿线设青河、白沙等7座车站，青河站为既有车站。\n"}), embedder=embedder)
    engine.build()
    a = engine.answer("青河高铁每天开几对车?")
    assert a.answered and a.text == "开通初期每天开行动车组列车4对，青河到白沙最快1小时04分。", a.text

    both = "开通初期每天开行动车组列车4对，青河到白沙最快1小时04分。"
    cites = [Citation(1, Passage("a#0", "a", "a", "", 0, 0, 40, "全长193公里。" + both), 1.0, best_sentence="全长193公里。"),
             Citation(2, Passage("b#0", "b", "b", "", 0, 0, 20, "青河到白沙设7座车站。"), 0.5)]
    q = Question(text="", simplified="每天开几对车?青河到白沙最快多久?", english=False, content=["开", "车", "青河", "白沙", "最快"],
                 entities=["青河", "白沙"], unknown=[], unknown_places=[], years=[], asks="count", recent=False,
                 parts=["每天开几对车", "青河到白沙最快多久"])
    assert compose(q, cites, curated(str(IndexSettings().vocab_dir)).cues) == both
