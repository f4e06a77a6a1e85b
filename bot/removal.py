"""Bot admins list the documents with /docs and take one out with /remove: a confirm button, the
files moved to the archive folder (recoverable), the rebuild; if it fails, the files go back."""
from __future__ import annotations

import asyncio
import html
import logging
import uuid
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType

from index import docstore
from index.intake import Rejected

from . import admin
from .common import Ctx, reply_html, services
from .desk import NOTHING_CHANGED, Pending, build, busy_reason, desk, who
from .render import split_messages

log = logging.getLogger(__name__)


async def docs_command(update: Update, ctx: Ctx) -> None:
    if await admin.refuse_admin(update, ctx, "docs"):
        return
    svc, e = services(ctx), html.escape
    docs = sorted(svc.engine.documents(), key=lambda d: d["doc_id"])
    blocks = [f"<b>文档库：{len(docs)} 个文档</b>（移除：/remove id）"]
    for d in docs:
        meta = docstore.read_sidecar(Path(d.get("path", ""))) if d.get("path") else {}
        by = meta.get("added_by") or "预置"
        blocks.append(f"<code>{e(d['doc_id'])}</code>\n《{e(d['title'])}》 · {e(d.get('date') or '日期未知')} · "
                      f"{d.get('passages', 0)} 段 · 添加：{e(by)}")
    for text in split_messages(blocks):
        await reply_html(update, text)


async def remove_command(update: Update, ctx: Ctx) -> None:
    if await admin.refuse_admin(update, ctx, "remove"):
        return
    if update.effective_chat.type != ChatType.PRIVATE:
        await update.effective_message.reply_text("请在与我的私聊中使用 /remove。")
        return
    svc = services(ctx)
    doc_id = " ".join(ctx.args or []).strip()
    if not doc_id:
        await update.effective_message.reply_text("用法：/remove 文档id（用 /docs 查看 id）")
        return
    docs = {d["doc_id"]: d for d in svc.engine.documents()}
    if doc_id not in docs or not docstore.doc_files(svc.settings.docs_dir, doc_id):
        await update.effective_message.reply_text(f"没有 id 为 {doc_id[:80]} 的文档，用 /docs 查看。\n{NOTHING_CHANGED}")
        return
    if len(docs) <= 1:
        await update.effective_message.reply_text(f"这是文档库里唯一的文档，移除后就没有可回答的内容了，不能移除。\n{NOTHING_CHANGED}")
        return
    busy = busy_reason(ctx)
    if busy:
        await update.effective_message.reply_text(f"❌ {busy}\n{NOTHING_CHANGED}")
        return
    key = uuid.uuid4().hex[:12]
    d = docs[doc_id]
    desk(ctx).slot = Pending(key, "remove", update.effective_user.id, who(update), d["title"], doc_id=doc_id)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("确认移除", callback_data=f"rm:{key}:ok"),
                                    InlineKeyboardButton("取消", callback_data=f"rm:{key}:no")]])
    await reply_html(update, f"移除《{html.escape(d['title'])}》（{html.escape(d.get('date') or '日期未知')}，"
                                f"{d.get('passages', 0)} 段）？\n文件会移到归档文件夹，可以恢复。", markup)


async def confirm_remove(update: Update, ctx: Ctx, entry: Pending) -> None:
    svc, q = services(ctx), update.callback_query
    await q.edit_message_text(f"正在移除《{entry.title}》…")
    try:
        archived = await asyncio.to_thread(docstore.archive, svc.settings.docs_dir, entry.doc_id,
                                           svc.settings.archive_dir)
    except (Rejected, OSError) as exc:
        await q.edit_message_text(f"❌ 移除失败：{exc}\n{NOTHING_CHANGED}")
        return
    log.info("document %s archived to %s by %s", entry.doc_id, archived, entry.who)
    try:
        report = await build(ctx, q.message, "移除中")
    except Exception as exc:
        log.error("rebuild after removing %s failed: %s", entry.doc_id, exc)
        await asyncio.to_thread(docstore.restore, archived, svc.settings.docs_dir)
        await q.edit_message_text(f"❌ 移除失败，文件已放回，旧索引继续服务。\n错误：{exc}")
        return
    await q.edit_message_text(f"✅ 已移除《{entry.title}》，不再引用。\n归档到：{archived}\n"
                              f"索引版本 {report.version}，共 {report.passages} 段")
