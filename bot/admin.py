"""Bot-admin commands: /announce (with a confirmation button), /stats, /reindex with a progress
message, and the refusal every non-admin gets (logged). Wiring lives in bot/app.py."""
from __future__ import annotations

import asyncio
import html
import logging
import re
import uuid

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError

from .common import Ctx, is_admin, reply_html, send_html, services

log = logging.getLogger(__name__)


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
    await reply_html(update, f"<b>公告预览</b>\n\n{html.escape(text)}", markup)


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


reindex_lock = asyncio.Lock()  # one /reindex, upload or removal rebuild at a time


async def reindex(update: Update, ctx: Ctx) -> None:
    if await refuse_admin(update, ctx, "reindex"):
        return
    if update.effective_chat.type != ChatType.PRIVATE:
        await update.effective_message.reply_text("请在与我的私聊中使用 /reindex。")
        return
    svc = services(ctx)
    if reindex_lock.locked() or svc.engine.building:
        await update.effective_message.reply_text("已有一个重建在进行中，请等它完成。")
        return
    async with reindex_lock:
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
