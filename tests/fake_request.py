"""In-process Bot API for handler tests: a PTB request object that answers like Telegram and
records every call, plus a harness that builds the real Application via bot.app.build_application.

The request is injected by handing build_application an ApplicationBuilder subclass whose
_build_request returns our object (bot/ is not modified). Sent texts are checked the way Telegram
does: HTML that Telegram would reject, empty or over-long text answers 400, which PTB turns into
BadRequest, which the tests see through the error spy.
"""
from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from telegram import Update
from telegram.ext import Application, ApplicationBuilder
from telegram.request import BaseRequest, RequestData

from telegram_html import problems

TOKEN = "123:ABC"
BOT_ID, BOT_USERNAME = 7000001, "planbot_test_bot"
ADMIN_ID = 42
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "planbot", "username": BOT_USERNAME,
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
_ADMIN_RIGHTS = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages",
                 "can_manage_video_chats", "can_restrict_members", "can_promote_members", "can_change_info",
                 "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories")
TEXT_METHODS = {"sendMessage": 4096, "editMessageText": 4096}


@dataclass
class Call:
    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))


class RecordingRequest(BaseRequest):
    """Answers Bot API methods without a network; `calls` keeps (method, decoded params)."""

    def __init__(self, chat_admins: set[int] = frozenset()):
        self.calls: list[Call] = []
        self.chat_admins = set(chat_admins)  # users that getChatMember reports as "administrator"
        self._message_ids = itertools.count(5001)

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=None, write_timeout=None, connect_timeout=None, pool_timeout=None):
        api = url.rsplit("/", 1)[-1]
        params = json.loads(json.dumps(request_data.parameters)) if request_data else {}
        self.calls.append(Call(api, params))
        try:
            result = self._answer(api, params)
        except _ApiError as err:
            body = {"ok": False, "error_code": 400, "description": f"Bad Request: {err}"}
            return 400, json.dumps(body).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _message(self, params: dict, message_id: int | None = None) -> dict:
        chat_id = int(params["chat_id"])
        chat = ({"id": chat_id, "type": "private", "first_name": "user"} if chat_id > 0
                else {"id": chat_id, "type": "supergroup", "title": "group"})
        msg = {"message_id": message_id or next(self._message_ids), "date": int(time.time()),
               "chat": chat, "from": BOT_USER, "text": params.get("text", "")}
        if params.get("reply_markup"):
            msg["reply_markup"] = params["reply_markup"]
        return msg

    def _answer(self, api: str, p: dict) -> Any:
        if api in TEXT_METHODS:
            text = str(p.get("text", ""))
            if not text.strip():
                raise _ApiError("message text is empty")
            if len(text) > TEXT_METHODS[api]:
                raise _ApiError("message is too long")
            if p.get("parse_mode") == "HTML" and (bad := problems(text)):
                raise _ApiError(f"can't parse entities: {bad[0]}")
        if api == "getMe":
            return BOT_USER
        if api == "sendMessage":
            return self._message(p)
        if api == "editMessageText":
            return True if "inline_message_id" in p else self._message(p, int(p["message_id"]))
        if api == "answerCallbackQuery":
            if len(str(p.get("text", ""))) > 200:
                raise _ApiError("MESSAGE_TOO_LONG")
            return True
        if api in ("sendChatAction", "setMyCommands", "deleteWebhook", "deleteMyCommands"):
            return True
        if api == "getChatMember":
            user = {"id": int(p["user_id"]), "is_bot": False, "first_name": "member"}
            if int(p["user_id"]) in self.chat_admins:
                return {"status": "administrator", "user": user, **{k: k != "is_anonymous" for k in _ADMIN_RIGHTS}}
            return {"status": "member", "user": user}
        raise _ApiError(f"method {api} is not faked")

    # -- views for assertions ---------------------------------------------------
    def of(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.of("sendMessage", "editMessageText")]


class _ApiError(Exception):
    pass


def bot_settings(var_dir: Path, state_db: Path, **overrides):
    from bot.config import BotSettings

    return BotSettings(telegram_token=TOKEN, admin_ids=[ADMIN_ID], var_dir=var_dir,
                       docs_dir=Path(__file__).resolve().parents[1] / "data" / "docs", state_db=state_db,
                       **overrides)


