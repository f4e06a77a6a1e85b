"""Delivery guarantees on top of PTB: flaky Bot API calls are retried, and every update is
answered once even across a crash.

PTB's Updater confirms a batch to Telegram (next getUpdates offset) as soon as it is queued, not
when it has been handled, so a crash loses confirmed-but-unanswered updates; Telegram redelivers
unconfirmed ones after a restart, which would answer them twice. Hence a journal in SQLite:
fetched updates are written *before* the Updater can confirm them, marked done after handling,
replayed on start-up if unfinished, and skipped if they arrive again.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Callable

from telegram import Update
from telegram.error import NetworkError, TimedOut
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes
from telegram.request import HTTPXRequest, RequestData

from .state import State

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({500, 502, 503, 504})  # server/gateway trouble: worth another try
JOURNAL_DAYS = 2.0  # Telegram keeps unconfirmed updates 24 h; older entries are dropped


def _endpoint(url: str) -> str:
    """The Bot API method name; the URL itself carries the token and must never be logged."""
    return url.rsplit("/", 1)[-1]


class RetryingRequest(HTTPXRequest):
    """Retries 5xx gateways, timeouts and dropped connections with bounded exponential back-off.

    429 is not retried here: AIORateLimiter honours its retry_after. A read timeout is ambiguous
    (Telegram may have run the call and lost only the response); we retry anyway because a
    lost answer is worse than a rare duplicate.
    """

    __slots__ = ("_retries", "_backoff", "_max_backoff")

    def __init__(self, *, retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._retries, self._backoff, self._max_backoff = retries, backoff, max_backoff

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=HTTPXRequest.DEFAULT_NONE,
                         write_timeout=HTTPXRequest.DEFAULT_NONE,
                         connect_timeout=HTTPXRequest.DEFAULT_NONE,
                         pool_timeout=HTTPXRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        attempt = functools.partial(super().do_request, url, method, request_data,
                                    read_timeout=read_timeout, write_timeout=write_timeout,
                                    connect_timeout=connect_timeout, pool_timeout=pool_timeout)
        delay = self._backoff
        for n in range(1, self._retries + 1):
            try:
                code, payload = await attempt()
                if code not in RETRY_STATUSES:
                    return code, payload
                reason = f"HTTP {code}"
            except (TimedOut, NetworkError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.warning("%s failed (%s); retry %d/%d in %.1fs", _endpoint(url), reason, n,
                        self._retries, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        return await attempt()  # the last try's outcome, error or not, is final


class JournalingRequest(HTTPXRequest):
    """The getUpdates connection: each fetched batch is journaled before PTB sees it, i.e.
    before the Updater's next call can confirm it to Telegram."""

    __slots__ = ("_journal",)

    def __init__(self, journal: Callable[[list[dict]], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self._journal = journal

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=HTTPXRequest.DEFAULT_NONE,
                         write_timeout=HTTPXRequest.DEFAULT_NONE,
                         connect_timeout=HTTPXRequest.DEFAULT_NONE,
                         pool_timeout=HTTPXRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url, method, request_data, read_timeout=read_timeout, write_timeout=write_timeout,
            connect_timeout=connect_timeout, pool_timeout=pool_timeout)
        if code == 200 and _endpoint(url) == "getUpdates":
            try:
                body = json.loads(payload)
            except ValueError:
                body = {}  # PTB reports the bad payload itself
            if isinstance(body, dict) and body.get("ok") and body.get("result"):
                self._journal(body["result"])
        return code, payload


class Inbox:
    """Exactly-once bookkeeping for polled updates. `gate` (group -1) admits an update id once
    per process and never once it is done; `done` (group 1) runs after the handler, also when
    it failed, so a poison update is not replayed forever. Updates that never went through
    the journal (fed to process_update directly) are admitted and not tracked."""

    PRUNE_EVERY = 1000

    def __init__(self, state: State) -> None:
        self.state = state
        self.active: set[int] = set()
        self._finished = 0

    async def gate(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        uid = update.update_id
        if uid in self.active or self.state.update_done(uid):
            log.info("update %s already handled or in progress: skipped", uid)
            raise ApplicationHandlerStop
        self.active.add(uid)

    async def done(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        self.state.finish_update(update.update_id)
        self.active.discard(update.update_id)
        self._finished += 1
        if self._finished % self.PRUNE_EVERY == 0:
            self.state.prune_updates(JOURNAL_DAYS * 86400)

    async def replay(self, app: Application) -> int:
        """Queue what the previous run fetched but never finished; call before polling starts."""
        self.state.prune_updates(JOURNAL_DAYS * 86400)
        pending, given_up = self.state.unfinished_updates()
        if given_up:
            log.warning("not replaying update(s) %s again: the previous run died handling them too",
                        given_up)
        for payload in pending:
            await app.update_queue.put(Update.de_json(payload, app.bot))
        if pending:
            log.info("replaying %d update(s) left unfinished by the previous run", len(pending))
        return len(pending)
