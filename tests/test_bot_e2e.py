"""End-to-end tests of the Telegram bot: `python -m bot` runs as a separate process and
talks real HTTP to the fake Bot API peer; we assert on what users would receive.

One bot process (module scope) serves almost every test; tests run in file order and use
their own users and chats, comparing /stats deltas rather than absolute counters.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import botapi_peer
from botapi_peer import BotApiPeer
from botproc import bot_env

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
DOCS = REPO / "data" / "docs"
MODELS = REPO / "var" / "models"
ARTICLE_URL = "https://guanhai.com.cn/cmdetail/104546"
TOKEN = "987654321:AAH-planbotE2eSecretToken_x9"
BOT_USERNAME = "planbot_test_bot"
ADMIN = 42            # PLANBOT_ADMIN_IDS
OTHER_ADMIN = 44      # also a bot admin
USER = 1001           # ordinary user in private chat
STRANGER = 1002       # non-admin trying admin commands
G_QA = -1001          # group for questions
G_SUB = -1002         # group that subscribes to announcements
G_EVT = -1003         # group for join/leave events
QUESTION = "莱山的主导产业是什么"

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------- helpers
def _model_cache() -> Path:
    from index.e5model import MODEL_NAME, materialise

    if not (MODELS / MODEL_NAME / "planbot-source.json").exists():
        materialise(MODELS)
    return MODELS


class _BacklogServer(botapi_peer.ThreadingHTTPServer):
    request_queue_size = 128


class Peer(BotApiPeer):
    """The peer with a real listen backlog: BotApiPeer's ThreadingHTTPServer keeps the default
    backlog of 5, and with syncookies Linux resets the surplus connections, so ~20 concurrent
    bot requests (the reindex + 20 questions test) randomly fail with httpx.ReadError."""

    def start(self) -> "Peer":
        original = botapi_peer.ThreadingHTTPServer
        botapi_peer.ThreadingHTTPServer = _BacklogServer
        try:
            return super().start()
        finally:
            botapi_peer.ThreadingHTTPServer = original


class Bot:
    """The running bot process, its peer and its directories."""

    def __init__(self, peer: BotApiPeer, proc: subprocess.Popen, log: Path, var: Path,
                 docs: Path, workdir: Path):
        self.peer, self.proc, self.log_path, self.var, self.docs, self.workdir = (
            peer, proc, log, var, docs, workdir)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- scripting ---------------------------------------------------------------------
    def exchange(self, chat_id: int, push, n: int = 1, timeout: float = 30.0) -> list[dict]:
        """Run `push()` (which queues an update) and return the next n messages to chat_id."""
        before = len(self.peer.sent(chat_id))
        update = push()
        try:
            replies = self.peer.wait_for_replies(chat_id, before + n, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"no reply to {update}\nbot log tail:\n{self.log()[-3000:]}") from exc
        return replies[before:]

    def private(self, user_id: int, text: str, n: int = 1, timeout: float = 30.0) -> list[dict]:
        return self.exchange(user_id, lambda: self.peer.private_message(user_id, text), n, timeout)

    def ask(self, user_id: int, text: str) -> dict:
        (reply,) = self.private(user_id, text)
        return reply

    def callback_answer(self, update: dict, timeout: float = 15.0) -> dict:
        cid = update["callback_query"]["id"]
        return self.peer.wait_for(lambda c: c["method"] == "answerCallbackQuery"
                                  and str(c["params"].get("callback_query_id")) == cid, timeout)

    def stats(self) -> dict:
        text = self.ask(ADMIN, "/stats")["text"]
        m = re.search(r"提问 (\d+)，拒答 (\d+)，👍 (\d+) / 👎 (\d+)\n群 (\d+)，订阅 (\d+)\n"
                      r"索引版本 (\S+)（(\d+) 段", text)
        assert m, text
        keys = ("questions", "refusals", "up", "down", "groups", "subscribers")
        return {**dict(zip(keys, map(int, m.groups()[:6]))), "version": m.group(7),
                "passages": int(m.group(8))}

    def stats_until(self, pred, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if pred(s) or time.monotonic() > deadline:
                return s
            time.sleep(0.2)

    def reindex(self, timeout: float = 90.0) -> tuple[dict, str]:
        """Admin /reindex; returns (the status message, its final edited text)."""
        since = len(self.peer.calls)
        (status,) = self.private(ADMIN, "/reindex")
        assert status["text"] == "开始重建索引…"
        final = self.peer.wait_for(
            lambda c: c["method"] == "editMessageText" and c["params"].get("chat_id") == ADMIN
            and c["params"].get("message_id") == status["message_id"]
            and re.match(r"重建(完成|失败)", c["params"].get("text", "")), timeout, since=since)
        return status, final["params"]["text"]


def _buttons(msg: dict) -> dict[str, str]:
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b.get("callback_data") for row in rows for b in row}


def _reply_to(msg: dict) -> int | None:
    rp = msg.get("reply_parameters")
    if isinstance(rp, dict):
        return rp.get("message_id")
    return msg.get("reply_to_message_id")


def _assert_answer(msg: dict) -> None:
    assert msg.get("parse_mode") == "HTML", msg
    assert msg["text"].startswith("<b>答：</b>"), msg["text"]
    assert "<b>[1]</b>" in msg["text"], msg["text"]
    assert f'<a href="{ARTICLE_URL}">来源</a>' in msg["text"], msg["text"]


# ----------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    root = tmp_path_factory.mktemp("bot")
    var, docs, workdir = root / "var", root / "docs", root / "cwd"
    var.mkdir()
    workdir.mkdir()  # no .env here: the environment below is the whole configuration
    (var / "models").symlink_to(_model_cache().resolve(), target_is_directory=True)
    shutil.copytree(DOCS, docs)
    for p in docs.iterdir():
        p.chmod(0o644)
    log_path = root / "bot.log"
    peer = Peer(TOKEN, bot_username=BOT_USERNAME).start()
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=peer.url,
                    PLANBOT_ADMIN_IDS=f"{ADMIN}, {OTHER_ADMIN}", PLANBOT_STATE_DB=str(root / "state.db"),
                    PLANBOT_VAR_DIR=str(var), PLANBOT_DOCS_DIR=str(docs))
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([str(PY), "-m", "bot"], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    b = Bot(peer, proc, log_path, var, docs, workdir)
    try:
        deadline = time.monotonic() + 120
        while "planbot ready" not in b.log():
            assert proc.poll() is None, f"bot exited {proc.returncode}:\n{b.log()[-3000:]}"
            assert time.monotonic() < deadline, f"bot not ready:\n{b.log()[-3000:]}"
            time.sleep(0.2)
        peer.wait_for(lambda c: c["method"] == "getUpdates", timeout=30)
        yield b
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        peer.stop()
    # Teardown checks (run after the module's tests): clean SIGTERM exit, no token in logs.
    log = b.log()
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{log[-3000:]}"
    assert TOKEN not in log
    assert TOKEN.split(":", 1)[1] not in log


# ----------------------------------------------------------------------------- start-up
def test_startup_builds_index_and_registers_menus(bot):
    log = bot.log()
    assert re.search(rf"planbot ready as @{BOT_USERNAME}: index \S+, [1-9]\d* passages", log), log
    assert (bot.var / "index" / "CURRENT").exists()
    public = [c["command"] for c in bot.peer.commands()]
    assert public == ["ask", "sources", "help"]
    group = [c["command"] for c in bot.peer.commands({"type": "all_group_chats"})]
    assert {"subscribe", "unsubscribe"} <= set(group)
    admin = [c["command"] for c in bot.peer.commands({"type": "chat", "chat_id": ADMIN})]
    assert {"reindex", "announce", "stats"} <= set(admin)


# ----------------------------------------------------------------------------- 1. private chat
def test_private_question_gets_cited_html_answer_with_buttons(bot):
    since = len(bot.peer.calls)
    msg = bot.ask(USER, QUESTION)
    _assert_answer(msg)
    assert msg.get("disable_web_page_preview") is True or msg.get("link_preview_options") \
        == {"is_disabled": True}, msg
    assert list(_buttons(msg)) == ["更多来源", "完整段落", "👍", "👎"]
    calls = [c for c in bot.peer.calls[since:] if c["params"].get("chat_id") == USER]
    assert [c["method"] for c in calls] == ["sendMessage"]  # a fast answer: one request, no typing action
    assert _reply_to(msg) is None  # private replies are not quoted


def test_thumbs_up_is_acknowledged_and_counted(bot):
    before = bot.stats()
    msg = bot.ask(USER, QUESTION)
    _assert_answer(msg)
    upd = bot.peer.callback(USER, USER, msg, _buttons(msg)["👍"])
    ack = bot.callback_answer(upd)
    assert ack["params"].get("text") == "谢谢反馈！"
    after = bot.stats_until(lambda s: s["up"] == before["up"] + 1)
    assert after["up"] == before["up"] + 1
    assert after["down"] == before["down"]
    assert after["questions"] == before["questions"] + 1


def test_full_passage_button_sends_the_passage(bot):
    msg = bot.ask(USER, QUESTION)
    upd = bot.peer.callback(USER, USER, msg, _buttons(msg)["完整段落"])
    (full,) = bot.exchange(USER, lambda: upd)
    bot.callback_answer(upd)
    assert full["parse_mode"] == "HTML"
    assert full["text"].startswith("<b>[1]</b> 烟台激活县域经济一池春水"), full["text"]
    assert ARTICLE_URL in full["text"]
    assert _reply_to(full) == msg["message_id"]
    # the full passage is the first citation, untruncated
    first_block = msg["text"].split("\n\n")[1]
    assert first_block.split("\n")[0] in full["text"]


def test_follow_up_question_is_about_the_new_district(bot):
    user = USER + 100
    _assert_answer(bot.ask(user, QUESTION))
    follow = bot.ask(user, "那牟平呢?")
    _assert_answer(follow)
    assert "牟平" in follow["text"]
    answer_line = follow["text"].split("\n\n")[0]
    assert "牟平" in answer_line, answer_line


def test_uncovered_district_is_refused_plainly_with_covered_list(bot):
    msg = bot.ask(USER, "莱州的主导产业是什么")
    assert msg["text"].startswith("抱歉，文档里找不到这个问题的答案。"), msg["text"]
    assert "莱州" in msg["text"]
    assert "芝罘" in msg["text"] and "莱山" in msg["text"]
    assert "<a href" not in msg["text"] and "[1]" not in msg["text"]
    assert not _buttons(msg)


@pytest.mark.parametrize("command", ["/start", "/help"])
def test_start_and_help_in_chinese_with_examples(bot, command):
    text = bot.ask(USER, command)["text"]
    assert "planbot" in text and "例如" in text
    assert "莱山的主导产业是什么" in text and "/ask" in text


def test_sources_lists_the_article(bot):
    msg = bot.ask(USER, "/sources")
    assert msg["parse_mode"] == "HTML"
    assert "烟台激活县域经济一池春水" in msg["text"] and "2021-05" in msg["text"]


@pytest.mark.parametrize("kind", ["photo_message", "sticker_message"])
def test_non_text_gets_a_short_explanation(bot, kind):
    (msg,) = bot.exchange(USER, lambda: getattr(bot.peer, kind)(USER))
    assert "文字" in msg["text"] and len(msg["text"]) < 100


# ----------------------------------------------------------------------------- 2. groups
def _group_ask(bot: Bot, chat: int, user: int, text: str, **kw) -> tuple[dict, dict]:
    holder = {}

    def push():
        holder["u"] = bot.peer.group_message(chat, user, text, **kw)
        return holder["u"]

    (reply,) = bot.exchange(chat, push)
    return holder["u"]["message"], reply


def test_group_ask_command_is_answered_in_thread(bot):
    q, reply = _group_ask(bot, G_QA, 2001, "/ask 烟台哪个区在搞商业航天")
    _assert_answer(reply)
    assert "海阳" in reply["text"]
    assert _reply_to(reply) == q["message_id"]


def test_group_ask_addressed_to_this_bot(bot):
    q, reply = _group_ask(bot, G_QA, 2001, f"/ask@{BOT_USERNAME} {QUESTION}")
    _assert_answer(reply)
    assert _reply_to(reply) == q["message_id"]


def test_group_mention_is_answered(bot):
    q, reply = _group_ask(bot, G_QA, 2002, f"@{BOT_USERNAME} 牟平在发展什么产业")
    _assert_answer(reply)
    assert "牟平" in reply["text"]
    assert _reply_to(reply) == q["message_id"]


def test_group_ignores_chatter_and_other_bots_commands(bot):
    before = len(bot.peer.sent(G_QA))
    bot.peer.group_message(G_QA, 2003, "今天天气不错")
    bot.peer.group_message(G_QA, 2003, f"/ask@OtherBot {QUESTION}")
    bot.peer.group_message(G_QA, 2003, "@OtherBot 莱山的主导产业是什么")
    time.sleep(1.5)
    marker, reply = _group_ask(bot, G_QA, 2003, "/ask 芝罘区的目标是什么")
    time.sleep(1.0)
    new = bot.peer.sent(G_QA)[before:]
    assert [m["message_id"] for m in new] == [reply["message_id"]], [m["text"][:60] for m in new]
    assert _reply_to(reply) == marker["message_id"]
    _assert_answer(reply)


def test_group_reply_to_bot_message_is_answered(bot):
    _, first = _group_ask(bot, G_QA, 2004, "/ask 烟台哪个区在搞商业航天")
    q, reply = _group_ask(bot, G_QA, 2004, "芝罘区的目标是什么", reply_to_message=first)
    _assert_answer(reply)
    assert "芝罘" in reply["text"]
    assert _reply_to(reply) == q["message_id"]


def test_group_ask_without_question_explains_usage(bot):
    q, reply = _group_ask(bot, G_QA, 2004, "/ask")
    assert "/ask" in reply["text"] and "例如" in reply["text"]
    assert _reply_to(reply) == q["message_id"]


def test_bot_added_and_removed_from_groups_is_recorded(bot):
    before = bot.stats()
    bot.peer.my_chat_member(G_QA, 2001, "left", "member")
    bot.peer.my_chat_member(G_EVT, 3001, "left", "member")
    s = bot.stats_until(lambda s: s["groups"] == before["groups"] + 2)
    assert s["groups"] == before["groups"] + 2
    # a subscribed group that removes the bot is unsubscribed
    bot.peer.set_chat_admins(G_EVT, [3001])
    (ok,) = bot.exchange(G_EVT, lambda: bot.peer.group_message(G_EVT, 3001, "/subscribe"))
    assert ok["text"] == "已订阅方案公告。"
    assert bot.stats()["subscribers"] == before["subscribers"] + 1
    bot.peer.my_chat_member(G_EVT, 3001, "member", "kicked")
    s = bot.stats_until(lambda s: s["subscribers"] == before["subscribers"])
    assert s["subscribers"] == before["subscribers"]
    assert s["groups"] == before["groups"] + 2  # still known, now as kicked
    assert f"group {G_EVT} (G): bot is now kicked" in bot.log()


# ----------------------------------------------------------------------------- 3. admin
def test_non_admin_cannot_run_admin_commands(bot):
    before = bot.stats()
    since = len(bot.peer.calls)
    for cmd in ("/reindex", "/announce 不该发出的公告", "/stats"):
        assert bot.ask(STRANGER, cmd)["text"] == "这个命令只对机器人管理员开放。"
    time.sleep(1.0)
    calls = bot.peer.calls[since:]
    assert not [c for c in calls if c["method"] == "editMessageText"]
    assert not [c for c in calls if c["method"] == "sendMessage"
                and c["params"]["chat_id"] not in (STRANGER, ADMIN)]
    after = bot.stats()
    assert after["version"] == before["version"]
    for cmd in ("reindex", "announce", "stats"):
        assert f"refused /{cmd} from non-admin user {STRANGER}" in bot.log()


def test_admin_reindex_reports_progress_and_summary(bot):
    before = bot.stats()
    status, summary = bot.reindex()
    assert summary.startswith("重建完成：版本 "), summary
    m = re.search(r"共 (\d+) 段", summary)
    assert m and int(m.group(1)) == before["passages"] > 0, summary
    assert "未变 1" in summary
    after = bot.stats()
    assert after["version"] != before["version"]
    assert f"版本 {after['version']}" in summary


def test_reindex_in_group_is_redirected_to_private(bot):
    _, reply = _group_ask(bot, G_QA, ADMIN, "/reindex")
    assert "私聊" in reply["text"]


def test_group_admin_subscribes_member_is_refused(bot):
    bot.peer.set_chat_admins(G_SUB, [3100])
    (ok,) = bot.exchange(G_SUB, lambda: bot.peer.group_message(G_SUB, 3100, "/subscribe"))
    assert ok["text"] == "已订阅方案公告。"
    (no,) = bot.exchange(G_SUB, lambda: bot.peer.group_message(G_SUB, 3101, "/subscribe"))
    assert no["text"] == "只有群管理员可以订阅或退订公告。"
    (no,) = bot.exchange(G_SUB, lambda: bot.peer.group_message(G_SUB, 3101, "/unsubscribe"))
    assert no["text"] == "只有群管理员可以订阅或退订公告。"
    assert "subscribe from non-admin user 3101" in bot.log()
    # /subscribe in a private chat explains where to use it
    assert "群里" in bot.ask(USER, "/subscribe")["text"]


def _confirm(buttons: dict[str, str]) -> str:
    (data,) = [v for k, v in buttons.items() if k.startswith("确认发送到")]
    return data


def _subscribe_g_sub(bot: Bot) -> None:
    bot.peer.set_chat_admins(G_SUB, [3100])
    (ok,) = bot.exchange(G_SUB, lambda: bot.peer.group_message(G_SUB, 3100, "/subscribe"))
    assert ok["text"] == "已订阅方案公告。"


def _announce_preview(bot: Bot, text: str) -> tuple[dict, dict[str, str]]:
    preview = bot.ask(ADMIN, f"/announce {text}")
    assert preview["parse_mode"] == "HTML"
    assert preview["text"] == f"<b>公告预览</b>\n\n{text}"
    return preview, _buttons(preview)


def test_non_admin_pressing_confirm_does_not_broadcast(bot):
    preview, buttons = _announce_preview(bot, "测试公告")
    confirm = _confirm(buttons)
    sub_before = len(bot.peer.sent(G_SUB))
    since = len(bot.peer.calls)
    bot.peer.callback(STRANGER, ADMIN, preview, confirm)
    deadline = time.monotonic() + 10
    while f"refused /announce (button) from non-admin user {STRANGER}" not in bot.log():
        assert time.monotonic() < deadline, bot.log()[-2000:]
        time.sleep(0.1)
    time.sleep(0.5)
    assert len(bot.peer.sent(G_SUB)) == sub_before
    assert not [c for c in bot.peer.calls[since:] if c["method"] == "editMessageText"]
    # ... and the announcement is still pending for the real admin, who cancels it
    upd = bot.peer.callback(ADMIN, ADMIN, preview, buttons["取消"])
    bot.callback_answer(upd)
    bot.peer.wait_for(lambda c: c["method"] == "editMessageText"
                      and c["params"].get("text") == "公告已取消。", 20, since=since)
    time.sleep(0.3)
    assert len(bot.peer.sent(G_SUB)) == sub_before


def test_non_admin_pressing_confirm_gets_a_callback_refusal(bot):
    preview, buttons = _announce_preview(bot, "另一条测试公告")
    since = len(bot.peer.calls)
    upd = bot.peer.callback(STRANGER, ADMIN, preview, _confirm(buttons))
    try:
        ack = bot.callback_answer(upd, timeout=3)
        assert ack["params"].get("text") == "只有机器人管理员可以这样做。"
        assert not [c for c in bot.peer.calls[since:] if c["method"] == "sendMessage"]
    finally:  # leave nothing pending: the admin cancels
        bot.peer.callback(ADMIN, ADMIN, preview, buttons["取消"])
        bot.peer.wait_for(lambda c: c["method"] == "editMessageText"
                          and c["params"].get("text") == "公告已取消。", 10, since=since)


def test_admin_announcement_reaches_subscribed_group(bot):
    _subscribe_g_sub(bot)  # idempotent; G_EVT was unsubscribed when the bot was kicked
    preview, buttons = _announce_preview(bot, "测试公告")
    assert set(buttons) == {"确认发送到 1 个群", "取消"}
    sub_before = len(bot.peer.sent(G_SUB))
    since = len(bot.peer.calls)
    upd = bot.peer.callback(ADMIN, ADMIN, preview, buttons["确认发送到 1 个群"])
    bot.callback_answer(upd)
    done = bot.peer.wait_for(lambda c: c["method"] == "editMessageText"
                             and c["params"].get("text", "").startswith("公告已发送到"), 20, since=since)
    assert done["params"]["text"] == "公告已发送到 1 个群。"
    assert done["params"]["message_id"] == preview["message_id"]
    new = bot.peer.sent(G_SUB)[sub_before:]
    assert [m["text"] for m in new] == ["📢 测试公告"]
    # nothing went to the other groups
    assert not [m for m in bot.peer.sent(G_EVT) if m["text"].startswith("📢")]
    assert not [m for m in bot.peer.sent(G_QA) if m["text"].startswith("📢")]
    # pressing the same button again does not send twice
    upd = bot.peer.callback(ADMIN, ADMIN, preview, buttons["确认发送到 1 个群"])
    assert bot.callback_answer(upd)["params"].get("text") == "这个公告已处理或已失效。"
    time.sleep(0.5)
    assert len(bot.peer.sent(G_SUB)) == sub_before + 1


def test_announcement_text_is_html_escaped(bot):
    _subscribe_g_sub(bot)
    preview = bot.ask(ADMIN, "/announce a<b>&c")
    assert preview["text"] == "<b>公告预览</b>\n\na&lt;b&gt;&amp;c"
    buttons = _buttons(preview)
    sub_before = len(bot.peer.sent(G_SUB))
    bot.peer.callback(ADMIN, ADMIN, preview, _confirm(buttons))
    (ann,) = bot.peer.wait_for_replies(G_SUB, sub_before + 1)[sub_before:]
    assert ann["text"] == "📢 a&lt;b&gt;&amp;c" and ann["parse_mode"] == "HTML"


def test_stale_or_tampered_buttons_get_a_notice(bot):
    for data in ("fb:999999:1", "full:abc", "nonsense"):
        upd = bot.peer.callback(USER, USER, 1, data)
        assert "失效" in bot.callback_answer(upd)["params"].get("text", "")


# ----------------------------------------------------------------------------- 4. acceptance
QUESTIONS = ["莱山的主导产业是什么", "烟台哪个区在搞商业航天", "牟平在发展什么产业", "芝罘区的目标是什么",
             "海阳东方航天港要打造什么"]


def test_reindex_while_another_user_asks_twenty_questions(bot):
    user = 5000
    before = bot.stats()
    # a new document makes the rebuild embed passages, so it really overlaps the questions
    filler = "\n\n".join(f"第{i}段：这是一段用于测试索引重建的填充文字，讲的是园艺和做饭，与县域经济无关，编号{i}。"
                         for i in range(1, 61))
    (bot.docs / "zz-filler.md").write_text(f"---\ntitle: 测试填充文档\ndate: 2021-06\n---\n{filler}\n",
                                           encoding="utf-8")
    sub_before = len(bot.peer.sent(G_SUB))
    since = len(bot.peer.calls)
    n_user = len(bot.peer.sent(user))
    status_upd = bot.peer.private_message(ADMIN, "/reindex")
    for i in range(20):
        bot.peer.private_message(user, QUESTIONS[i % len(QUESTIONS)])
    replies = bot.peer.wait_for_replies(user, n_user + 20, timeout=90)[n_user:]
    summary = bot.peer.wait_for(lambda c: c["method"] == "editMessageText"
                                and c["params"].get("chat_id") == ADMIN
                                and re.match(r"重建(完成|失败)", c["params"].get("text", "")), 90,
                                since=since)
    progress = [c["params"]["text"] for c in bot.peer.calls[since:] if c["method"] == "editMessageText"
                and c["params"].get("text", "").startswith("重建中")]
    # progress edits come once a second, so a fast rebuild may finish before the first one
    assert all(re.match(r"重建中：(已嵌入 \d+/\d+ 段…|读取文档…)", t) for t in progress), progress
    assert summary["params"]["text"].startswith("重建完成：版本 "), summary["params"]["text"]
    assert "新增 1" in summary["params"]["text"]
    assert status_upd["message"]["message_id"]
    assert len(replies) == 20
    for r in replies:
        _assert_answer(r)
    time.sleep(0.5)
    assert len(bot.peer.sent(user)) == n_user + 20  # exactly one reply per question
    # the questions overlapped the rebuild: some were answered before the summary
    first_answer = next(c["time"] for c in bot.peer.calls[since:] if c["method"] == "sendMessage"
                        and c["params"].get("chat_id") == user)
    assert first_answer < summary["time"]
    after = bot.stats()
    assert after["version"] != before["version"]
    assert f"版本 {after['version']}" in summary["params"]["text"]
    assert after["passages"] > before["passages"]
    assert after["questions"] >= before["questions"] + 20
    _assert_answer(bot.ask(user + 1, "烟台哪个区在搞商业航天"))
    # the subscribed group hears about the new document
    (news,) = bot.peer.wait_for_replies(G_SUB, sub_before + 1)[sub_before:]
    assert news["text"].startswith("📢 文档库已更新") and "测试填充文档（2021-06）" in news["text"]
    # and /sources lists it
    assert "测试填充文档" in bot.ask(user + 1, "/sources")["text"]


def test_broken_document_is_named_and_questions_still_answered(bot):
    (bot.docs / "broken.docx").write_bytes(os.urandom(4096))
    (bot.docs / "garbage.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2048))
    _, summary = bot.reindex()
    assert summary.startswith("重建完成"), summary
    assert "无法读取（已跳过）" in summary
    assert re.search(r"broken\.docx: \w+", summary), summary
    assert re.search(r"garbage\.pdf: \w+", summary), summary
    msg = bot.ask(5100, QUESTION)
    _assert_answer(msg)
    space = bot.ask(5100, "烟台哪个区在搞商业航天")
    _assert_answer(space)
    assert "海阳" in space["text"]


def test_every_html_message_sent_is_valid_telegram_html(bot):
    from telegram_html import problems

    html_msgs = [m for m in bot.peer.sent() if m.get("parse_mode") == "HTML"]
    assert len(html_msgs) > 40
    bad = {m["text"][:80]: problems(m["text"]) for m in html_msgs if problems(m["text"])}
    assert not bad, bad
    for m in bot.peer.sent():
        assert len(m["text"]) <= 4096


def test_no_errors_logged(bot):
    """Up to here nothing failed inside the bot (the fault-injection tests come after)."""
    log = bot.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]


def test_rate_limited_send_is_retried(bot):
    bot.peer.inject("sendMessage", "429", retry_after=1)
    msg = bot.ask(5200, QUESTION)
    _assert_answer(msg)
    assert [c for c in bot.peer.calls if c.get("fault") == "429"]


# ----------------------------------------------------------------------------- 6. processes
def _run_bot(env: dict, cwd: Path, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(PY), "-m", "bot"], cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("name,value", [("PLANBOT_ADMIN_IDS", "abc"),
                                        ("PLANBOT_ADMIN_IDS", "42,x7"),
                                        ("PLANBOT_TELEGRAM_API_URL", "ftp://x")])
def test_bad_setting_exits_with_one_line_naming_it(tmp_path, name, value):
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_VAR_DIR=str(tmp_path / "var"), **{name: value})
    r = _run_bot(env, tmp_path, timeout=60)
    assert r.returncode != 0
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0] and lines[0].startswith("planbot:")
    assert TOKEN not in r.stdout + r.stderr
    assert not (tmp_path / "var").exists()  # nothing was built


def test_without_token_falls_back_to_terminal_chat(bot, tmp_path):
    env = bot_env(PLANBOT_VAR_DIR=str(bot.var), PLANBOT_DOCS_DIR=str(bot.docs))
    r = _run_bot(env, tmp_path, stdin=f"{QUESTION}\n\n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "terminal chat" in r.stdout
    assert "答：" in r.stdout and ARTICLE_URL in r.stdout, r.stdout
