"""Hostile and odd input, table-driven. For every case: no exception reaches the error handler,
the outcome is the reply (or deliberate silence) the table names, every sent text is valid
Telegram HTML within 4096 characters, and afterwards the shared state DB still works."""
from __future__ import annotations

import time

import pytest

from bot.handlers import HELP, NON_TEXT
from fake_request import ADMIN_ID, BOT_ID, BOT_USER, BOT_USERNAME, make_bot  # noqa: F401
from telegram_html import problems

GROUP = -100700
Q = "莱山的主导产业是什么？"
ME = f"@{BOT_USERNAME}"
NOW = int(time.time())
STICKER = {"file_id": "s1", "file_unique_id": "su1", "type": "regular", "width": 512, "height": 512,
           "is_animated": False, "is_video": False}
PHOTO = [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]
FILE = {"file_id": "d1", "file_unique_id": "du1"}
FORWARD_USER = {"type": "user", "date": NOW, "sender_user": {"id": 9, "is_bot": False, "first_name": "x"}}
FORWARD_CHANNEL = {"type": "channel", "date": NOW, "message_id": 3,
                   "chat": {"id": -1009, "type": "channel", "title": "烟台发布"}}
BOT_MESSAGE = {"message_id": 1, "date": NOW, "chat": {"id": GROUP, "type": "supergroup", "title": "g"},
               "from": BOT_USER, "text": "答：…"}


def P(text, **extra):  # private message
    return ("msg", text, None, False, extra)


def G(text, **extra):  # group message
    return ("msg", text, GROUP, False, extra)


def E(text, chat=None):  # edited message
    return ("msg", text, chat, True, {})


def CB(data, uid=1001):  # button press
    return ("cb", data, uid)


def RAW(update):
    return ("raw", update)


BUG_BIG_ID = ()

