"""One small async function per update kind; wiring lives in bot/app.py."""
from __future__ import annotations

import asyncio
import html
import logging
import re
import time
import uuid
from collections import defaultdict, deque

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import ContextTypes

from index.followup import resolve

from .indicator import Typing
from .render import answer_blocks, citation_block, split_messages, to_plain

log = logging.getLogger(__name__)
Ctx = ContextTypes.DEFAULT_TYPE

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


def services(ctx: Ctx):
    return ctx.application.bot_data["services"]


def is_admin(ctx: Ctx, user_id: int | None) -> bool:
    return user_id is not None and user_id in services(ctx).settings.admin_ids


def html_rejected(exc: Exception) -> bool:
    """Telegram refused the message's HTML ("Can't parse entities: ...")."""
    return isinstance(exc, BadRequest) and "parse entities" in str(exc).lower()


async def _reply_html(update: Update, text: str, markup=None):
    kw = dict(reply_markup=markup, disable_web_page_preview=True,
              do_quote=update.effective_chat.type != ChatType.PRIVATE)
    try:
        return await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML, **kw)
    except BadRequest as exc:
        if not html_rejected(exc):
            raise
        log.warning("Telegram rejected a reply's HTML (%s); resending it as plain text", exc)
        return await update.effective_message.reply_text(to_plain(text), **kw)


async def send_html(bot, chat_id: int, text: str, **kw):
    """send_message with parse_mode HTML, resent as plain text if Telegram rejects the HTML."""
    try:
        return await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, **kw)
    except BadRequest as exc:
        if not html_rejected(exc):
            raise
        log.warning("Telegram rejected a message's HTML (%s); resending it as plain text", exc)
        return await bot.send_message(chat_id, to_plain(text), **kw)


async def start(update: Update, ctx: Ctx) -> None:
    await update.effective_message.reply_text(HELP, disable_web_page_preview=True)


async def sources(update: Update, ctx: Ctx) -> None:
    docs = services(ctx).engine.documents()
    lines = [f"• {html.escape(d['title'])}（{html.escape(d.get('date') or '日期未知')}）" for d in docs]
    await _reply_html(update, "已收录的文档：\n" + ("\n".join(lines) or "（暂无）"))


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
        await _reply_html(update, text, markup if i == len(messages) - 1 else None)


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


async def refuse_admin(update: Update, ctx: Ctx, command: str) -> bool:
    """True (and a refusal sent, attempt logged) when the sender is not a bot admin."""
    user = update.effective_user
    if is_admin(ctx, user.id if user else None):
        return False
    log.warning("refused /%s from non-admin user %s in chat %s", command, user.id if user else None,
                update.effective_chat.id if update.effective_chat else None)
    if update.callback_query:
        await update.callback_query.answer("只有机器人管理员可以这样做。", show_alert=True)
    elif update.effective_message:
        await update.effective_message.reply_text("这个命令只对机器人管理员开放。")
    return True


ADMIN_COMMANDS = ("reindex", "announce", "stats", "docs", "remove")


async def edited_command(update: Update, ctx: Ctx) -> None:
    """A message edited into an admin command: non-admins get the usual refusal (and log line);
    admins are asked to send it again, so an edit never re-runs /reindex or an announcement."""
    m = re.match(r"/(\w+)(?:@(\w+))?", update.effective_message.text or "")
    if not m or m.group(1).lower() not in ADMIN_COMMANDS:
        return
    if m.group(2) and m.group(2).lower() != (ctx.bot.username or "").lower():
        return  # addressed to another bot
    command = m.group(1).lower()
    if await refuse_admin(update, ctx, f"{command} (edited)"):
        return
    log.info("ignored edited /%s from admin %s", command, update.effective_user.id)
    await update.effective_message.reply_text(f"编辑过的消息不会执行命令，请重新发送 /{command}。")


async def announce(update: Update, ctx: Ctx) -> None:
    if await refuse_admin(update, ctx, "announce"):
        return
    text = " ".join(ctx.args or []).strip()
    if not text:
        await update.effective_message.reply_text("用法：/announce 公告内容")
        return
    key = uuid.uuid4().hex[:12]
    ctx.bot_data.setdefault("pending_announcements", {})[key] = (update.effective_user.id, text)
    n = len(services(ctx).state.subscribers())
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(f"确认发送到 {n} 个群", callback_data=f"announce:0:{key}"),
                                    InlineKeyboardButton("取消", callback_data=f"announce:0:{key}:cancel")]])
    await _reply_html(update, f"<b>公告预览</b>\n\n{html.escape(text)}", markup)


async def confirm_announcement(update: Update, ctx: Ctx, parts: list[str]) -> None:
    q = update.callback_query
    if await refuse_admin(update, ctx, "announce (button)"):
        return
    pending = ctx.bot_data.get("pending_announcements", {})
    key = parts[2] if len(parts) > 2 else ""
    entry = pending.pop(key, None)
    if entry is None or entry[0] != q.from_user.id:
        await q.answer("这个公告已处理或已失效。")
        return
    await q.answer()
    if parts[-1] == "cancel":
        await q.edit_message_text("公告已取消。")
        return
    await q.edit_message_text("正在发送公告…")
    ok, failed = await broadcast(ctx, entry[1])
    summary = f"公告已发送到 {ok} 个群。" + (f"\n失败 {len(failed)} 个：{', '.join(map(str, failed))}" if failed else "")
    await q.edit_message_text(summary)


