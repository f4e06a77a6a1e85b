"""The one document operation in flight (an upload or a removal), from receipt until it is
confirmed, cancelled or expires: what bot/uploads.py and bot/removal.py share."""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from telegram import Update

from index import intake

from . import admin
from .common import Ctx, services

log = logging.getLogger(__name__)
PENDING_TTL = 15 * 60  # seconds an unconfirmed upload/removal holds the slot
NOTHING_CHANGED = "没有做任何改动。"


@dataclass
class Pending:
    key: str
    kind: str  # "upload" or "remove"
    user_id: int
    who: str
    title: str
    created: float = field(default_factory=time.monotonic)
    info: intake.Inspection | None = None
    path: Path | None = None  # the checked upload, waiting in var/incoming
    doc_id: str = ""
    checking: bool = False  # still downloading/checking: no buttons yet
    confirmed: bool = False  # the confirm button was pressed: a second press does nothing

    def describe(self) -> str:
        what = "正在检查" if self.checking else "等待确认"
        verb = "上传" if self.kind == "upload" else "移除"
        return f"{self.who} {verb}的《{self.title}》（{what}）"


class Desk:
    """The one in-flight document operation."""

    def __init__(self) -> None:
        self.slot: Pending | None = None

    def current(self) -> Pending | None:
        if self.slot and not self.slot.checking and time.monotonic() - self.slot.created > PENDING_TTL:
            log.info("pending %s %s expired", self.slot.kind, self.slot.key)
            self.release(self.slot)
        return self.slot

    def release(self, entry: Pending) -> None:
        if self.slot is entry:
            self.slot = None
        if entry.path is not None:
            shutil.rmtree(entry.path.parent, ignore_errors=True)


def desk(ctx: Ctx) -> Desk:
    return ctx.application.bot_data.setdefault("uploads", Desk())


def who(update: Update) -> str:
    u = update.effective_user
    return f"{u.full_name} ({u.id})" if u else "?"


def rebuilding(ctx: Ctx) -> bool:
    return admin.reindex_lock.locked() or services(ctx).engine.building


def busy_reason(ctx: Ctx) -> str | None:
    if rebuilding(ctx):
        return "正在重建索引，请等它完成后再发送。"
    current = desk(ctx).current()
    if current:
        return f"另一个文档操作正在进行：{current.describe()}。请等它确认或取消后再发送。"
    return None


async def build(ctx: Ctx, status, label: str):
    """engine.build off the event loop, with the status message edited as it goes."""
    return await admin.build_with_progress(services(ctx), status, label)