CASES = [
    # -- blank and invisible ---------------------------------------------------------------
    ("spaces", P("   "), "usage"), ("tab-newline", P("\t\n \r\n"), "usage"), ("ideographic-space", P("\u3000\u3000"), "usage"),
    ("zero-width-space", P("\u200b"), "refuse"), ("zwj-zwnj-bom", P("\u200d\u200c\ufeff"), "refuse"),
    ("nul", P("\x00"), "refuse"), ("control-chars", P("\x01\x02\x07\x7f"), "refuse"),
    ("rtl-marks-only", P("\u200f\u200e\u202b\u202c"), "refuse"),
    # -- length --------------------------------------------------------------------------------
    ("20000-chars", P("莱" * 20000), "too_long"), ("501-chars", P("x" * 501), "too_long"),
    ("500-chars", P("莱山" * 250), "qa"), ("long-latin-word", P("a" * 400), "qa"),
    ("long-word-repeated", P("Pneumonoultramicroscopicsilicovolcanoconiosis" * 9), "qa"),
    # -- symbols only ------------------------------------------------------------------------
    ("emoji-only", P("😀🎉🚀"), "refuse"), ("emoji-zwj-skin", P("👨‍👩‍👧👍🏽"), "refuse"),
    ("cjk-punctuation", P("？？！！。。、"), "refuse"), ("ascii-punctuation", P("!!!???...,,,;;"), "refuse"),
    ("markdownv2-specials", P("*_[]()~`>#+-=|{}.!"), "qa"), ("markdown-wrapped", P("*莱山*的_主导_产业~是`什么`"), "qa"),
    # -- control and invisible inside a real question -----------------------------------
    ("zero-width-inside", P("莱\u200b山\u200d的主导\ufeff产业是什么"), "qa"), ("nul-inside", P("莱山\x00的主导产业"), "qa"),
    ("ansi-escape", P("\x1b[31m莱山\x1b[0m的主导产业"), "qa"), ("rtl-override", P("\u202e莱山的主导产业是什么\u202c"), "qa"),
    ("lone-surrogate-ish", P("莱山\ufffd\ufffd的产业"), "qa"),
    # -- HTML injection ----------------------------------------------------------------------
    ("html-bold", P("<b>莱山</b>的主导产业是什么"), "answer"), ("html-close-a", P("</a>"), "qa"),
    ("html-script", P("<script>alert(1)</script>"), "qa"), ("html-amp", P("& &amp; &lt; &#x27; &nbsp;"), "qa"),
    ("html-link", P('<a href="javascript:alert(1)">莱山</a>的产业'), "qa"),
    ("html-unclosed", P("莱山<i>的<b>主导产业"), "answer"), ("html-comment", P("<!-- x -->莱山<![CDATA[x]]>"), "qa"),
    ("html-entities-place", P("&#x83B1;&#x5C71;的主导产业"), "qa"),
    # -- SQL, URLs, numbers --------------------------------------------------------------
    ("sql-drop", P("'; DROP TABLE questions;--"), "qa"), ("sql-or", P("1' OR '1'='1"), "qa"),
    ("sql-in-question", P("莱山'); DELETE FROM feedback; --的产业"), "qa"),
    ("url", P("https://example.com/?a=1&b=<2>"), "qa"), ("numbers-only", P("12345"), "qa"),
    ("decimal", P("3.1415926"), "qa"), ("phone", P("+86 535 1234 5678"), "qa"),
    # -- languages, scripts, typos ---------------------------------------------------------
    ("japanese", P("莱山の主導産業は何ですか"), "qa"), ("korean", P("라이산의 주요 산업은 무엇입니까?"), "qa"),
    ("russian", P("Какая главная отрасль в Лайшане?"), "qa"), ("traditional", P("萊山的主導產業是什麽"), "qa"),
    ("traditional-typos", P("萊山的主道産葉是甚麼"), "qa"), ("english", P("Which district is building a sea launch port?"), "qa"),
    ("mixed-scripts", P("莱山 main industry 是什么 какая?"), "qa"), ("arabic", P("ما هي الصناعة الرئيسية في لايشان؟"), "qa"),
    ("fullwidth", P("２０２３年ＧＤＰ过千亿的区市有几个？"), "qa"), ("pinyin", P("laishan de zhudao chanye"), "qa"),
    ("unknown-place", P("莱州的主导产业是什么"), "refuse"),
    # -- commands ------------------------------------------------------------------------
    ("ask-empty", P("/ask"), "usage"), ("ask-spaces", P("/ask    "), "usage"), ("ask-html", P("/ask <b>莱山</b>的产业"), "qa"),
    ("ask-upper", P(f"/ASK {Q}"), "answer"), ("ask-me", P(f"/ask@{BOT_USERNAME} {Q}"), "answer"),
    ("ask-other-bot-private", P(f"/ask@OtherBot {Q}"), "help"), ("unknown-command", P("/foo"), "help"),
    ("unknown-command-args", P("/foo <b>&"), "help"), ("start", P("/start"), "help"),
    ("sources", P("/sources"), "sources"), ("stats-non-admin", P("/stats"), "admin_only"),
    ("reindex-non-admin", P("/reindex"), "admin_only"), ("announce-non-admin", P("/announce <b>x</b>"), "admin_only"),
    ("announce-admin-empty", ("msg", "/announce", None, False, {"uid": ADMIN_ID}), "announce_usage"),
    ("subscribe-private", P("/subscribe"), "group_only"),
    # -- edited and forwarded ----------------------------------------------------------------
    ("edited-question", E(Q), "silent"), ("edited-stats", E("/stats"), "admin_only"), ("edited-group-mention", E(f"{ME} {Q}", GROUP), "silent"),
    ("forwarded-from-user", P(Q, forward_origin=FORWARD_USER), "answer"),
    ("forwarded-from-channel", P("<b>公告</b> & 通知", forward_origin=FORWARD_CHANNEL), "qa"),
    # -- not text ------------------------------------------------------------------------
    ("sticker", P(None, sticker=STICKER), "non_text"), ("photo", P(None, photo=PHOTO), "non_text"),
    ("photo-caption", P(None, photo=PHOTO, caption=Q), "non_text"),
    ("voice", P(None, voice={**FILE, "duration": 3}), "non_text"), ("document", P(None, document=FILE), "non_text"),
    ("location", P(None, location={"latitude": 37.46, "longitude": 121.44}), "non_text"),
    ("dice", P(None, dice={"emoji": "🎲", "value": 4}), "non_text"),
    # -- groups --------------------------------------------------------------------------
    ("group-chatter", G(Q), "silent"), ("group-blank", G("   "), "silent"), ("group-sticker", G(None, sticker=STICKER), "silent"),
    ("group-mention-only", G(ME), "usage"), ("group-mention-emoji", G(f"{ME} 😀"), "refuse"),
    ("group-mention-upper", G(f"@{BOT_USERNAME.upper()} {Q}"), "answer"),
    ("group-mention-after-emoji", G(f"👨‍👩‍👧 {ME} {Q}"), "answer"), ("group-mention-html", G(f"{ME} <script>x</script>&"), "qa"),
    ("group-mention-long", G(f"{ME} " + "长" * 20000), "too_long"), ("group-other-mention", G(f"@{BOT_USERNAME}_fake {Q}"), "silent"),
    ("group-email-like", G(f"mail a@{BOT_USERNAME}.com {Q}"), "silent"), ("group-reply-to-bot", G(Q, reply_to_message=BOT_MESSAGE), "answer"),
    ("group-ask-empty", G("/ask"), "usage"), ("group-ask-other-bot", G(f"/ask@OtherBot {Q}"), "silent"),
    ("group-unknown-command", G("/foo"), "silent"), ("group-stats", G("/stats"), "admin_only"),
    ("group-subscribe-non-admin", G("/subscribe"), "chat_admin_only"),
    # -- buttons ------------------------------------------------------------------------
    ("cb-more-stale", CB("more:999999"), "notice"), ("cb-fb-abc", CB("fb:abc"), "notice"), ("cb-xyz", CB("xyz"), "notice"),
    ("cb-empty", CB(""), "notice"), ("cb-none", CB(None), "notice"), ("cb-many-colons", CB("full:888888:2:3"), "notice"),
    ("cb-fb-negative", CB("fb:-1:1"), "notice"), ("cb-long", CB("a" * 64), "notice"), ("cb-html", CB("<b>:&"), "notice"),
    pytest.param(CB("more:99999999999999999999"), "notice", id="cb-huge-id", marks=BUG_BIG_ID),
    ("cb-forged-announce", CB("announce:0:0123456789ab"), "admin_only_button"),
    ("cb-announce-admin-stale", CB("announce:0:nothing", uid=ADMIN_ID), "announce_stale"),
    # -- other update kinds ---------------------------------------------------------------
    ("bot-kicked-from-group", RAW({"my_chat_member": {
        "chat": {"id": GROUP, "type": "supergroup", "title": "<b>群</b>"}, "from": {"id": 5, "is_bot": False, "first_name": "a"},
        "date": NOW, "old_chat_member": {"status": "member", "user": BOT_USER},
        "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0}}}), "silent"),
    ("channel-post", RAW({"channel_post": {"message_id": 1, "date": NOW, "text": Q,
                                           "chat": {"id": -1009, "type": "channel", "title": "c"}}}), "silent"),
    ("inline-query", RAW({"inline_query": {"id": "iq", "from": {"id": 5, "is_bot": False, "first_name": "a"},
                                           "query": Q, "offset": ""}}), "silent"),
]
PARAMS = [c if hasattr(c, "marks") else pytest.param(*c[1:], id=c[0]) for c in CASES]
LOGGED: list[str] = []  # cases whose question went through the engine and into the state DB


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    return tmp_path_factory.mktemp("bad_input") / "state.db"


def check_outcome(expect: str, calls, chat_id: int) -> None:
    sends = [c for c in calls if c.method == "sendMessage"]
    texts = [c.text for c in sends]
    notices = [c.params.get("text", "") for c in calls if c.method == "answerCallbackQuery"]
    assert all(c.params["chat_id"] == chat_id for c in sends)
    if expect == "silent":
        assert calls == []
    elif expect == "notice":
        assert len(notices) == 1 and "失效" in notices[0] and not sends
    elif expect in ("qa", "answer", "refuse"):
        assert sends and all(c.params["parse_mode"] == "HTML" for c in sends)
        answered, refused = texts[0].startswith("<b>答：</b>"), texts[0].startswith("抱歉，文档里找不到这个问题的答案。")
        assert {"qa": answered or refused, "answer": answered, "refuse": refused}[expect], texts[0][:200]
    else:
        wanted = {"usage": "/ask 莱山的主导产业是什么", "too_long": "问题太长了", "help": HELP, "non_text": NON_TEXT,
                  "sources": "已收录的文档", "admin_only": "只对机器人管理员开放", "admin_only_button": "只有机器人管理员可以这样做", "group_only": "请在群里使用",
                  "chat_admin_only": "只有群管理员", "announce_usage": "用法：/announce",
                  "announce_stale": "已处理或已失效"}[expect]
        shown = texts + notices
        assert len(shown) == 1 and wanted in shown[0], shown


@pytest.mark.parametrize("update,expect", PARAMS)
async def test_bad_input(make_bot, shared_db, update, expect):
    bot = await make_bot(state_db=shared_db)
    before = bot.state.stats()["questions"]
    if update[0] == "msg":
        _, text, chat_id, edited, extra = update
        extra = dict(extra)
        uid = extra.pop("uid", 1001)
        calls = await bot.send(text, uid=uid, chat_id=chat_id, edited=edited, **extra)
        chat_id = chat_id or uid
    elif update[0] == "cb":
        calls, chat_id = await bot.press(update[1], uid=update[2]), update[2]
    else:
        before_calls = len(bot.request.calls)
        await bot.feed(update[1])
        calls, chat_id = bot.request.calls[before_calls:], None
    assert bot.errors == [], f"error handler saw {bot.errors!r}"
    for c in calls:
        if c.method in ("sendMessage", "editMessageText"):
            assert 0 < len(c.text) <= 4096
            if c.params.get("parse_mode") == "HTML":
                assert problems(c.text) == [], c.text[:300]
    check_outcome(expect, calls, chat_id)
    if expect in ("qa", "answer", "refuse"):
        LOGGED.append(expect)
    assert bot.state.stats()["questions"] == before + (expect in ("qa", "answer", "refuse"))


async def test_nothing_lost_after_bad_input(make_bot, shared_db):
    """The shared state DB kept every logged question and still serves answers and buttons."""
    assert len(PARAMS) >= 60
    bot = await make_bot(state_db=shared_db)
    assert bot.state.stats()["questions"] == len(LOGGED)
    calls = await bot.send(Q, uid=3003)
    assert calls[-1].text.startswith("<b>答：</b>") and not bot.errors
    answer_id = bot.state.stats()["questions"]
    await bot.press(f"fb:{answer_id}:1", uid=3003)
    assert bot.state.stats()["thumbs_up"] == 1
    assert bot.state.answer_payload(answer_id)["question"] == Q
