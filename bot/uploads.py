"""Bot admins add documents by sending them in private chat (/docs and /remove are bot/removal.py).
The checks themselves are index/intake.py; this is the Telegram side:
refusals before any download, the preview with 确认收录 / 取消, the atomic store, the rebuild
with a progress message, the announcement.

One document operation (upload or removal) is in flight at a time, from receipt until it is
confirmed, cancelled or expires; a second one, or one during /reindex, is refused with a reply
saying why. Nothing is written to the documents folder before the confirm button.
"""
from __future__ import annotations

import asyncio
import html
import logging
import time
import uuid
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError

from index import docstore, intake
from index.intake import Rejected

from . import admin, handlers as h
from .desk import NOTHING_CHANGED, Pending, build, busy_reason, desk, rebuilding, who
from .removal import confirm_remove
from .common import Ctx, is_admin, services

log = logging.getLogger(__name__)
NON_ADMIN = h.NON_TEXT + "\n（添加文档只对机器人管理员开放，文件没有下载。）"


async def _refuse(update: Update, problem: str, name: str = "") -> None:
    head = f"❌ 不能收录「{name}」：" if name else "❌ 不能收录："
    await update.effective_message.reply_text(f"{head}{problem}\n{NOTHING_CHANGED}")


# ----------------------------------------------------------------------------- upload
async def on_document(update: Update, ctx: Ctx) -> None:
    msg, user = update.effective_message, update.effective_user
    doc = msg.document
    svc = services(ctx)
    if not is_admin(ctx, user.id if user else None):
        log.warning("refused a document upload from non-admin user %s", user.id if user else None)
        await msg.reply_text(NON_ADMIN)
        return
    name = doc.file_name or ""
    limit = int(svc.settings.max_upload_mb * 2**20)
    try:
        if Path(name).suffix.lower() not in intake.SUFFIXES:
            raise Rejected(intake.unsupported_message(Path(name).suffix.lower()))
        if doc.file_size is not None and doc.file_size > limit:
            raise Rejected(f"文件有 {doc.file_size / 2**20:.1f} MB，超过上限 {svc.settings.max_upload_mb:g} MB。")
        if doc.file_size == 0:
            raise Rejected("文件是空的，没有内容可以收录。")
        caption_meta = intake.parse_caption(msg.caption)
    except Rejected as exc:
        await _refuse(update, str(exc), name)
        return
    busy = busy_reason(ctx)
    if busy:
        await _refuse(update, busy, name)
        return
    d = desk(ctx)
    key = uuid.uuid4().hex[:12]
    entry = Pending(key, "upload", user.id, who(update), name, checking=True)
    d.slot = entry
    work = svc.settings.incoming_dir / key
    entry.path = work / "_"  # so release() cleans the work folder whatever happens
    try:
        try:
            await ctx.bot.send_chat_action(msg.chat.id, ChatAction.TYPING)
        except TelegramError:
            pass
        try:
            tg_file = await ctx.bot.get_file(doc.file_id)
            data = bytes(await tg_file.download_as_bytearray())
        except TelegramError as exc:
            raise Rejected(f"无法从 Telegram 下载这个文件（{exc}）。") from None
        if len(data) > limit:
            raise Rejected(f"文件有 {len(data) / 2**20:.1f} MB，超过上限 {svc.settings.max_upload_mb:g} MB。")
        info, path = await asyncio.to_thread(intake.inspect, data, name, work, caption_meta,
                                             int(svc.settings.max_unpacked_mb * 2**20))
        dup = await asyncio.to_thread(docstore.find_duplicate, svc.settings.docs_dir, info.sha256,
                                        info.text_sha256)
        if dup is not None:
            raise Rejected(f"这个文件已经收录过了，标题是《{_title_of(ctx, dup)}》（id：{_doc_id_of(ctx, dup)}）。")
    except Rejected as exc:
        d.release(entry)
        await _refuse(update, str(exc), name)
        return
    except Exception as exc:  # a parser or the disk failing in a way the checks did not foresee
        d.release(entry)
        log.exception("checking upload %s failed", name)
        await _refuse(update, f"检查文件时出错（{type(exc).__name__}），请换一个版本再试。", name)
        return
    except BaseException:
        d.release(entry)
        raise
    entry.info, entry.path, entry.title, entry.checking = info, path, info.title, False
    entry.created = time.monotonic()
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("确认收录", callback_data=f"up:{key}:ok"),
                                    InlineKeyboardButton("取消", callback_data=f"up:{key}:no")]])
    await msg.reply_text(_preview(info), parse_mode=ParseMode.HTML, reply_markup=markup)


def _preview(info: intake.Inspection) -> str:
    e = html.escape
    lines = [f"<b>待收录文档预览</b>（{e(info.original_name)}）", f"标题：{e(info.title)}",
             f"日期：{e(info.date or '未知')}"]
    if info.outlet:
        lines.append(f"来源：{e(info.outlet)}")
    if info.url:
        lines.append(f"链接：{e(info.url)}")
    if info.pages:
        lines.append(f"页数：{info.pages}")
    lines.append(f"字数：{info.chars}")
    first = "\n".join(e(ln[:120]) for ln in info.first_lines)
    lines.append(f"开头：\n{first}")
    lines.append("\n确认后存入文档库并重建索引。标题、日期可在文件说明里写“标题：… / 日期：…”后重新发送。")
    return "\n".join(lines)


