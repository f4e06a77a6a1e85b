"""Prove the fake Bot API peer is compatible with the real python-telegram-bot client."""
from __future__ import annotations

import asyncio
import datetime as dtm
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from telegram import (Bot, BotCommand, BotCommandScopeChat, InlineKeyboardButton,
                      InlineKeyboardMarkup, MessageEntity, ReplyParameters, Update)
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from botapi_peer import BotApiPeer, compute_entities

TOKEN = "123456:TEST-token_for_planbot"
USER = 4242
GROUP = -1001234567890


@pytest.fixture
def peer():
    with BotApiPeer(TOKEN) as p:
        yield p


def make_bot(peer: BotApiPeer, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=peer.url + "/bot", base_file_url=peer.url + "/file/bot")


async def fetch_updates(bot: Bot, peer: BotApiPeer) -> list[Update]:
    """Read and confirm everything queued, the way the Updater does."""
    updates = await bot.get_updates(timeout=0)
    if updates:
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert peer.pending_updates() == 0
    return list(updates)


@pytest.mark.asyncio
async def test_get_me(peer: BotApiPeer) -> None:
    async with make_bot(peer) as bot:  # initialize() itself calls getMe
        me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (7000001, "planbot_test_bot", True)
    assert peer.calls[0]["method"] == "getMe"


@pytest.mark.asyncio
async def test_send_message_markup_reply_and_encoding(peer: BotApiPeer) -> None:
    incoming = peer.private_message(USER, "plan my day", first_name="Ann")["message"]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes:1")]])
    async with make_bot(peer) as bot:
        msg = await bot.send_message(USER, "Sure!", reply_markup=markup,
                                     reply_parameters=ReplyParameters(incoming["message_id"]))
        second = await bot.send_message(USER, "[not json] 42")
    assert msg.chat.id == USER and msg.from_user.id == 7000001 and msg.text == "Sure!"
    assert msg.message_id == incoming["message_id"] + 1 and second.message_id == msg.message_id + 1
    assert msg.reply_to_message.text == "plan my day"
    assert msg.reply_markup.inline_keyboard[0][0].callback_data == "yes:1"
    call = peer.wait_for(lambda c: c["method"] == "sendMessage")
    # What PTB 22 puts on the wire: url-encoded form, nested objects as JSON strings.
    assert call["content_type"] == "application/x-www-form-urlencoded"
    assert call["params"]["chat_id"] == USER
    assert call["params"]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Yes", "callback_data": "yes:1"}]]}
    assert call["params"]["reply_parameters"]["message_id"] == incoming["message_id"]
    sent = peer.sent(USER)
    assert [s["text"] for s in sent] == ["Sure!", "[not json] 42"]  # text never decoded
    assert sent[0]["message_id"] == msg.message_id
    assert peer.sent(USER + 1) == []


@pytest.mark.asyncio
async def test_edit_message_text(peer: BotApiPeer) -> None:
    async with make_bot(peer) as bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
        msg = await bot.send_message(GROUP, "v1", reply_markup=markup)
        edited = await bot.edit_message_text("v2", chat_id=GROUP, message_id=msg.message_id,
                                             reply_markup=markup)
        assert edited.text == "v2" and edited.edit_date is not None
        assert edited.message_id == msg.message_id and edited.reply_markup == markup
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("v2", chat_id=GROUP, message_id=msg.message_id,
                                        reply_markup=markup)
        with pytest.raises(BadRequest, match="not found"):
            await bot.edit_message_text("x", chat_id=GROUP, message_id=999)


@pytest.mark.asyncio
async def test_my_commands_per_scope(peer: BotApiPeer) -> None:
    scope = BotCommandScopeChat(GROUP)
    async with make_bot(peer) as bot:
        await bot.set_my_commands([BotCommand("plan", "Make a plan")])
        await bot.set_my_commands([BotCommand("today", "Today")], scope=scope,
                                  language_code="en")
        assert [c.command for c in await bot.get_my_commands()] == ["plan"]
        assert [c.command for c in await bot.get_my_commands(scope=scope,
                                                             language_code="en")] == ["today"]
        assert await bot.get_my_commands(scope=scope) == ()
        await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()
    assert peer.commands({"type": "chat", "chat_id": GROUP}, "en") == [
        {"command": "today", "description": "Today"}]


@pytest.mark.asyncio
async def test_get_updates_long_poll_and_offset(peer: BotApiPeer) -> None:
    async with make_bot(peer) as bot:
        t0 = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()  # honours the timeout when idle
        assert 0.9 < time.monotonic() - t0 < 3
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.sleep(0.3)
        assert not poll.done()
        t0 = time.monotonic()
        pushed = peer.private_message(USER, "/start", username="ann")
        updates = await poll
        assert time.monotonic() - t0 < 1  # woken by the update, not by the timeout
        assert [u.update_id for u in updates] == [pushed["update_id"]]
        msg = updates[0].message
        assert msg.text == "/start" and msg.chat.type == "private" and msg.chat.id == USER
        assert msg.from_user.username == "ann"
        assert msg.entities[0].type == MessageEntity.BOT_COMMAND
        assert await bot.get_updates(timeout=0) == updates  # not confirmed yet
        assert await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0) == ()
        assert peer.pending_updates() == 0
        assert await bot.get_updates(timeout=0) == ()  # confirmed updates are gone for good
        for i in range(3):
            peer.private_message(USER, f"m{i}")
        assert len(await bot.get_updates(limit=2, timeout=0)) == 2