def make_app(engine, settings, state, request: RecordingRequest | None = None) -> tuple[Application, RecordingRequest]:
    """The production Application (build_application) talking to a RecordingRequest."""
    import bot.app as bot_app

    request = request or RecordingRequest()
    builder = type("RecordingBuilder", (ApplicationBuilder,), {"_build_request": lambda self, get_updates: request})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bot_app, "ApplicationBuilder", builder)
        app = bot_app.build_application(settings, engine, state)
    return app, request


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def entities(text: str) -> list[dict]:
    """The entities Telegram attaches: a leading bot_command and @mentions (UTF-16 offsets)."""
    out = []
    if m := re.match(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?", text):
        out.append({"type": "bot_command", "offset": 0, "length": _utf16(m.group())})
    for m in re.finditer(r"(?<![A-Za-z0-9_])@[A-Za-z][A-Za-z0-9_]{4,31}", text):
        out.append({"type": "mention", "offset": _utf16(text[:m.start()]), "length": _utf16(m.group())})
    return out


def user(uid: int) -> dict:
    return {"id": uid, "is_bot": False, "first_name": f"u{uid}", "language_code": "zh-hans"}


@dataclass
class Harness:
    app: Application
    request: RecordingRequest
    state: Any
    errors: list[BaseException] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def services(self):
        return self.app.bot_data["services"]

    def message(self, text: str | None = "", uid: int = 1001, chat_id: int | None = None,
                **extra) -> dict:
        """A user message dict; chat_id < 0 makes it a supergroup message."""
        chat_id = uid if chat_id is None else chat_id
        chat = ({"id": chat_id, "type": "private", "first_name": f"u{uid}"} if chat_id > 0
                else {"id": chat_id, "type": "supergroup", "title": "测试群"})
        msg = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat, "from": user(uid)}
        if text is not None:
            msg["text"] = text
            if ents := entities(text):
                msg["entities"] = ents
        msg.update(extra)
        return msg

    async def feed(self, update: dict) -> None:
        update = {"update_id": next(self._ids), **update}
        await self.app.process_update(Update.de_json(update, self.app.bot))

    async def send(self, text: str | None, uid: int = 1001, chat_id: int | None = None, edited: bool = False,
                   **extra) -> list[Call]:
        """Deliver a message; returns the Bot API calls it caused."""
        before = len(self.request.calls)
        msg = self.message(text, uid, chat_id, **extra)
        if edited:
            msg["edit_date"] = msg["date"] + 5
        await self.feed({"edited_message" if edited else "message": msg})
        return self.request.calls[before:]

    async def press(self, data: str | None, uid: int = 1001, chat_id: int | None = None,
                    message: dict | None = None) -> list[Call]:
        """Press an inline button whose callback_data is `data` under a bot message."""
        before = len(self.request.calls)
        chat_id = uid if chat_id is None else chat_id
        message = message or {**self.message("答：…", BOT_ID, chat_id), "from": BOT_USER}
        query = {"id": f"cq{next(self._ids)}", "from": user(uid), "chat_instance": "ci", "message": message}
        if data is not None:
            query["data"] = data
        await self.feed({"callback_query": query})
        return self.request.calls[before:]


@pytest_asyncio.fixture
async def make_bot(doc_engine, tmp_path):
    """Factory: `await make_bot(**settings_overrides)` -> initialised Harness on the session engine."""
    from bot.state import State

    started: list[Harness] = []

    async def factory(chat_admins=(), state_db: Path | None = None, **overrides) -> Harness:
        state_db = state_db or tmp_path / f"state{len(started)}.db"
        settings = bot_settings(doc_engine.settings.var_dir, state_db, **overrides)
        state = State(settings.state_path)
        app, request = make_app(doc_engine, settings, state, RecordingRequest(set(chat_admins)))
        harness = Harness(app, request, state)

        async def spy(update, ctx):
            harness.errors.append(ctx.error)

        app.add_error_handler(spy)
        await app.initialize()
        request.calls.clear()
        started.append(harness)
        return harness

    yield factory
    for harness in started:
        await harness.app.shutdown()


@pytest_asyncio.fixture
async def bot(make_bot) -> Harness:
    return await make_bot()
