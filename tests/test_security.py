"""Security end-to-end: the real bot process against the Bot API peer (harness from loadtest.py).

Covers what tests/test_bot_e2e.py does not: admin commands refused in groups, through EDITED
messages and through forged or foreign buttons, each refusal logged; the token never appearing
in logs, tracebacks, /stats or any request the bot made; the per-user rate limit under a flood.
(Private-chat refusals and a non-admin pressing "confirm" are covered in test_bot_e2e.py.)
"""
from __future__ import annotations

import json
import re
import time

import pytest

from loadtest import BotProcess, wait_until

pytestmark = pytest.mark.slow

TOKEN = "6123450987:AAFx-SecurityCanary-ZQ81vTokenNeverLeak"
SECRET = TOKEN.split(":", 1)[1]
ADMIN = 42
STRANGER = 3001
GROUP = -1009001
REFUSAL = "这个命令只对机器人管理员开放。"
BUTTON_REFUSAL = "只有机器人管理员可以这样做。"
RATE_LIMIT = 5


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    b = BotProcess(tmp_path_factory.mktemp("security"), token=TOKEN, admins=(ADMIN,),
                   rate_limit=RATE_LIMIT)
    try:
        b.wait_ready()
        yield b
    finally:
        code = b.stop()
    log = b.log()  # after shutdown too: nothing leaks on the way out
    assert code == 0, log[-3000:]
    assert TOKEN not in log and SECRET not in log


def calls_since(bot: BotProcess, since: int, method: str | None = None) -> list[dict]:
    return [c for c in bot.peer.calls[since:] if method is None or c["method"] == method]


def replies(bot: BotProcess, since: int, chat: int, n: int, timeout: float = 20) -> list[dict]:
    """The first n sendMessage calls to chat recorded after index `since` (waits for them)."""
    def got() -> list[dict]:
        return [{**c["params"], "message_id": c["result"]["message_id"]}
                for c in calls_since(bot, since, "sendMessage")
                if c["params"]["chat_id"] == chat and "result" in c]
    assert wait_until(lambda: len(got()) >= n, timeout), (got(), bot.log()[-2000:])
    return got()[:n]


def quiet_then(bot: BotProcess, since: int, seconds: float = 1.0) -> list[dict]:
    """What the bot did (polling aside) after index `since`, given `seconds` to do it."""
    time.sleep(seconds)
    return [c for c in calls_since(bot, since) if c["method"] != "getUpdates"]


def wait_log(bot: BotProcess, line: str, timeout: float = 10) -> None:
    assert wait_until(lambda: line in bot.log(), timeout), bot.log()[-2000:]


# ------------------------------------------------------------------ admin commands in groups
@pytest.mark.parametrize("text", ["/reindex", "/announce 不该发出的公告", "/stats",
                                  "/stats@planbot_load_bot"])
def test_group_admin_commands_refused_and_logged(bot, text):
    since, name = len(bot.peer.calls), text.split()[0][1:].split("@")[0]
    q = bot.peer.group_message(GROUP, STRANGER, text)["message"]
    (reply,) = replies(bot, since, GROUP, 1)
    assert reply["text"] == REFUSAL
    assert reply["reply_parameters"]["message_id"] == q["message_id"]
    wait_log(bot, f"refused /{name} from non-admin user {STRANGER} in chat {GROUP}")
    later = quiet_then(bot, since)
    assert not [c for c in later if c["method"] == "editMessageText"]
    assert [c["params"]["chat_id"] for c in later if c["method"] == "sendMessage"] == [GROUP]


# ------------------------------------------------------------------ edited messages
@pytest.mark.parametrize("chat", [STRANGER + 1, GROUP], ids=["private", "group"])
@pytest.mark.parametrize("command", ["reindex", "announce 编辑出来的公告", "stats"])
def test_edited_admin_command_from_non_admin_is_refused_and_logged(bot, chat, command):
    user, since = STRANGER + 1, len(bot.peer.calls)
    name = command.split()[0]
    bot.peer.edited_message(chat, 900 + len(command), f"/{command}", user_id=user)
    (reply,) = replies(bot, since, chat, 1)
    assert reply["text"] == REFUSAL
    wait_log(bot, f"refused /{name} (edited) from non-admin user {user} in chat {chat}")
    later = quiet_then(bot, since)
    assert len([c for c in later if c["method"] == "sendMessage"]) == 1
    assert not [c for c in later if c["method"] == "editMessageText"]


@pytest.mark.parametrize("command", ["reindex", "announce 编辑出来的公告"])
def test_edited_admin_command_from_admin_is_not_run_twice(bot, command):
    """An edit is not a new command: the admin is told to resend; no rebuild, no preview."""
    name, since = command.split()[0], len(bot.peer.calls)
    bot.peer.edited_message(ADMIN, 950 + len(command), f"/{command}", user_id=ADMIN)
    (reply,) = replies(bot, since, ADMIN, 1)
    assert reply["text"] == f"编辑过的消息不会执行命令，请重新发送 /{name}。"
    later = quiet_then(bot, since, 1.5)
    assert [c["method"] for c in later if c["method"] in ("sendMessage", "editMessageText")] \
        == ["sendMessage"]
    assert "开始重建索引" not in json.dumps([c["params"] for c in later], ensure_ascii=False)
    assert not reply.get("reply_markup")


