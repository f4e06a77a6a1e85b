"""Issue 10 end to end: bot admins add documents by sending them, list them with /docs and
remove them with /remove. The real bot process (`python -m bot`), the real model and real
files, against the local Bot API peer, which now serves getFile and file downloads.

One bot process for the module; tests run in file order (the acceptance upload comes after the
bad files, /remove after the acceptance upload).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import upload_files as uf
from botapi_peer import BotApiPeer
from botproc import BotProcess, bot_env, prepare_root, until

TOKEN = "555000111:AAH-planbotUploadSecret_x1"
ADMIN, OTHER_ADMIN, STRANGER = 42, 44, 1002
G_SUB = -1002
ARTICLE_Q = "莱山的主导产业是什么"
NOTHING = "没有做任何改动。"
MAX_UNPACKED_MB = 5

pytestmark = pytest.mark.slow


class Env:
    def __init__(self, proc: BotProcess, var: Path, docs: Path):
        self.proc, self.peer, self.var, self.docs = proc, proc.peer, var, docs

    # -- what must not change ----------------------------------------------------------
    def version(self) -> str:
        return (self.var / "index" / "CURRENT").read_text().strip()

    def doc_listing(self) -> list[str]:
        return sorted(p.name for p in self.docs.iterdir())

    def snapshot(self) -> tuple:
        incoming = self.var / "incoming"
        return self.version(), self.doc_listing(), sorted(p.name for p in incoming.iterdir()) if incoming.exists() else []

    # -- scripting ---------------------------------------------------------------------
    def exchange(self, chat_id: int, push, n: int = 1, timeout: float = 60.0) -> list[dict]:
        before = len(self.peer.sent(chat_id))
        update = push()
        try:
            replies = self.peer.wait_for_replies(chat_id, before + n, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"no reply to {update}\nbot log tail:\n{self.proc.log()[-3000:]}") from exc
        return replies[before:]

    def ask(self, user: int, text: str) -> dict:
        (reply,) = self.exchange(user, lambda: self.peer.private_message(user, text))
        return reply

    def upload(self, user: int, data: bytes, name: str, caption: str | None = None, **kw) -> dict:
        (reply,) = self.exchange(user, lambda: self.peer.upload_document(user, data, name, caption, **kw))
        return reply

    def press(self, user: int, msg: dict, label: str, timeout: float = 120.0) -> str:
        """Press a button under msg; returns the final text the message is edited to."""
        since = len(self.peer.calls)
        self.peer.callback(user, user, msg, buttons(msg)[label])
        done = self.peer.wait_for(
            lambda c: c["method"] == "editMessageText" and c["params"].get("message_id") == msg["message_id"]
            and c["params"].get("chat_id") == user
            and re.match(r"(✅|❌|已取消)", c["params"].get("text", "")), timeout, since=since)
        return done["params"]["text"]


def buttons(msg: dict) -> dict[str, str]:
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b.get("callback_data") for row in rows for b in row}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    var, docs = prepare_root(root)
    peer = BotApiPeer(TOKEN).start()
    settings = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=peer.url,
                       PLANBOT_ADMIN_IDS=f"{ADMIN},{OTHER_ADMIN}", PLANBOT_STATE_DB=str(root / "state.db"),
                       PLANBOT_VAR_DIR=str(var), PLANBOT_DOCS_DIR=str(docs),
                       PLANBOT_MAX_UNPACKED_MB=str(MAX_UNPACKED_MB))
    proc = BotProcess(peer, settings, root / "bot.log", root / "cwd")
    try:
        proc.start()
        yield Env(proc, var, docs)
    finally:
        code = proc.stop()
        peer.stop()
    assert code == 0, proc.log()[-3000:]
    assert TOKEN.split(":", 1)[1] not in proc.log()


# ----------------------------------------------------------------------------- refusals
def test_non_admin_upload_is_refused_without_download(env):
    before, since = env.snapshot(), len(env.peer.calls)
    reply = env.upload(STRANGER, uf.docx_with_table(), "plan.docx")
    assert "只对机器人管理员开放" in reply["text"] and "没有下载" in reply["text"]
    time.sleep(0.5)
    assert not [c for c in env.peer.calls[since:] if c["method"] in ("getFile", "downloadFile")]
    assert env.snapshot() == before
    assert f"refused a document upload from non-admin user {STRANGER}" in env.proc.log()


BIG = 25 * 2**20
BAD_FILES = [  # id, file name, bytes, caption, extra upload kwargs, words the reply must contain
    ("corrupt-pdf", "report.pdf", uf.corrupt_pdf(), None, {}, "PDF 已损坏"),
    ("encrypted-pdf", "secret.pdf", uf.encrypted_pdf(), None, {}, "加密"),
    ("scanned-pdf-no-text", "scan.pdf", uf.scanned_pdf(), None, {}, "没有文字层"),
    ("executable-renamed-pdf", "plan.pdf", uf.executable(), None, {}, "可执行程序"),
    ("empty-file", "empty.txt", b"", None, {}, "空的"),
    ("whitespace-only", "blank.md", b"  \n\n\t \n", None, {}, "空的"),
    ("unsupported-type", "photo.png", uf.png(), None, {}, "不支持 .png"),
    ("no-extension", "report", uf.pdf(), None, {}, "不支持 （无扩展名）"),
    ("docx-zip-bomb", "big.docx", uf.zip_bomb_docx(MAX_UNPACKED_MB + 1), None, {}, "解压后"),
    ("over-size-limit", "huge.pdf", uf.pdf(), None, {"file_size": BIG}, "超过上限 20 MB"),
    ("malformed-caption-date", "plan.docx", uf.docx_with_table(), "标题：测试 / 日期：2021-13-45", {}, "日期"),
    ("caption-javascript-link", "plan.docx", uf.docx_with_table(), "链接：javascript:alert(1)", {}, "不是 http"),
    ("binary-named-txt", "notes.txt", bytes(range(256)) * 8, None, {}, "二进制"),
    ("zip-named-docx", "archive.docx", uf.plain_zip(), None, {}, "ZIP 压缩包"),
    ("corrupt-docx", "broken.docx", uf.corrupt_docx(), None, {}, "Word 文件已损坏"),
    ("encrypted-docx", "locked.docx", uf.ole_file(), None, {}, "加密"),
    ("pdf-named-docx", "plan.docx", uf.pdf(), None, {}, "内容是PDF"),
    ("front-matter-only", "empty.md", "---\ntitle: 空文档\n---\n".encode(), None, {}, "没有可以检索的文字"),
    ("duplicate-of-held-file", "copy.txt",
     (Path(__file__).resolve().parents[1] / "data/docs/yantai-county-economy-2021.txt").read_bytes(), None, {},
     "已经收录过了，标题是《烟台激活县域经济一池春水"),
]


@pytest.mark.parametrize("name,data,caption,kw,words", [pytest.param(*c[1:], id=c[0]) for c in BAD_FILES])
def test_bad_file_gets_a_reply_naming_the_problem_and_changes_nothing(env, name, data, caption, kw, words):
    before, since = env.snapshot(), len(env.peer.calls)
    reply = env.upload(ADMIN, data, name, caption, **kw)
    assert reply["text"].startswith("❌ 不能收录"), reply["text"]
    assert words in reply["text"], reply["text"]
    assert NOTHING in reply["text"]
    assert not buttons(reply)
    assert env.snapshot() == before  # no file, no metadata, no leftovers, same index version
    if kw.get("file_size") == BIG:  # refused from the size Telegram reports: never downloaded
        assert not [c for c in env.peer.calls[since:] if c["method"] in ("getFile", "downloadFile")]


def test_two_admins_uploading_at_once(env):
    before = env.snapshot()
    n_admin, n_other = len(env.peer.sent(ADMIN)), len(env.peer.sent(OTHER_ADMIN))
    with env.peer.together():  # both files arrive in one getUpdates batch, handled concurrently
        env.peer.upload_document(ADMIN, uf.docx_with_table(), "ocean.docx")
        env.peer.upload_document(OTHER_ADMIN, uf.pdf(), "cold.pdf")
    (a,) = env.peer.wait_for_replies(ADMIN, n_admin + 1)[n_admin:]
    (b,) = env.peer.wait_for_replies(OTHER_ADMIN, n_other + 1)[n_other:]
    previews = [m for m in (a, b) if buttons(m)]
    busy = [m for m in (a, b) if not buttons(m)]
    assert len(previews) == 1 and len(busy) == 1, (a["text"], b["text"])
    (preview,), (busy,) = previews, busy
    owner = preview["chat_id"]
    assert set(buttons(preview)) == {"确认收录", "取消"}
    assert busy["text"].startswith("❌ 不能收录") and "另一个文档操作正在进行" in busy["text"], busy["text"]
    assert NOTHING in busy["text"]
    # the other admin cannot press the first admin's button either
    other = OTHER_ADMIN if owner == ADMIN else ADMIN
    upd = env.peer.callback(other, owner, preview, buttons(preview)["确认收录"])
    ack = env.peer.wait_for(lambda c: c["method"] == "answerCallbackQuery"
                            and str(c["params"].get("callback_query_id")) == upd["callback_query"]["id"], 15)
    assert "失效" in ack["params"]["text"]
    assert env.press(owner, preview, "取消").startswith("已取消")
    assert env.snapshot() == before
    # and the cancelled button is dead
    upd = env.peer.callback(owner, owner, preview, buttons(preview)["确认收录"])
    ack = env.peer.wait_for(lambda c: c["method"] == "answerCallbackQuery"
                            and str(c["params"].get("callback_query_id")) == upd["callback_query"]["id"], 15)
    assert "失效" in ack["params"]["text"]
    assert env.snapshot() == before


def test_upload_during_a_running_reindex(env):
    filler = "\n\n".join(f"第{i}段：这是一段用于测试重建期间上传的填充文字，讲的是园艺和做饭，编号{i}。" for i in range(1, 41))
    (env.docs / "zz-filler.md").write_text(f"---\ntitle: 测试填充文档\ndate: 2021-06\n---\n{filler}\n", encoding="utf-8")
    listing = env.doc_listing()
    since = len(env.peer.calls)
    (status,) = env.exchange(ADMIN, lambda: env.peer.private_message(ADMIN, "/reindex"))
    assert status["text"] == "开始重建索引…"
    busy = env.upload(OTHER_ADMIN, uf.pdf(), "cold.pdf")
    summary = env.peer.wait_for(lambda c: c["method"] == "editMessageText"
                                and re.match(r"重建(完成|失败)", c["params"].get("text", "")), 90, since=since)
    assert summary["params"]["text"].startswith("重建完成"), summary["params"]["text"]
    assert "正在重建索引" in busy["text"] and NOTHING in busy["text"], busy["text"]
    assert env.doc_listing() == listing  # the upload stored nothing


# ----------------------------------------------------------------------------- acceptance
def _subscribe(env: Env) -> None:
    env.peer.set_chat_admins(G_SUB, [3100])
    (ok,) = env.exchange(G_SUB, lambda: env.peer.group_message(G_SUB, 3100, "/subscribe"))
    assert ok["text"] == "已订阅方案公告。"


def _assert_cites(msg: dict, title: str, date: str) -> None:
    assert msg["parse_mode"] == "HTML" and msg["text"].startswith("<b>答：</b>"), msg["text"]
    first = msg["text"].split("\n\n")[1]
    assert first.startswith(f"<b>[1]</b> {title}（{date}） · "), first


STORED: dict[str, str] = {}  # title -> doc id, for the /remove test


def test_admin_uploads_a_docx_and_a_pdf_and_questions_cite_them(env):
    _subscribe(env)
    version0 = env.version()
    sub_before = len(env.peer.sent(G_SUB))
    # a docx with a table: title and date from its core properties
    preview = env.upload(ADMIN, uf.docx_with_table(), "ocean-ranching.docx")
    text = preview["text"]
    assert text.startswith("<b>待收录文档预览</b>（ocean-ranching.docx）") and preview["parse_mode"] == "HTML"
    assert f"标题：{uf.DOCX_TITLE}" in text and f"日期：{uf.DOCX_DATE}" in text
    assert re.search(r"字数：\d+", text) and "截至目前，烟台已建成国家级海洋牧场示范区22处" in text
    assert list(buttons(preview)) == ["确认收录", "取消"]
    done = env.press(ADMIN, preview, "确认收录")
    assert done.startswith(f"✅ 已收录《{uf.DOCX_TITLE}》（{uf.DOCX_DATE}）"), done
    m = re.search(r"id：(\S+)，(\d+) 段", done)
    assert m and int(m.group(2)) > 0, done
    STORED[uf.DOCX_TITLE] = m.group(1)
    assert env.version() != version0
    example = re.search(r"现在可以问，例如：(.+)", done)
    assert example, done
    _assert_cites(env.ask(USER_A, example.group(1)), uf.DOCX_TITLE, uf.DOCX_DATE)
    # the subscribed group hears about it
    (news,) = env.peer.wait_for_replies(G_SUB, sub_before + 1)[sub_before:]
    assert news["text"] == f"📢 文档库新增：《{uf.DOCX_TITLE}》（{uf.DOCX_DATE}）"

    # a 2-page pdf: metadata from the caption, link checked
    caption = f"标题：{uf.PDF_TITLE}\n日期：{uf.PDF_DATE}\n来源：烟台市发展和改革委员会\n链接：https://example.org/cold-chain"
    preview = env.upload(ADMIN, uf.pdf(), "cold-chain.pdf", caption)
    text = preview["text"]
    assert f"标题：{uf.PDF_TITLE}" in text and f"日期：{uf.PDF_DATE}" in text and "页数：2" in text, text
    assert "来源：烟台市发展和改革委员会" in text and "链接：https://example.org/cold-chain" in text
    done = env.press(ADMIN, preview, "确认收录")
    assert done.startswith(f"✅ 已收录《{uf.PDF_TITLE}》（{uf.PDF_DATE}）"), done
    STORED[uf.PDF_TITLE] = re.search(r"id：(\S+)，", done).group(1)
    (news,) = env.peer.wait_for_replies(G_SUB, sub_before + 2)[sub_before + 1:]
    assert news["text"] == f"📢 文档库新增：《{uf.PDF_TITLE}》（{uf.PDF_DATE}）"

    # questions about each are answered citing it with its title and date
    ocean = env.ask(USER_A, uf.DOCX_QUESTION)
    _assert_cites(ocean, uf.DOCX_TITLE, uf.DOCX_DATE)
    assert "22处" in ocean["text"]
    cold = env.ask(USER_A, uf.PDF_QUESTION)
    _assert_cites(cold, uf.PDF_TITLE, uf.PDF_DATE)
    assert "35 new cold storage warehouses" in cold["text"] and 'href="https://example.org/cold-chain"' in cold["text"]
    # the article still answers
    assert "<b>答：</b>" in env.ask(USER_A, ARTICLE_Q)["text"]

    # stored atomically: file + .meta.json, nothing half-written left behind
    for title, doc_id in STORED.items():
        (doc,) = [p for p in env.docs.iterdir() if p.stem == doc_id and ".meta." not in p.name]
        meta = json.loads((env.docs / f"{doc_id}.meta.json").read_text(encoding="utf-8"))
        assert meta["title"] == title and meta["added_by"].endswith(f"({ADMIN})") and len(meta["sha256"]) == 64
    assert not [p for p in env.docs.iterdir() if p.name.startswith(".")]
    assert not list((env.var / "incoming").iterdir())

    # the same file again is recognised, under its title
    again = env.upload(OTHER_ADMIN, uf.docx_with_table(), "renamed-copy.docx")
    assert f"已经收录过了，标题是《{uf.DOCX_TITLE}》" in again["text"] and NOTHING in again["text"]


USER_A = 5001


def test_docs_lists_id_title_date_passages_and_who_added(env):
    msg = env.ask(ADMIN, "/docs")
    text = msg["text"]
    assert msg["parse_mode"] == "HTML" and text.startswith("<b>文档库：4 个文档</b>"), text
    docx_id = STORED[uf.DOCX_TITLE]
    assert re.search(rf"<code>{docx_id}</code>\n《{uf.DOCX_TITLE}》 · {uf.DOCX_DATE} · [1-9]\d* 段 · 添加：U \({ADMIN}\)",
                     text), text
    assert re.search(r"<code>yantai-county-economy-2021</code>\n《烟台激活县域经济.*》 · 2021-05 · \d+ 段 · 添加：预置", text)
    assert env.ask(STRANGER, "/docs")["text"] == "这个命令只对机器人管理员开放。"


def test_remove_archives_the_document_and_it_is_no_longer_cited(env):
    docx_id = STORED[uf.DOCX_TITLE]
    assert env.ask(STRANGER, f"/remove {docx_id}")["text"] == "这个命令只对机器人管理员开放。"
    unknown = env.ask(ADMIN, "/remove no-such-doc")
    assert "没有 id 为 no-such-doc 的文档" in unknown["text"] and NOTHING in unknown["text"]
    version0 = env.version()
    preview = env.ask(ADMIN, f"/remove {docx_id}")
    assert f"移除《{uf.DOCX_TITLE}》" in preview["text"] and "归档" in preview["text"]
    assert list(buttons(preview)) == ["确认移除", "取消"]
    done = env.press(ADMIN, preview, "确认移除")
    assert done.startswith(f"✅ 已移除《{uf.DOCX_TITLE}》"), done
    assert env.version() != version0
    # recoverable: file and metadata are in the archive under var/, gone from the documents
    archived = sorted((env.var / "archive").glob(f"*-{docx_id}"))
    assert len(archived) == 1 and f"归档到：{archived[0]}" in done
    assert sorted(p.name for p in archived[0].iterdir()) == [f"{docx_id}.docx", f"{docx_id}.meta.json"]
    assert not [p for p in env.docs.iterdir() if p.name.startswith(docx_id)]
    # its facts are no longer cited
    reply = env.ask(USER_A + 1, uf.DOCX_QUESTION)
    assert uf.DOCX_TITLE not in reply["text"] and "22处" not in reply["text"], reply["text"]
    assert uf.DOCX_TITLE not in env.ask(ADMIN, "/docs")["text"]
    # the other upload still answers
    _assert_cites(env.ask(USER_A + 1, uf.PDF_QUESTION), uf.PDF_TITLE, uf.PDF_DATE)


def test_meta_json_javascript_link_is_dropped_and_the_answer_still_arrives(env):
    (env.docs / "hostile.txt").write_text(
        "葡萄酒产业：烟台蓬莱产区共有葡萄酒庄72家，酿酒葡萄种植面积达到20万亩。", encoding="utf-8")
    (env.docs / "hostile.meta.json").write_text(json.dumps(
        {"title": "葡萄酒庄简报", "date": "2022-09", "url": "javascript:alert(document.cookie)"}), encoding="utf-8")
    (status,) = env.exchange(ADMIN, lambda: env.peer.private_message(ADMIN, "/reindex"))
    env.peer.wait_for(lambda c: c["method"] == "editMessageText" and c["params"].get("message_id") == status["message_id"]
                      and c["params"].get("text", "").startswith("重建完成"), 90)
    reply = env.ask(USER_A + 2, "烟台有多少家葡萄酒庄")
    assert reply["text"].startswith("<b>答：</b>") and "葡萄酒庄简报（2022-09）" in reply["text"], reply["text"]
    assert "javascript" not in reply["text"].lower()
    assert "dropping link 'javascript:alert(document.cookie)' of hostile.txt" in env.proc.log()


def test_rejected_html_is_resent_as_plain_text(env):
    """Telegram answering 400 "can't parse entities" to an answer's HTML: the answer still
    arrives, as plain text with the link spelled out."""
    since = len(env.peer.calls)
    env.peer.inject("sendMessage", "badhtml", match=lambda p: p.get("chat_id") == USER_A + 3)
    reply = env.ask(USER_A + 3, ARTICLE_Q)
    assert [c.get("fault") for c in env.peer.calls[since:] if c["method"] == "sendMessage"
            and c["params"].get("chat_id") == USER_A + 3] == ["badhtml", None]
    assert "parse_mode" not in reply and reply["text"].startswith("答：") and "<b>" not in reply["text"]
    assert "[1] 烟台激活县域经济一池春水" in reply["text"] and "来源 https://guanhai.com.cn/cmdetail/104546" in reply["text"]
    assert "resending it as plain text" in env.proc.log()


def test_every_html_message_is_valid_and_no_errors_logged(env):
    from telegram_html import problems

    html_msgs = [m for m in env.peer.sent() if m.get("parse_mode") == "HTML"]
    assert len(html_msgs) > 10
    assert not {m["text"][:80]: problems(m["text"]) for m in html_msgs if problems(m["text"])}
    log = env.proc.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]
