"""Ingestion: what the user later sees quoted as a citation comes from here, so the
cleaned text, passage boundaries and per-format loading must be right."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import ARTICLE, ARTICLE_URL, REPO
from index.chunking import chunk_document, is_heading, split_sentences
from index.loaders import load_documents
from index.models import Document
from index.textnorm import clean_text, fold

SAMPLE_PDF = REPO / "tests" / "fixtures" / "sample.pdf"


# -- cleaning the real article ------------------------------------------------------

def test_registered_sign_restored_but_real_questions_kept(article):
    """The capture turned ® into `?`; quoting `瑞欣妥?成功获批` would look broken."""
    assert "瑞欣妥®成功获批" in article.text
    assert "博优诺®服务全国患者" in article.text
    assert "怎么办？唯有奋起直追！" in article.text
    assert "如何实现？" in article.text
    assert "?" not in article.text


def test_page_chrome_removed(article):
    assert "分享到" not in article.text
    assert article.text.endswith("（YMG全媒体记者 慕溯 苗春雷）")


def test_ascii_punctuation_between_chinese_becomes_fullwidth(article):
    assert article.text.startswith("烟台激活县域经济一池春水，锚定三年行动方案")
    assert "县域强则城市强，县域兴则城市兴。" in article.text
    assert "振兴县（区）域经济" in article.text
    assert "," not in article.text.replace("YMG", "")


def test_metadata_from_sidecar(article):
    assert article.url == ARTICLE_URL
    assert article.date == "2021-05"
    assert article.title.startswith("烟台激活县域经济一池春水，锚定")  # sidecar title's ASCII comma made full-width


def test_clean_text_leaves_english_punctuation_alone():
    assert clean_text("Hello, world! Really?") == "Hello, world! Really?"
    assert clean_text("分享到 分享\n\n\n\n正文,继续") == "正文，继续"


def test_fold_ignores_punctuation_width_and_script():
    """Evidence matching must not care whether a capture used `,` or `，`, 萊 or 莱."""
    assert fold("县域强则城市强,县域兴") == fold("县域强则城市强，县域兴")
    assert fold("怎么办?唯有") == fold("怎么办？唯有")
    assert fold("萊山的主導產業") == fold("莱山的主导产业")
    assert fold("莱山") != fold("莱州")


# -- chunking -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def passages(article):
    return chunk_document(article)


def test_passages_are_exact_slices_of_the_document(article, passages):
    """Offsets let a citation point back into the source; text must match them exactly."""
    assert len(passages) > 10
    for p in passages:
        assert p.text == article.text[p.start : p.end]
        assert p.url == ARTICLE_URL and p.doc_id == article.doc_id
    assert len({p.passage_id for p in passages}) == len(passages)


def test_every_body_paragraph_is_in_some_passage(article, passages):
    covered = {i for p in passages for i in range(p.start, p.end)}
    pos = 0
    for line in article.text.split("\n"):
        body = line.strip()
        if body and not is_heading(body) and fold(body) != fold(article.title):
            start = article.text.index(body, pos)
            assert all(i in covered for i in range(start, start + len(body))), body[:20]
        pos += len(line) + 1


def test_passages_carry_their_section_heading(passages):
    (space,) = [p for p in passages if "海阳东方航天港" in p.text]
    assert "点滴变化在积聚" in space.heading
    (laishan,) = [p for p in passages if "莱山区委书记宫权" in p.text]
    assert "找准突破口全心全速抓落实" in laishan.heading
    assert not any("海阳" in p.heading for p in passages)


@pytest.mark.parametrize("max_chars", [60, 120, 260])
def test_no_passage_exceeds_max_chars_unless_one_sentence(article, max_chars):
    ps = chunk_document(article, max_chars=max_chars)
    too_long = [p.text[:20] for p in ps if len(p.text) > max_chars and len(split_sentences(p.text)) > 1]
    assert not too_long
    assert all(p.text == article.text[p.start : p.end] for p in ps)


def test_long_paragraph_is_split_on_sentence_boundaries():
    sentence = "牟平聚焦打造烟台生命科学创新引领示范区，围绕医药健康产业链加快推进。"
    doc = Document(doc_id="d", title="标题", text="标题\n\n" + sentence * 8)
    ps = chunk_document(doc, max_chars=80)
    assert len(ps) == 4
    assert all(p.text == sentence * 2 for p in ps)


def test_split_sentences_on_chinese_and_ascii_marks():
    text = "一是产业。二是园区！三是什么？四是民生；Five!Six?Seven;八"
    assert split_sentences(text) == ["一是产业。", "二是园区！", "三是什么？", "四是民生；", "Five!", "Six?", "Seven;", "八"]
    assert split_sentences("他说：“好。”然后走了。") == ["他说：“好。”", "然后走了。"]


def test_is_heading():
    assert is_heading("点滴变化在积聚")
    assert not is_heading("怎么办？唯有奋起直追！")
    assert not is_heading("县域经济高质量发展冲锋号吹响——")
    assert not is_heading("")


# -- loaders ------------------------------------------------------------------------

@pytest.fixture
def mixed_docs(tmp_path):
    """One file per supported format, plus two broken ones."""
    import docx

    (tmp_path / "plan.md").write_text(
        "---\ntitle: 莱山产业规划\nurl: https://example.org/laishan\ndate: 2021-05-12\n---\n"
        "莱山区将全力打造全市高质量发展先行区,继续在产业上下功夫。\n", encoding="utf-8")
    (tmp_path / "page.html").write_text(
        "<html><head><title>芝罘城市更新</title><script>var tracker = 'SHOULD_NOT_APPEAR';</script>"
        "</head><body><nav>首页 | 新闻</nav><h1>芝罘区</h1><p>芝罘区的突破口就是城市更新。</p>"
        "<p>幸福新城、海上世界、芝罘仙境3个重大片区开发建设。</p></body></html>", encoding="utf-8")
    d = docx.Document()
    d.core_properties.title = "长岛生态"
    d.add_paragraph("长岛持续推动生态保护修复。")
    d.add_paragraph("东亚江豚、斑海豹等濒危生物频繁群游。")
    d.save(str(tmp_path / "islands.docx"))
    shutil.copy(SAMPLE_PDF, tmp_path / "brief.pdf")
    (tmp_path / "note.txt").write_text("栖霞市实施苹果大果园计划。", encoding="utf-8")
    (tmp_path / "note.meta.json").write_text(json.dumps(
        {"title": "栖霞功能定位", "url": "https://example.org/qixia", "date": "2021-06", "outlet": "YMG"}),
        encoding="utf-8")
    (tmp_path / "broken.docx").write_bytes(os.urandom(2048))
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "ignored.csv").write_text("a,b\n", encoding="utf-8")
    return tmp_path


def test_sample_pdf_fixture_is_extractable():
    from pypdf import PdfReader

    reader = PdfReader(str(SAMPLE_PDF))
    assert "sea launch port" in reader.pages[0].extract_text()


def test_each_format_loads_with_metadata(mixed_docs):
    report = load_documents(mixed_docs)
    docs = {d.doc_id: d for d in report.documents}
    assert sorted(docs) == ["brief", "islands", "note", "page", "plan"]

    md = docs["plan"]
    assert (md.title, md.url, md.date) == ("莱山产业规划", "https://example.org/laishan", "2021-05-12")
    assert md.text == "莱山区将全力打造全市高质量发展先行区，继续在产业上下功夫。"

    html = docs["page"]
    assert html.title == "芝罘城市更新"
    assert "芝罘区的突破口就是城市更新。" in html.text and "芝罘仙境" in html.text
    assert "SHOULD_NOT_APPEAR" not in html.text and "tracker" not in html.text

    word = docs["islands"]
    assert word.title == "长岛生态"
    assert word.text == "长岛持续推动生态保护修复。\n\n东亚江豚、斑海豹等濒危生物频繁群游。"

    pdf = docs["brief"]
    assert pdf.title == "Sample Spaceport Brief"
    assert "Haiyang Oriental Spaceport plans a sea launch port." in pdf.text
    assert "Muping focuses on biomedicine" in pdf.text

    txt = docs["note"]
    assert (txt.title, txt.url, txt.date, txt.outlet) == ("栖霞功能定位", "https://example.org/qixia", "2021-06", "YMG")
    assert txt.text == "栖霞市实施苹果大果园计划。"


def test_broken_files_are_reported_by_name_and_others_still_load(mixed_docs):
    report = load_documents(mixed_docs)
    assert set(report.failures) == {"broken.docx", "empty.pdf"}
    assert all(reason for reason in report.failures.values())
    assert len(report.documents) == 5


def test_file_name_is_the_fallback_title(tmp_path):
    (tmp_path / "无标题笔记.txt").write_text("海阳正坚持以发射带动制造。", encoding="utf-8")
    (doc,) = load_documents(tmp_path).documents
    assert doc.title == "无标题笔记" and doc.url == ""


def test_missing_folder_is_reported(tmp_path):
    report = load_documents(tmp_path / "nope")
    assert report.documents == [] and str(tmp_path / "nope") in report.failures