async def broadcast(ctx: Ctx, text: str) -> tuple[int, list[int]]:
    """Post to every subscribed group; AIORateLimiter paces; a group that removed the bot is dropped."""
    state, ok, failed = services(ctx).state, 0, []
    for chat_id in state.subscribers():
        try:
            await send_html(ctx.bot, chat_id, f"📢 {html.escape(text)}")
            ok += 1
        except Forbidden:
            failed.append(chat_id)
            state.group_seen(chat_id, "", "kicked")
        except (BadRequest, TelegramError) as exc:
            failed.append(chat_id)
            if "chat not found" in str(exc).lower():
                state.unsubscribe(chat_id)
    return ok, failed


async def stats(update: Update, ctx: Ctx) -> None:
    if await refuse_admin(update, ctx, "stats"):
        return
    svc = services(ctx)
    s, m = svc.state.stats(), svc.engine.manifest
    await update.effective_message.reply_text(
        f"提问 {s['questions']}，拒答 {s['refusals']}，👍 {s['thumbs_up']} / 👎 {s['thumbs_down']}\n"
        f"群 {s['groups']}，订阅 {s['subscribers']}\n"
        f"索引版本 {svc.engine.version}（{m.get('passage_count', 0)} 段，建于 {m.get('built_at', '?')}）")


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


_reindex_lock = asyncio.Lock()


async def reindex(update: Update, ctx: Ctx) -> None:
    if await refuse_admin(update, ctx, "reindex"):
        return
    if update.effective_chat.type != ChatType.PRIVATE:
        await update.effective_message.reply_text("请在与我的私聊中使用 /reindex。")
        return
    svc = services(ctx)
    if _reindex_lock.locked() or svc.engine.building:
        await update.effective_message.reply_text("已有一个重建在进行中，请等它完成。")
        return
    async with _reindex_lock:
        status = await update.effective_message.reply_text("开始重建索引…")
        try:
            report = await build_with_progress(svc, status, "重建中")
        except Exception as exc:
            log.error("reindex failed: %s", exc)
            await status.edit_text(f"重建失败，旧索引继续服务。\n错误：{exc}")
            return
        lines = [f"重建完成：版本 {report.version}", f"新增 {len(report.added)}，修改 {len(report.changed)}，"
                 f"删除 {len(report.removed)}，未变 {len(report.unchanged)}",
                 f"共 {report.passages} 段，用时 {report.seconds:.1f} 秒"]
        if report.failures:
            lines.append("无法读取（已跳过）：" + "；".join(f"{k}: {v}" for k, v in report.failures.items()))
        await status.edit_text("\n".join(lines))
        if svc.settings.announce_on_reindex and (report.added or report.changed):
            docs = {d["doc_id"]: d for d in svc.engine.documents()}
            items = [f"{docs[i]['title']}（{docs[i].get('date') or '日期未知'}）" for i in report.added + report.changed if i in docs]
            await broadcast(ctx, "文档库已更新：\n" + "\n".join(items))


async def build_with_progress(svc, status, label: str):
    """engine.build off the event loop, the status message edited as it goes. No lock to wait
    for: the embedder encodes one passage per call on the free cores and steps aside at the next
    passage while questions are being encoded (index/embedder.py)."""
    progress = {"done": 0, "total": 0}

    def on_progress(stage: str, done: int, total: int) -> None:
        progress.update(done=done, total=total)

    task = asyncio.create_task(asyncio.to_thread(svc.engine.build, on_progress))
    last = ""
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        text = f"{label}：已嵌入 {progress['done']}/{progress['total']} 段…" if progress["total"] else f"{label}：读取文档…"
        if text != last and not task.done():
            try:
                await status.edit_text(text)
                last = text
            except TelegramError:
                pass
    return task.result()


class Services:
    """What handlers share: settings, engine, state, per-user rate windows."""

    def __init__(self, settings, engine, state):
        self.settings, self.engine, self.state = settings, engine, state
        self.recent: dict[int, deque] = defaultdict(deque)
        self.warned: dict[int, float] = {}  # user -> when they were last told to slow down
        # one engine call per user at a time, so a burst from one user cannot fill the thread pool
        self.engine_turn: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.in_flight = 0  # questions being answered (looked up or waiting to be sent)

    FORGET_AT = 10_000  # users tracked before idle ones are swept

    def forget_idle(self, now: float) -> None:
        """Per-user bookkeeping for users quiet for a minute goes, so it does not grow forever."""
        for uid in [u for u, w in self.recent.items() if not w or now - w[-1] > 60]:
            del self.recent[uid]
            if uid in self.engine_turn and not self.engine_turn[uid].locked():
                del self.engine_turn[uid]
            if now - self.warned.get(uid, float("-inf")) >= 60:
                self.warned.pop(uid, None)
