"""Handler tests: real Application and engine, Bot API answered in-process (tests/fake_request.py).
Every test asserts what the user would see in their Telegram client."""
from __future__ import annotations

import logging

import pytest

from fake_request import _ApiError, ADMIN_ID, BOT_ID, BOT_USER, BOT_USERNAME, TOKEN, bot, make_bot  # noqa: F401
from telegram_html import plain, problems

QUESTION = "莱山的主导产业是什么？"


def buttons(call) -> list[str]:
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row]


def html_replies(calls) -> list[str]:
    return [c.text for c in calls if c.method == "sendMessage" and c.params.get("parse_mode") == "HTML"]


async def test_private_question_gets_cited_html_answer_with_buttons(bot):
    calls = await bot.send(QUESTION)
    assert "sendChatAction" not in [c.method for c in calls]  # a fast answer costs one request, no typing
    replies = html_replies(calls)
    assert replies and all(problems(t) == [] for t in replies)
    text = "\n".join(replies)
    assert text.startswith("<b>答：</b>") and "<b>[1]</b>" in text and "莱山" in plain(text)
    assert 'href="https://guanhai.com.cn/cmdetail/104546"' in text
    last = [c for c in calls if c.method == "sendMessage"][-1]
    answer_id = bot.state.stats()["questions"]
    assert buttons(last) == [f"more:{answer_id}", f"full:{answer_id}", f"fb:{answer_id}:1", f"fb:{answer_id}:-1"]
    assert not bot.errors


def _slow(engine, monkeypatch, seconds: float = 0.8) -> None:
    """An answer that takes `seconds` (a loaded machine, a huge index)."""
    import time

    real = engine.answer

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "answer", slow)


async def test_slow_answer_shows_typing_before_it(bot, monkeypatch):
    _slow(bot.services.engine, monkeypatch)
    calls = await bot.send(QUESTION)
    assert calls[0].method == "sendChatAction" and calls[0].params == {"chat_id": 1001, "action": "typing"}
    assert [c.method for c in calls].count("sendChatAction") == 1 and "答：" in html_replies(calls)[0]


async def test_no_typing_for_a_slow_answer_while_the_bot_sends_at_its_limit(bot, monkeypatch):
    """With more answers in flight than a second of Telegram's 30 requests/s, a typing action would
    only delay the answers: a burst's slow answers cost one request each."""
    from bot.indicator import Typing

    _slow(bot.services.engine, monkeypatch)
    bot.services.in_flight = Typing.BUSY  # plus this question: one more than the budget's second
    calls = await bot.send(QUESTION)
    assert [c.method for c in calls] == ["sendMessage"] and "答：" in html_replies(calls)[0]
    assert bot.services.in_flight == Typing.BUSY


async def test_failed_typing_indicator_does_not_lose_the_answer(bot, monkeypatch):
    _slow(bot.services.engine, monkeypatch)
    answer = bot.request._answer

    def no_typing(api, params):
        if api == "sendChatAction":
            raise _ApiError("chat action failed")
        return answer(api, params)

    monkeypatch.setattr(bot.request, "_answer", no_typing)
    calls = await bot.send(QUESTION)
    assert calls[0].method == "sendChatAction" and "答：" in html_replies(calls)[0]
    assert bot.errors == []


async def test_typing_after_zero_shows_typing_before_every_answer(make_bot):
    bot = await make_bot(typing_after=0)
    calls = await bot.send(QUESTION)
    assert calls[0].method == "sendChatAction" and "答：" in html_replies(calls)[0]


async def test_unknown_place_is_refused_listing_covered_districts(bot):
    calls = await bot.send("莱州的主导产业是什么")
    (text,) = html_replies(calls)
    assert "找不到" in text and "莱州" in text
    covered = [p for p in ("芝罘", "莱山", "牟平", "蓬莱", "龙口") if p in text]  # derived from the article
    assert len(covered) >= 3, text
    assert buttons([c for c in calls if c.method == "sendMessage"][-1]) == []
    assert bot.state.stats()["refusals"] == 1


async def test_buttons_feedback_more_and_full(bot):
    await bot.send(QUESTION)
    answer_id = bot.state.stats()["questions"]
    calls = await bot.press(f"fb:{answer_id}:1")
    assert [c.method for c in calls] == ["answerCallbackQuery"] and calls[0].params["text"] == "谢谢反馈！"
    assert bot.state.stats()["thumbs_up"] == 1
    await bot.press(f"fb:{answer_id}:-1")  # changing one's mind replaces the vote
    assert (bot.state.stats()["thumbs_up"], bot.state.stats()["thumbs_down"]) == (0, 1)
    for data in (f"more:{answer_id}", f"full:{answer_id}"):
        calls = await bot.press(data)
        assert calls[0].method == "answerCallbackQuery"
        sent = html_replies(calls)
        assert sent and all(problems(t) == [] for t in sent)
    assert not bot.errors