@pytest.mark.asyncio
async def test_entities_use_utf16_offsets(peer: BotApiPeer) -> None:
    peer.group_message(GROUP, USER, "/plan@planbot_test_bot 明天 😀 @alice_b 和 @bob_c")
    peer.group_message(GROUP, USER, "你好😀@carol_d")
    assert compute_entities("😀@xyz")[0] == {"type": "mention", "offset": 2, "length": 4}
    async with make_bot(peer) as bot:
        first, second = [u.message for u in await fetch_updates(bot, peer)]
    assert first.chat.type == "supergroup" and first.chat.title == "G"
    assert list(first.parse_entities().values()) == [
        "/plan@planbot_test_bot", "@alice_b", "@bob_c"]
    assert first.entities[0].type == MessageEntity.BOT_COMMAND
    assert list(second.parse_entities([MessageEntity.MENTION]).values()) == ["@carol_d"]


@pytest.mark.asyncio
async def test_scripted_update_kinds_parse_in_ptb(peer: BotApiPeer) -> None:
    async with make_bot(peer) as bot:
        bot_msg = await bot.send_message(GROUP, "pick", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("Go", callback_data="go")]]))
        sent = peer.sent(GROUP)[0]
        peer.group_message(GROUP, USER, "ok @planbot_test_bot", reply_to_message=sent)
        peer.callback(USER, GROUP, sent, "go")
        orig = peer.private_message(USER, "draft")["message"]
        peer.edited_message(USER, orig["message_id"], "final")
        peer.photo_message(USER, caption="pic")
        peer.sticker_message(USER)
        peer.voice_message(USER)
        peer.document_message(USER, chat_id=GROUP)
        peer.my_chat_member(GROUP, USER, "left", "member")
        peer.my_chat_member(GROUP, USER, "administrator", "kicked")
        peer.push_update({"message": {"message_id": 77, "date": 0, "text": "raw",
                                      "chat": {"id": USER, "type": "private"}}})
        ups = await fetch_updates(bot, peer)
    reply, cbq, _, edited, photo, sticker, voice, doc, added, kicked, raw = ups
    assert reply.message.reply_to_message.message_id == bot_msg.message_id
    assert reply.message.reply_to_message.from_user.is_bot
    assert cbq.callback_query.data == "go" and cbq.callback_query.from_user.id == USER
    assert cbq.callback_query.message.reply_markup.inline_keyboard[0][0].text == "Go"
    assert edited.edited_message.text == "final" and edited.edited_message.edit_date
    assert edited.edited_message.message_id == orig["message_id"]
    assert photo.message.photo[-1].width == 800 and photo.message.caption == "pic"
    assert sticker.message.sticker.emoji and voice.message.voice.mime_type == "audio/ogg"
    assert doc.message.document.file_name == "file.txt" and doc.message.chat.id == GROUP
    assert added.my_chat_member.new_chat_member.status == "member"
    assert added.my_chat_member.new_chat_member.user.id == 7000001
    assert kicked.my_chat_member.old_chat_member.status == "administrator"
    assert kicked.my_chat_member.new_chat_member.status == "kicked"
    assert raw.message.text == "raw" and raw.update_id > kicked.update_id


@pytest.mark.asyncio
async def test_chat_and_admin_queries(peer: BotApiPeer) -> None:
    peer.set_chat_admins(GROUP, [1, 2])
    peer.group_message(GROUP, 1, "hi", title="Planners")
    async with make_bot(peer) as bot:
        assert (await bot.get_chat_member(GROUP, 1)).status == "creator"
        assert (await bot.get_chat_member(GROUP, 2)).status == "administrator"
        assert (await bot.get_chat_member(GROUP, 3)).status == "member"
        assert [m.user.id for m in await bot.get_chat_administrators(GROUP)] == [1, 2]
        chat = await bot.get_chat(GROUP)
        assert chat.title == "Planners" and chat.type == "supergroup"
        assert (await bot.get_chat(USER)).type == "private"
        assert await bot.send_chat_action(GROUP, "typing") is True
        assert await bot.leave_chat(GROUP) is True
        assert await bot.do_api_request("someFutureMethod", {"x": 1}) is True
    assert peer.wait_for(lambda c: c["method"] == "someFutureMethod")["params"] == {"x": 1}


@pytest.mark.asyncio
async def test_multipart_upload_is_decoded(peer: BotApiPeer) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    async with make_bot(peer) as bot:
        msg = await bot.send_document(USER, document=b"hello", filename="a.txt",
                                      caption="doc", reply_markup=markup)
    assert msg.document is not None and msg.caption == "doc"
    call = peer.wait_for(lambda c: c["method"] == "sendDocument")
    assert call["content_type"].startswith("multipart/form-data")
    assert call["params"]["reply_markup"] == markup.to_dict()
    assert call["params"]["chat_id"] == USER
    doc = call["params"]["document"]
    assert doc["content"] == b"hello" and doc["filename"] == "a.txt"


