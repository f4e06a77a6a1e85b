"""One small async function per update kind (questions, buttons, groups); the admin commands are
bot/admin.py, uploads bot/uploads.py; wiring lives in bot/app.py."""
from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections import deque

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import NetworkError, TelegramError

from index.followup import resolve

from .admin import confirm_announcement
from .common import Ctx, reply_html, send_html, services
from .indicator import Typing
from .render import answer_blocks, citation_block, split_messages

log = logging.getLogger(__name__)

HELP = (
    "我是 planbot，回答关于烟台《振兴县(区)域经济三年行动方案》及相关报道的问题，每个回答都附上可核对的原文出处。\n\n"
    "直接发问题即可，例如：\n"
    "• 莱山的主导产业是什么？\n• 烟台哪个区在搞商业航天？\n• 到2023年地区生产总值过千亿的区市要有几个？\n"
    "• Which district is building a sea launch port?\n\n"
    "群里请用 /ask 问题，或 @我，或回复我的消息。\n"
    "命令：/sources 已收录的文档，/help 帮助，/subscribe /unsubscribe 群公告订阅（群管理员）。\n"
    "机器人管理员可在私聊里直接发送 PDF、Word、txt、md、html 文件来添加文档（/docs 查看，/remove 移除）。"
)
NON_TEXT = "我只能读文字问题 🙂 请用文字提问，例如：莱山的主导产业是什么？"
MAX_QUESTION = 500


async def start(update: Update, ctx: Ctx) -> None:
    await update.effective_message.reply_text(HELP, disable_web_page_preview=True)


async def sources(update: Update, ctx: Ctx) -> None:
    docs = services(ctx).engine.documents()
    lines = [f"• {html.escape(d['title'])}（{html.escape(d.get('date') or '日期未知')}）" for d in docs]
    await reply_html(update, "已收录的文档：\n" + ("\n".join(lines) or "（暂无）"))


def _rate_limited(ctx: Ctx, user_id: int) -> bool:
    svc = services(ctx)
    now = time.monotonic()
    if len(svc.recent) >= svc.FORGET_AT:
        svc.forget_idle(now)
    window: deque = svc.recent[user_id]
    while window and now - window[0] > 60:
        window.popleft()
    if len(window) >= svc.settings.rate_limit_per_minute:
        return True
    window.append(now)
    return False


async def answer_question(update: Update, ctx: Ctx, question: str) -> None:
    """The Q&A path shared by private chat, /ask, mentions and replies."""
    svc = services(ctx)
    chat, user = update.effective_chat, update.effective_user
    question = question.strip()
    if not question:
        await update.effective_message.reply_text("请在 /ask 后面写上问题，例如：/ask 莱山的主导产业是什么", do_quote=True)
        return
    if len(question) > MAX_QUESTION:
        await update.effective_message.reply_text(f"问题太长了（{len(question)} 字），请精简到 {MAX_QUESTION} 字以内。")
        return
    if user and _rate_limited(ctx, user.id):
        # One notice per minute, then silence: answering every message of a flood would spend the
        # bot-wide send budget (AIORateLimiter, 30/s) and delay everyone else's answers.
        now = time.monotonic()
        if user.id not in svc.warned or now - svc.warned[user.id] >= 60:
            svc.warned[user.id] = now
            log.warning("rate limit: user %s sent over %d questions a minute; dropping the excess",
                        user.id, svc.settings.rate_limit_per_minute)
            await update.effective_message.reply_text("提问太频繁了，请稍等一分钟再问。🙏")
        return
    svc.in_flight += 1
    try:
        await _answer(update, ctx, svc, chat, user, question)
    finally:
        svc.in_flight -= 1


async def _answer(update: Update, ctx: Ctx, svc, chat, user, question: str) -> None:
    resolved = resolve(question, ctx.chat_data.get("last_question", ""))
    typing = await Typing.start(ctx.bot, chat.id, svc.settings.typing_after,
                                busy=lambda: svc.in_flight > Typing.BUSY)
    try:
        async with svc.engine_turn[user.id if user else chat.id]:  # a flood queues behind itself, not others
            answer = await asyncio.to_thread(svc.engine.answer, resolved)
    finally:
        typing.answered()
    payload = answer.to_dict()
    for c, cite in zip(payload["citations"], answer.citations):  # the date is cited with the title
        c.setdefault("date", cite.passage.date)
    if answer.answered:
        ctx.chat_data["last_question"] = resolved
    answer_id = svc.state.log_question(chat.id, user.id if user else 0, question, payload)
    blocks = answer_blocks(payload, svc.engine.covered_places())
    messages = split_messages(blocks)
    markup = _answer_buttons(answer_id, payload) if answer.answered else None
    for i, text in enumerate(messages):
        await reply_html(update, text, markup if i == len(messages) - 1 else None)