@pytest.mark.parametrize("data", ["more:999999", "full:0", "fb:abc", "fb:-5:1", "xyz", "", "announce", "::", None])
async def test_stale_or_tampered_callback_gets_a_notice(bot, data):
    calls = await bot.press(data)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert "失效" in calls[0].params["text"]
    assert not bot.errors and bot.state.stats()["thumbs_up"] == bot.state.stats()["thumbs_down"] == 0


async def test_tampered_feedback_value_is_not_counted(bot):
    await bot.send(QUESTION)
    answer_id = bot.state.stats()["questions"]
    calls = await bot.press(f"fb:{answer_id}:7")
    assert "失效" in calls[0].params["text"] and bot.state.stats()["thumbs_down"] == 0


async def test_ask_without_question_gets_usage_hint(bot):
    for chat_id in (None, -100500):
        calls = await bot.send("/ask", chat_id=chat_id)
        assert [c.method for c in calls] == ["sendMessage"] and "/ask 莱山的主导产业是什么" in calls[0].text


async def test_ask_addressed_to_another_bot_is_ignored_in_groups(bot):
    assert await bot.send(f"/ask@OtherBot {QUESTION}", chat_id=-100501) == []
    calls = await bot.send(f"/ask@{BOT_USERNAME} {QUESTION}", chat_id=-100501)
    assert "答：" in html_replies(calls)[0]


async def test_group_chatter_ignored_mentions_and_replies_answered(bot):
    assert await bot.send(QUESTION, chat_id=-100502) == []
    assert await bot.send(f"@someone_else {QUESTION}", chat_id=-100502) == []
    calls = await bot.send(f"@{BOT_USERNAME} {QUESTION}", chat_id=-100502)
    reply = [c for c in calls if c.method == "sendMessage"][0]
    assert "答：" in reply.text and reply.params["reply_parameters"]["message_id"] > 0  # quotes the asker
    bot_msg = {**bot.message("答：…", BOT_ID, -100502), "from": BOT_USER}
    calls = await bot.send("那牟平呢？", chat_id=-100502, reply_to_message=bot_msg)  # follow-up by reply
    assert "牟平" in plain(html_replies(calls)[0])
    assert not bot.errors


@pytest.mark.parametrize("command", ["/reindex", "/announce 明天停电", "/stats"])
async def test_admin_commands_refused_for_non_admins(bot, caplog, command):
    caplog.set_level(logging.WARNING, logger="bot")
    name = command.split()[0][1:]
    for chat_id in (None, -100503):
        calls = await bot.send(command, uid=555, chat_id=chat_id)
        assert [c.text for c in calls] == ["这个命令只对机器人管理员开放。"]
    refusals = [r for r in caplog.records if f"refused /{name} from non-admin user 555" in r.getMessage()]
    assert len(refusals) == 2
    # An edit into an admin command is never executed: refused (and logged) for non-admins,
    # admins are asked to send it again.
    assert [c.text for c in await bot.send(command, uid=555, edited=True)] == ["这个命令只对机器人管理员开放。"]
    assert any(f"refused /{name} (edited) from non-admin user 555" in r.getMessage() for r in caplog.records)
    calls = await bot.send(command, uid=ADMIN_ID, edited=True)
    assert [c.text for c in calls] == [f"编辑过的消息不会执行命令，请重新发送 /{name}。"]


async def test_admin_stats_and_announce_flow(make_bot):
    bot = await make_bot(chat_admins={777})
    calls = await bot.send("/subscribe", uid=777, chat_id=-100600)
    assert calls[-1].text == "已订阅方案公告。"
    assert (await bot.send("/subscribe", uid=778, chat_id=-100600))[-1].text == "只有群管理员可以订阅或退订公告。"
    (stats,) = await bot.send("/stats", uid=ADMIN_ID)
    assert stats.text.startswith("提问 0，拒答 0") and "订阅 1" in stats.text
    (preview,) = await bot.send("/announce <b>停电</b> & 检修", uid=ADMIN_ID)
    assert problems(preview.text) == [] and "&lt;b&gt;停电&lt;/b&gt; &amp; 检修" in preview.text
    confirm, cancel = buttons(preview)
    calls = await bot.press(confirm, uid=555)  # a forged press by a non-admin changes nothing
    assert not bot.request.of("editMessageText") and "管理员" in calls[-1].text
    calls = await bot.press(confirm, uid=ADMIN_ID)
    pushed = [c for c in calls if c.method == "sendMessage"]
    assert [c.params["chat_id"] for c in pushed] == [-100600] and problems(pushed[0].text) == []
    assert plain(pushed[0].text) == "📢 <b>停电</b> & 检修"
    assert [c.text for c in calls if c.method == "editMessageText"][-1] == "公告已发送到 1 个群。"
    assert "已处理或已失效" in (await bot.press(cancel, uid=ADMIN_ID))[-1].text  # one-shot
    assert not bot.errors


