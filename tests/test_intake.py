"""index/intake.py (upload checks), index/docstore.py (atomic store, archive), the link checks at ingestion and
render, the plain-text resend when Telegram rejects HTML, webhook settings, and the import
boundary between index/ and bot/. No model needed."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import upload_files as uf
from index import docstore, intake
from index.intake import Rejected
from fake_request import bot, make_bot  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("data,kind", [
    (uf.pdf(), "pdf"), (uf.docx_with_table(), "docx"), (uf.plain_zip(), "zip"), (uf.corrupt_docx(), "broken-zip"),
    (uf.ole_file(), "ole"), (uf.executable(), "exe"), (b"MZ\x90\x00" + b"\x00" * 60, "exe"), (uf.png(), "image"),
    ("纯文本".encode(), "text"), ("GBK 文本".encode("gbk"), "text"), (b"<!DOCTYPE html><p>x</p>", "html"),
    (b"", "empty"), (b" \n\t", "empty"), (bytes(range(256)), "binary")])
def test_sniff_judges_the_bytes(data, kind):
    assert intake.sniff(data) == kind


@pytest.mark.parametrize("name,kind,ok", [
    ("a.pdf", "pdf", ".pdf"), ("A.PDF", "pdf", ".pdf"), ("a.docx", "docx", ".docx"), ("a.md", "text", ".md"),
    ("a.txt", "html", ".txt"), ("a.html", "html", ".html"), ("a.htm", "text", ".htm"),
    ("a.pdf", "exe", None), ("a.docx", "zip", None), ("a.docx", "pdf", None), ("a.pdf", "docx", None),
    ("a.xlsx", "zip", None), ("a", "pdf", None), ("a.exe", "exe", None), ("a.txt", "empty", None)])
def test_check_kind_name_and_content_must_agree(name, kind, ok):
    if ok:
        assert intake.check_kind(name, kind) == ok
    else:
        with pytest.raises(Rejected):
            intake.check_kind(name, kind)


def test_caption_metadata_chinese_and_english_keys():
    assert intake.parse_caption("标题：烟台规划\n日期：2021年5月20日\n来源：烟台日报\n链接：https://a.cn/x") == {
        "title": "烟台规划", "date": "2021-05-20", "outlet": "烟台日报", "url": "https://a.cn/x"}
    assert intake.parse_caption("Title: Plan / Date: 2021-5 / Source: YMG / Link: http://b.org") == {
        "title": "Plan", "date": "2021-05", "outlet": "YMG", "url": "http://b.org"}
    assert intake.parse_caption("just a note") == {} and intake.parse_caption(None) == {}


@pytest.mark.parametrize("caption", ["日期：2021-13-01", "日期：2021-02-30", "date: next week", "日期：0021",
                                     "链接：javascript:alert(1)", "link: ftp://x.org/a", "链接：data:text/html,x",
                                     "链接：//no-scheme.org"])
def test_bad_caption_is_rejected(caption):
    with pytest.raises(Rejected):
        intake.parse_caption(caption)


@pytest.mark.parametrize("url,kept", [("https://a.cn/x?q=1", True), ("HTTP://A.CN", True), ("javascript:alert(1)", False),
                                      ("JavaScript:alert(1)", False), ("data:text/html,<b>", False), ("ftp://a", False),
                                      ("https://", False), ("https://a.cn/\nx", False), ("", False), (None, False)])
def test_safe_url_keeps_only_http_links(url, kept):
    assert intake.safe_url(url) == (url if kept else "")


def test_loader_drops_a_javascript_link_from_meta_json(tmp_path):
    from index.loaders import read_document

    (tmp_path / "d.txt").write_text("烟台的县域经济正在加快发展。", encoding="utf-8")
    (tmp_path / "d.meta.json").write_text(json.dumps({"title": "T", "url": "javascript:alert(1)"}), encoding="utf-8")
    assert read_document(tmp_path / "d.txt").url == ""
    (tmp_path / "d.meta.json").write_text(json.dumps({"title": "T", "url": "https://ok.cn/a"}), encoding="utf-8")
    assert read_document(tmp_path / "d.txt").url == "https://ok.cn/a"


def test_render_refuses_non_http_hrefs_defensively():
    from bot.render import citation_block

    base = {"rank": 1, "title": "T", "heading": "H", "text": "正文", "best_sentence": ""}
    assert "<a href" not in citation_block({**base, "url": "javascript:alert(1)"})
    assert '<a href="https://ok.cn/a?x=1&amp;y=2">来源</a>' in citation_block({**base, "url": "https://ok.cn/a?x=1&y=2"})


def test_to_plain_keeps_the_words_and_the_link():
    from bot.render import to_plain

    assert to_plain('<b>答：</b>a &lt; b\n<a href="https://x.cn/?a=1&amp;b=2">来源</a>') == \
        "答：a < b\n来源 https://x.cn/?a=1&b=2"


def test_zip_limits_from_the_directory_alone():
    intake.check_zip(uf.docx_with_table(), max_unpacked=5 * 2**20)
    with pytest.raises(Rejected, match="解压后"):
        intake.check_zip(uf.zip_bomb_docx(3), max_unpacked=2 * 2**20)
    with pytest.raises(Rejected, match="部件太多"):
        intake.check_zip(uf.docx_with_table(), max_unpacked=2**30, max_members=3)


def test_inspect_reads_metadata_from_the_file_and_normalises_text(tmp_path):
    info, path = intake.inspect(uf.docx_with_table(), "报告.docx", tmp_path)
    assert (info.title, info.date, info.suffix) == (uf.DOCX_TITLE, uf.DOCX_DATE, ".docx")
    assert info.doc_id.startswith("doc-") and path.exists()
    info, _ = intake.inspect(uf.pdf(title="PDF Title"), "p.pdf", tmp_path)
    assert (info.title, info.date, info.pages) == ("PDF Title", "2023-06-01", 2)
    info, _ = intake.inspect(uf.pdf(), "p.pdf", tmp_path, {"title": "来自说明", "date": "2020-01"})
    assert (info.title, info.date) == ("来自说明", "2020-01")
    info, path = intake.inspect("# 第一标题\n\n正文内容在这里。".encode("gb18030"), "notes.md", tmp_path)
    assert info.title == "第一标题" and path.read_text(encoding="utf-8").startswith("# 第一标题")
    html = b"<html><head><title>Page Title</title></head><body><p>Body text here.</p></body></html>"
    assert intake.inspect(html, "p.html", tmp_path)[0].title == "Page Title"


def _info(tmp_path: Path) -> tuple[intake.Inspection, Path]:
    return intake.inspect("烟台的县域经济正在加快发展。".encode(), "plan.txt", tmp_path / "work")


def test_store_puts_file_and_metadata_in_together(tmp_path):
    docs = tmp_path / "docs"
    info, src = _info(tmp_path)
    stored = docstore.store(src, docs, info, "A (42)")
    meta = json.loads((docs / f"{info.doc_id}.meta.json").read_text(encoding="utf-8"))
    assert stored.read_bytes() == src.read_bytes() and meta["added_by"] == "A (42)" and meta["sha256"] == info.sha256
    assert sorted(p.name for p in docs.iterdir()) == sorted([stored.name, f"{info.doc_id}.meta.json"])
    assert docstore.find_duplicate(docs, info.sha256) == stored
    assert docstore.find_duplicate(docs, "0" * 64, info.text_sha256) == stored
    assert docstore.find_duplicate(docs, "0" * 64) is None
    with pytest.raises(Rejected):
        docstore.store(src, docs, info, "A (42)")


def test_store_never_leaves_half_a_document(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    info, src = _info(tmp_path)
    real, calls = os.replace, []

    def failing(a, b):
        calls.append(b)
        if len(calls) == 2:  # the document itself: disk trouble after the metadata went in
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(docstore.os, "replace", failing)
    with pytest.raises(OSError):
        docstore.store(src, docs, info, "A (42)")
    assert list(docs.iterdir()) == []


def test_archive_moves_file_and_metadata_and_restore_puts_them_back(tmp_path):
    docs, arch = tmp_path / "docs", tmp_path / "var" / "archive"
    info, src = _info(tmp_path)
    docstore.store(src, docs, info, "A (42)")
    dest = docstore.archive(docs, info.doc_id, arch)
    assert list(docs.iterdir()) == [] and sorted(p.name for p in dest.iterdir()) == [
        f"{info.doc_id}.meta.json", f"{info.doc_id}.txt"]
    docstore.restore(dest, docs)
    assert len(list(docs.iterdir())) == 2 and not dest.exists()
    with pytest.raises(Rejected):
        docstore.archive(docs, "no-such-doc", arch)


def test_clean_stale_removes_unconfirmed_uploads_and_half_stores(tmp_path):
    docs, incoming = tmp_path / "docs", tmp_path / "var" / "incoming"
    (docs / ".incoming-abc").mkdir(parents=True)
    (docs / ".incoming-abc" / "x.txt").write_text("half")
    (docs / "keep.txt").write_text("kept")
    (incoming / "k1").mkdir(parents=True)
    docstore.clean_stale(docs, incoming)
    assert [p.name for p in docs.iterdir()] == ["keep.txt"] and not incoming.exists()


def test_index_imports_nothing_from_bot():
    for path in (REPO / "index").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            assert not [n for n in names if n == "bot" or n.startswith("bot.")], f"{path.name} imports {names}"


@pytest.mark.parametrize("env,word", [({"PLANBOT_WEBHOOK_URL": "https://bot.example.org/tg"}, "PLANBOT_WEBHOOK_SECRET"),
                                      ({"PLANBOT_WEBHOOK_URL": "ftp://x", "PLANBOT_WEBHOOK_SECRET": "s"}, "PLANBOT_WEBHOOK_URL"),
                                      ({"PLANBOT_WEBHOOK_URL": "https://x", "PLANBOT_WEBHOOK_SECRET": "bad secret!"},
                                       "PLANBOT_WEBHOOK_SECRET"),
                                      ({"PLANBOT_MAX_UPLOAD_MB": "0"}, "PLANBOT_MAX_UPLOAD_MB")])
def test_bad_webhook_or_upload_settings_exit_with_one_line(tmp_path, env, word):
    from botproc import bot_env

    e = bot_env(PLANBOT_TELEGRAM_TOKEN="1:x", PLANBOT_VAR_DIR=str(tmp_path / "var"), **env)
    r = subprocess.run([sys.executable, "-c", "from bot.config import load_settings; load_settings()"],
                       cwd=tmp_path, env=e, capture_output=True, text=True, timeout=60)
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and word in lines[0] and lines[0].startswith("planbot:"), lines


async def test_rejected_html_is_resent_as_plain_text(bot):
    """Telegram answers 400 "can't parse entities" to bad HTML (the fake request does too): the
    message goes out again as plain text instead of being lost."""
    from bot.common import send_html

    before = len(bot.request.calls)
    await send_html(bot.app.bot, 1001, '<b>答：</b>x <a href="javascript:1">来源</b>')
    sends = [c for c in bot.request.calls[before:] if c.method == "sendMessage"]
    assert [c.params.get("parse_mode") for c in sends] == ["HTML", None]
    assert sends[1].text == "答：x 来源"