def _answer_buttons(answer_id: int, payload: dict) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton("更多来源", callback_data=f"more:{answer_id}"),
           InlineKeyboardButton("完整段落", callback_data=f"full:{answer_id}")]
    return InlineKeyboardMarkup([row, [InlineKeyboardButton("👍", callback_data=f"fb:{answer_id}:1"),
                                       InlineKeyboardButton("👎", callback_data=f"fb:{answer_id}:-1")]])


async def private_text(update: Update, ctx: Ctx) -> None:
    await answer_question(update, ctx, update.effective_message.text or "")


async def ask_command(update: Update, ctx: Ctx) -> None:
    await answer_question(update, ctx, " ".join(ctx.args or []))


async def group_text(update: Update, ctx: Ctx) -> None:
    """Answer mentions of the bot and replies to its messages; stay silent otherwise."""
    msg, me = update.effective_message, ctx.bot
    reply = msg.reply_to_message
    mentioned = any(v.lower() == f"@{me.username}".lower()
                    for v in msg.parse_entities(["mention"]).values()) if me.username else False
    if not mentioned and not (reply and reply.from_user and reply.from_user.id == me.id):
        return
    text = msg.text or ""
    if me.username:
        text = re.sub(rf"@{re.escape(me.username)}\b", " ", text, flags=re.IGNORECASE)
    await answer_question(update, ctx, text)


async def non_text(update: Update, ctx: Ctx) -> None:
    await update.effective_message.reply_text(NON_TEXT)


async def callback(update: Update, ctx: Ctx) -> None:
    """Buttons under answers; stale or tampered data gets a short notice, nothing else."""
    svc, q = services(ctx), update.callback_query
    parts = (q.data or "").split(":")
    try:
        kind, answer_id = parts[0], int(parts[1])
        if not 0 <= answer_id < 2**62:
            raise ValueError(answer_id)
    except (IndexError, ValueError):
        await q.answer("这个按钮已失效。", show_alert=False)
        return
    if kind == "announce":
        await confirm_announcement(update, ctx, parts)
        return
    payload = svc.state.answer_payload(answer_id)
    if payload is None or kind not in ("more", "full", "fb") or (kind == "fb" and parts[-1] not in ("1", "-1")):
        await q.answer("这个按钮已失效，请重新提问。")
        return
    if kind == "fb":
        vote = 1 if parts[-1] == "1" else -1
        svc.state.feedback(answer_id, q.from_user.id, vote)
        await q.answer("谢谢反馈！" if vote > 0 else "谢谢，我们会改进。")
        return
    await q.answer()
    cites = payload.get("citations", [])
    if kind == "more":
        blocks = [citation_block(c) for c in cites[3:]] or ["没有更多来源了。"]
    else:
        blocks = [citation_block(c, full=True) for c in cites[:1]] or ["没有段落。"]
    for text in split_messages(blocks):
        await send_html(ctx.bot, q.message.chat.id, text, disable_web_page_preview=True,
                        reply_to_message_id=q.message.message_id)


async def chat_member(update: Update, ctx: Ctx) -> None:
    cm = update.my_chat_member
    if cm.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        services(ctx).state.group_seen(cm.chat.id, cm.chat.title or "", cm.new_chat_member.status)
        log.info("group %s (%s): bot is now %s", cm.chat.id, cm.chat.title, cm.new_chat_member.status)


async def _group_admin(update: Update, ctx: Ctx) -> bool:
    chat, user = update.effective_chat, update.effective_user
    if chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
        await update.effective_message.reply_text("订阅公告请在群里使用这个命令。")
        return False
    member = await ctx.bot.get_chat_member(chat.id, user.id)
    if member.status not in ("administrator", "creator"):
        log.warning("refused %s from non-admin user %s in chat %s", update.effective_message.text, user.id, chat.id)
        await update.effective_message.reply_text("只有群管理员可以订阅或退订公告。", do_quote=True)
        return False
    return True


async def subscribe(update: Update, ctx: Ctx) -> None:
    if await _group_admin(update, ctx):
        chat = update.effective_chat
        services(ctx).state.group_seen(chat.id, chat.title or "", "member")
        services(ctx).state.subscribe(chat.id)
        await update.effective_message.reply_text("已订阅方案公告。", do_quote=True)


async def unsubscribe(update: Update, ctx: Ctx) -> None:
    if await _group_admin(update, ctx):
        services(ctx).state.unsubscribe(update.effective_chat.id)
        await update.effective_message.reply_text("已退订方案公告。", do_quote=True)


async def error_handler(update: object, ctx: Ctx) -> None:
    if update is None and isinstance(ctx.error, NetworkError):  # polling hiccup; PTB keeps polling
        log.warning("getUpdates failed, polling again: %s", ctx.error)
        return
    log.error("update failed: %s", ctx.error, exc_info=ctx.error)
    if isinstance(update, Update) and update.effective_chat:
        try:
            await ctx.bot.send_message(update.effective_chat.id, "抱歉，处理这条消息时出错了，请稍后再试。")
        except TelegramError:
            pass