def test_raw_json_form_and_query_encodings(peer: BotApiPeer) -> None:
    def post(url: str, body: bytes | None, ctype: str | None) -> dict:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype} if ctype
                                     else {})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    base = f"{peer.url}/bot{TOKEN}/sendMessage"
    markup = {"inline_keyboard": [[{"text": "x", "callback_data": "y"}]]}
    post(base, json.dumps({"chat_id": USER, "text": "j", "reply_markup": markup}).encode(),
         "application/json")
    post(base, f"chat_id={USER}&text=f&reply_markup={json.dumps(markup)}".encode(),
         "application/x-www-form-urlencoded")
    post(f"{base}?chat_id={USER}&text=q", None, None)
    assert [(s["text"], s.get("reply_markup")) for s in peer.sent(USER)] == [
        ("j", markup), ("f", markup), ("q", None)]
    with pytest.raises(urllib.error.HTTPError) as err:
        post(f"{peer.url}/botWRONG/getMe", b"", None)
    assert err.value.code == 401
    assert json.loads(err.value.read()) == {"ok": False, "error_code": 401,
                                            "description": "Unauthorized"}


@pytest.mark.asyncio
async def test_wrong_token(peer: BotApiPeer) -> None:
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with make_bot(peer, "999:WRONG") as bot:  # initialize() -> getMe -> 401
            await bot.get_me()
    assert peer.calls[0]["error"] == 401


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_fault_429_retry_after(peer: BotApiPeer) -> None:
    peer.inject("sendMessage", "429", count=2, retry_after=7)
    async with make_bot(peer) as bot:
        for _ in range(2):
            with pytest.raises(RetryAfter) as err:
                await bot.send_message(USER, "hi")
            assert err.value.retry_after in (7, dtm.timedelta(seconds=7))
        assert (await bot.send_message(USER, "hi")).text == "hi"  # only `count` calls fail
    faults = [c.get("fault") for c in peer.calls if c["method"] == "sendMessage"]
    assert faults == ["429", "429", None]
    assert len(peer.sent(USER)) == 1


@pytest.mark.asyncio
async def test_fault_502_and_drop_are_network_errors(peer: BotApiPeer) -> None:
    peer.inject("getUpdates", "502")
    peer.inject("sendMessage", "drop")
    async with make_bot(peer) as bot:
        with pytest.raises(NetworkError, match="Bad Gateway") as err:
            await bot.get_updates(timeout=0)
        assert type(err.value) is NetworkError  # not BadRequest / TimedOut
        with pytest.raises(NetworkError) as err:
            await bot.send_message(USER, "lost")
        assert not isinstance(err.value, (BadRequest, TimedOut))
        assert (await bot.send_message(USER, "ok")).text == "ok"
    assert [c.get("fault") for c in peer.calls if "fault" in c] == ["502", "drop"]
    assert [s["text"] for s in peer.sent(USER)] == ["ok"]


@pytest.mark.asyncio
async def test_fault_stall_times_out_without_blocking_others(peer: BotApiPeer) -> None:
    peer.stall_seconds = 1.5
    peer.inject("sendMessage", "stall")
    async with make_bot(peer) as bot:
        slow = asyncio.create_task(bot.send_message(USER, "slow", read_timeout=0.5))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await bot.get_me()  # served while the stalled request is still sleeping
        assert time.monotonic() - t0 < 0.4
        with pytest.raises(TimedOut):
            await slow
    stalled = peer.wait_for(lambda c: c.get("fault") == "stall" and "result" in c, timeout=5)
    assert stalled["params"]["text"] == "slow"  # processed late, like a slow Telegram


@pytest.mark.asyncio
async def test_stop_releases_long_poll_and_refuses_calls() -> None:
    peer = BotApiPeer(TOKEN).start()
    async with make_bot(peer) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=20))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        await asyncio.to_thread(peer.stop)
        assert await poll == () and time.monotonic() - t0 < 2
        with pytest.raises(NetworkError):
            await bot.get_me()


def test_wait_for_timeout_summarises_calls(peer: BotApiPeer) -> None:
    peer.private_message(USER, "x")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no matching call"):
        peer.wait_for(lambda c: c["method"] == "sendMessage", timeout=0.3)
    assert time.monotonic() - t0 < 1


@pytest.mark.asyncio
async def test_application_echo_roundtrip(peer: BotApiPeer) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}")

    app = (ApplicationBuilder().token(TOKEN).base_url(peer.url + "/bot")
           .base_file_url(peer.url + "/file/bot").build())
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        text = f"hello {uuid.uuid4().hex[:6]} 你好"
        peer.private_message(USER, text)
        replies = await asyncio.to_thread(peer.wait_for_replies, USER, 1, 10)
        assert replies[0]["text"] == f"echo: {text}"
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert peer.pending_updates() == 0
    assert peer.wait_for(lambda c: c["method"] == "deleteWebhook", timeout=1)