async def test_forged_announce_callback_is_refused_and_logged(bot, caplog):
    caplog.set_level(logging.WARNING, logger="bot")
    calls = await bot.press("announce:0:0123456789ab", uid=555)
    assert "管理员" in calls[-1].text and not bot.request.of("editMessageText")
    assert any("refused /announce (button) from non-admin user 555" in r.getMessage() for r in caplog.records)


async def test_forged_announce_callback_is_answered_as_a_callback(bot):
    calls = await bot.press("announce:0:0123456789ab", uid=555)
    assert [c.method for c in calls] == ["answerCallbackQuery"]


async def test_per_user_rate_limit(make_bot):
    bot = await make_bot(rate_limit_per_minute=3)
    for _ in range(3):
        assert "答：" in html_replies(await bot.send(QUESTION, uid=2001))[0]
    calls = await bot.send(QUESTION, uid=2001)
    assert [c.text for c in calls] == ["提问太频繁了，请稍等一分钟再问。🙏"]  # no typing, no engine call
    assert "答：" in html_replies(await bot.send(QUESTION, uid=2002))[0]
    assert bot.state.stats()["questions"] == 4


async def test_engine_failure_gets_apology_and_next_question_works(bot, monkeypatch):
    real = bot.services.engine.answer
    failures = iter([RuntimeError("engine exploded")])

    def flaky(question, *a, **kw):
        for exc in failures:
            raise exc
        return real(question, *a, **kw)

    monkeypatch.setattr(bot.services.engine, "answer", flaky)
    calls = await bot.send(QUESTION)
    assert calls[-1].text == "抱歉，处理这条消息时出错了，请稍后再试。" and len(bot.errors) == 1
    assert "答：" in html_replies(await bot.send(QUESTION))[0]
    assert len(bot.errors) == 1


async def test_token_never_logged_or_sent(bot, caplog):
    from bot.app import RedactToken

    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactToken(TOKEN))
    await bot.send(QUESTION)
    await bot.send("/help")
    logging.getLogger("bot.handlers").error("update failed: %s", f"https://x/bot{TOKEN}/sendMessage")
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/getMe failed")
    except RuntimeError:
        logging.getLogger("bot.handlers").exception("request failed")
    assert caplog.records and TOKEN not in caplog.text and "<token>" in caplog.text
    assert all(TOKEN not in repr(c.params) for c in bot.request.calls)


def test_token_redacted_from_chained_exception(caplog):
    from bot.app import RedactToken

    caplog.handler.addFilter(RedactToken(TOKEN))
    try:
        try:
            raise ConnectionError(f"https://api.telegram.org/bot{TOKEN}/getUpdates unreachable")
        except ConnectionError as inner:
            raise RuntimeError("network error") from inner
    except RuntimeError:
        logging.getLogger("bot").exception("polling failed")
    assert TOKEN not in caplog.text


async def test_post_init_sets_command_menus(bot):
    from bot.app import post_init

    await post_init(bot.app)
    scopes = [c.params["scope"] for c in bot.request.of("setMyCommands")]
    assert scopes == [{"type": "default"}, {"type": "all_group_chats"}, {"type": "chat", "chat_id": ADMIN_ID}]
    admin_menu = [c["command"] for c in bot.request.of("setMyCommands")[-1].params["commands"]]
    assert {"reindex", "announce", "stats"} <= set(admin_menu)


def test_per_user_bookkeeping_of_idle_users_is_forgotten():
    """Rate-limit windows, slow-down notices and per-user engine locks must not grow forever."""
    from bot.common import Services

    svc = Services(None, None, None)
    svc.recent[1].append(0.0)      # last asked long ago
    svc.recent[2].append(100.0)    # asked just now
    svc.warned[1] = 0.0
    svc.engine_turn[1], svc.engine_turn[2]
    svc.forget_idle(now=120.0)
    assert set(svc.recent) == {2} and 1 not in svc.warned and set(svc.engine_turn) == {2}
