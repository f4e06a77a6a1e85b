"""The typing indicator under PTB's AIORateLimiter.

Every Bot API call counts against the bot-wide 30 requests/s (Telegram's limit for bulk messages),
so a typing action for an answer that arrives a moment later doubles what a burst of questions
costs and halves how fast it is answered. Most answers take tens of milliseconds: the indicator is
shown only for an answer that is not ready after `after` seconds (PLANBOT_TYPING_AFTER), and not
while the bot is busy: with more answers in flight than a second of that budget, the answers
themselves are what the budget is for (a burst of 100 questions would otherwise spend ~70 of its
requests on typing actions while the answers wait their turn on the CPU).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from telegram.constants import ChatAction
from telegram.error import TelegramError

log = logging.getLogger(__name__)


class Typing:
    BUSY = 30  # answers in flight: one second of Telegram's 30 requests/s (AIORateLimiter's default)
    _tasks: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks

    def __init__(self, busy: Callable[[], bool] | None = None) -> None:
        self.sending = False
        self.task: asyncio.Task | None = None
        self.busy = busy

    @classmethod
    async def start(cls, bot, chat_id: int, after: float, busy: Callable[[], bool] | None = None) -> "Typing":
        """after > 0: show it then, unless `answered()` came first or `busy()` says the bot is
        sending at its limit; after == 0: show it now, before the answer is looked up (one more
        request for every answer)."""
        typing = cls(busy)
        if after <= 0:
            await typing._show(bot, chat_id)
        else:
            typing.task = asyncio.create_task(typing._show(bot, chat_id, after))
            cls._tasks.add(typing.task)
            typing.task.add_done_callback(cls._tasks.discard)
        return typing

    async def _show(self, bot, chat_id: int, after: float = 0.0) -> None:
        if after:
            await asyncio.sleep(after)
            if self.busy is not None and self.busy():
                return
        self.sending = True
        try:  # a courtesy: failing to show it must not lose the answer
            await bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            log.info("typing indicator failed: %s", exc)

    def answered(self) -> None:
        """The answer is ready: a pending indicator is dropped; one already on its way finishes."""
        if self.task is not None and not self.sending:
            self.task.cancel()