def _doc_id_of(ctx: Ctx, path: Path) -> str:
    for d in services(ctx).engine.documents():
        if Path(d.get("path", "")).name == path.name:
            return d["doc_id"]
    return path.stem


def _title_of(ctx: Ctx, path: Path) -> str:
    for d in services(ctx).engine.documents():
        if Path(d.get("path", "")).name == path.name:
            return d["title"]
    return docstore.read_sidecar(path).get("title") or path.stem


# ----------------------------------------------------------------------------- buttons
def is_button(data: object) -> bool:
    return isinstance(data, str) and data.startswith(("up:", "rm:"))


async def on_button(update: Update, ctx: Ctx) -> None:
    q = update.callback_query
    if not is_button(q.data):  # PTB hands empty data to every pattern handler
        await h.callback(update, ctx)
        return
    parts = q.data.split(":")
    if await admin.refuse_admin(update, ctx, "upload/remove (button)"):
        return
    d = desk(ctx)
    entry = d.current()
    if len(parts) != 3 or entry is None or entry.key != parts[1] or entry.checking or entry.confirmed \
            or entry.user_id != q.from_user.id or entry.kind != {"up": "upload", "rm": "remove"}.get(parts[0]):
        await q.answer("这个操作已处理或已失效。")
        return
    if parts[2] != "ok":
        d.release(entry)
        await q.answer()
        await q.edit_message_text("已取消，" + NOTHING_CHANGED)
        return
    if rebuilding(ctx):
        await q.answer("正在重建索引，请等它完成后再按确认。", show_alert=True)
        return
    entry.confirmed = True  # before any await: a double press must not run it twice
    await q.answer()
    try:
        async with admin.reindex_lock:
            if entry.kind == "upload":
                await _confirm_upload(update, ctx, entry)
            else:
                await confirm_remove(update, ctx, entry)
    finally:
        d.release(entry)


async def _confirm_upload(update: Update, ctx: Ctx, entry: Pending) -> None:
    svc, q, info = services(ctx), update.callback_query, entry.info
    status = q.message
    await q.edit_message_text(f"正在收录《{info.title}》…")
    docs_dir = svc.settings.docs_dir
    try:
        dup = await asyncio.to_thread(docstore.find_duplicate, docs_dir, info.sha256, info.text_sha256)
        if dup is not None:
            raise Rejected(f"这个文件已经收录过了，标题是《{_title_of(ctx, dup)}》。")
        stored = await asyncio.to_thread(docstore.store, entry.path, docs_dir, info, entry.who)
    except (Rejected, OSError) as exc:
        await q.edit_message_text(f"❌ 收录失败：{exc}\n{NOTHING_CHANGED}")
        return
    log.info("upload %s stored as %s by %s", info.original_name, stored.name, entry.who)
    try:
        report = await build(ctx, status, "收录中")
        if info.doc_id not in report.added + report.changed:
            raise RuntimeError(report.failures.get(stored.name) or "新文档没有进入索引")
    except Exception as exc:
        log.error("rebuild after upload of %s failed: %s", stored.name, exc)
        await asyncio.to_thread(docstore.unstore, stored)
        await q.edit_message_text(f"❌ 收录失败，旧索引继续服务，文件没有保存。\n错误：{exc}")
        return
    passages = next((d.get("passages", 0) for d in svc.engine.documents() if d["doc_id"] == info.doc_id), 0)
    example = await asyncio.to_thread(sample_question, svc.engine, info.doc_id, info)
    lines = [f"✅ 已收录《{info.title}》（{info.date or '日期未知'}）", f"id：{info.doc_id}，{passages} 段",
             f"索引版本 {report.version}，共 {report.passages} 段，用时 {report.seconds:.1f} 秒"]
    lines.append(f"现在可以问，例如：{example}" if example else "现在可以问与这份文档有关的问题。")
    await q.edit_message_text("\n".join(lines))
    if svc.settings.announce_on_reindex:
        await admin.broadcast(ctx, f"文档库新增：《{info.title}》（{info.date or '日期未知'}）")


def sample_question(engine, doc_id: str, info: intake.Inspection) -> str:
    """A question the index now answers from the new document: candidates from its title and
    first lines, each really asked; the first whose top citation is the new document wins."""
    import re

    candidates = [f"{info.title}的主要内容是什么"]
    for line in info.first_lines[1:] + info.first_lines[:1]:
        for clause in re.split(r"[。！？!?；;，,]", line):
            s = clause.strip(" ：:")
            if 8 <= len(s) <= 40:
                candidates.append(f"关于“{s}”，文件里怎么说？" if re.search(r"[\u4e00-\u9fff]", s)
                                  else f"What does it say about {s[0].lower() + s[1:]}?")
    for question in candidates[:10]:
        try:
            a = engine.answer(question)
        except Exception:
            continue
        if a.answered and a.citations and a.citations[0].passage.doc_id == doc_id:
            return question
    return ""


