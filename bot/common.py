"""What the handler modules share: the Services object in bot_data, the admin check and HTML
replies that fall back to plain text when Telegram rejects the markup."""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque

from telegram import Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from .render import to_plain

log = logging.getLogger(__name__)
Ctx = ContextTypes.DEFAULT_TYPE


def services(ctx: Ctx):
    return ctx.application.bot_data["services"]


def is_admin(ctx: Ctx, user_id: int | None) -> bool:
    return user_id is not None and user_id in services(ctx).settings.admin_ids


def html_rejected(exc: Exception) -> bool:
    """Telegram refused the message's HTML ("Can't parse entities: ...")."""
    return isinstance(exc, BadRequest) and "parse entities" in str(exc).lower()


async def reply_html(update: Update, text: str, markup=None):
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