def test_edited_question_is_still_ignored(bot):
    since = len(bot.peer.calls)
    bot.peer.edited_message(STRANGER + 2, 990, "莱山的主导产业是什么", user_id=STRANGER + 2)
    assert quiet_then(bot, since, 1.5) == []


# ------------------------------------------------------------------ buttons
def test_foreign_and_forged_announce_buttons_are_refused(bot):
    since = len(bot.peer.calls)
    bot.peer.private_message(ADMIN, "/announce 安全测试公告")
    (preview,) = replies(bot, since, ADMIN, 1)
    rows = preview["reply_markup"]["inline_keyboard"]
    data = {b["text"]: b["callback_data"] for row in rows for b in row}
    cancel = data["取消"]
    forged = re.sub(r"announce:0:(\w+)", "announce:0:0123456789ab", cancel)
    presses = [bot.peer.callback(STRANGER, ADMIN, preview["message_id"], cancel),
               bot.peer.callback(STRANGER, GROUP, 1, forged)]
    for upd in presses:
        cid = upd["callback_query"]["id"]
        ack = bot.peer.wait_for(lambda c: c["method"] == "answerCallbackQuery"
                                and str(c["params"].get("callback_query_id")) == cid, 10)
        assert ack["params"]["text"] == BUTTON_REFUSAL
    for chat in (ADMIN, GROUP):
        wait_log(bot, f"refused /announce (button) from non-admin user {STRANGER} in chat {chat}")
    assert not calls_since(bot, since, "editMessageText")
    # the announcement is still pending for the admin, who cancels it
    since = len(bot.peer.calls)
    bot.peer.callback(ADMIN, ADMIN, preview["message_id"], cancel)
    bot.peer.wait_for(lambda c: c["method"] == "editMessageText"
                      and c["params"].get("text") == "公告已取消。", 10, since=since)


# ------------------------------------------------------------------ rate limit
def test_flooding_user_gets_one_polite_reply_and_others_are_answered_promptly(bot):
    flooder, other, since = 4001, 4002, len(bot.peer.calls)
    for _ in range(30):
        bot.peer.private_message(flooder, "莱山的主导产业是什么")
    t0 = time.time()
    bot.peer.private_message(other, "烟台哪个区在搞商业航天")
    (answer,) = replies(bot, since, other, 1)
    sent = next(c for c in calls_since(bot, since, "sendMessage") if c["params"]["chat_id"] == other)
    assert answer["text"].startswith("<b>答：</b>")
    assert sent["time"] - t0 < 3.0, sent["time"] - t0
    flood = replies(bot, since, flooder, RATE_LIMIT + 1)
    time.sleep(1.0)
    flood = [c["params"]["text"] for c in calls_since(bot, since, "sendMessage")
             if c["params"]["chat_id"] == flooder]
    polite = [t for t in flood if t.startswith("提问太频繁了")]
    assert polite == ["提问太频繁了，请稍等一分钟再问。🙏"], flood  # once, not 25 times
    assert sum(t.startswith("<b>答：</b>") for t in flood) == RATE_LIMIT
    wait_log(bot, f"rate limit: user {flooder} sent over {RATE_LIMIT} questions a minute")


# ------------------------------------------------------------------ the token (runs last)
def test_token_never_appears_in_logs_errors_stats_or_requests(bot):
    # provoke the paths that log exceptions: a send failing beyond its retries (a traceback
    # through the error handler), a dropped connection, a failing poll, a 429
    since = len(bot.peer.calls)
    bot.peer.inject("sendMessage", "502", count=10)
    bot.peer.inject("sendChatAction", "drop")
    bot.peer.private_message(5001, "莱山的主导产业是什么")
    wait_log(bot, "update failed", timeout=30)
    with bot.peer._cond:  # however many retries the bot makes, leave no 502s for later
        bot.peer._faults.clear()
    bot.peer.inject("getUpdates", "502")
    bot.peer.inject("sendMessage", "429", retry_after=1)
    bot.peer.private_message(5002, "牟平在发展什么产业")
    assert wait_until(lambda: any(c["params"].get("chat_id") == 5002
                                  for c in calls_since(bot, since, "sendMessage") if "result" in c)
                      and any(c.get("fault") == "429" for c in calls_since(bot, since)), 30)
    bot.peer.private_message(STRANGER, "/stats")  # a refusal is logged with the user, no token
    wait_log(bot, f"refused /stats from non-admin user {STRANGER} in chat {STRANGER}")
    s = len(bot.peer.calls)
    bot.peer.private_message(ADMIN, "/stats")
    (stats,) = replies(bot, s, ADMIN, 1)
    assert stats["text"].startswith("提问 ") and TOKEN not in stats["text"]
    time.sleep(1.0)
    log = bot.log()
    requests = json.dumps([c["params"] for c in bot.peer.calls], ensure_ascii=False, default=str)
    for secret in (TOKEN, SECRET):
        assert secret not in log
        assert secret not in requests
    assert "Traceback" in log and "update failed" in log  # the exception paths did run
