"""A fake Telegram Bot API server for end-to-end tests of planbot.

The bot under test talks real HTTP to this peer (``PLANBOT_TELEGRAM_API_URL=peer.url``), so
PTB's request encoding, error mapping and long polling are exercised exactly as in production.
Standard library only, so the fixture works offline and in any venv.
"""
from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from functools import partialmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]
# User-visible strings: never coerce these to JSON/int/bool even if they look like it.
_TEXT_KEYS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "url", "title", "description",
    "short_description", "name", "question", "explanation", "inline_message_id", "action",
    "language_code", "emoji", "business_connection_id", "custom_title", "phone_number",
    "first_name", "last_name", "address", "query"})
_MEDIA_SENDS = {"sendphoto": "photo", "senddocument": "document", "sendvoice": "voice",
                "sendsticker": "sticker"}
_ADMIN_RIGHTS = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                 "can_restrict_members", "can_promote_members", "can_change_info",
                 "can_invite_users", "can_post_stories", "can_edit_stories",
                 "can_delete_stories")
_GIFT_TYPES = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
               "gifts_from_channels")
_COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?")
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9_]{3,32}")
_FAULTS = ("429", "502", "stall", "drop", "lost", "badhtml")


class _Server(ThreadingHTTPServer):
    """A listen backlog of 5 resets connections under a burst of concurrent bot requests."""

    request_queue_size = 128


class ApiError(Exception):
    """Raised by method handlers to produce a Telegram-style error response."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


def utf16_len(text: str) -> int:
    """Telegram entity offsets/lengths count UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


def compute_entities(text: str) -> list[Json]:
    """Entities Telegram would attach: a leading bot_command plus @mentions."""
    ents: list[Json] = []
    cmd = _COMMAND_RE.match(text)
    if cmd:
        ents.append({"type": "bot_command", "offset": 0, "length": utf16_len(cmd.group())})
    for m in _MENTION_RE.finditer(text):
        if not cmd or m.start() >= cmd.end():
            ents.append({"type": "mention", "offset": utf16_len(text[:m.start()]),
                         "length": utf16_len(m.group())})
    return ents


def _decode_value(key: str, value: Any) -> Any:
    """Undo form encoding: JSON objects/arrays, ints and booleans arrive as strings."""
    if not isinstance(value, str) or key in _TEXT_KEYS:
        return value
    if value[:1] in ("[", "{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, (dict, list)) else value
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return {"true": True, "false": False}.get(value, value)


def parse_params(query: str, content_type: str, body: bytes) -> Json:
    """Merge query-string and body parameters, whatever encoding the client chose."""
    params: Json = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    mime = content_type.split(";")[0].strip().lower()
    if mime == "application/json" and body.strip():
        params.update(json.loads(body))
    elif mime == "application/x-www-form-urlencoded":
        params.update({k: v[-1] for k, v in
                       parse_qs(body.decode("utf-8"), keep_blank_values=True).items()})
    elif mime == "multipart/form-data":  # files: {"filename", "content": bytes}
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        for part in BytesParser(policy=policy.HTTP).parsebytes(head + body).iter_parts():
            data, filename = part.get_payload(decode=True) or b"", part.get_filename()
            params[part.get_param("name", header="content-disposition")] = (
                {"filename": filename, "content": data} if filename else data.decode("utf-8"))
    return {k: _decode_value(k, v) for k, v in params.items()}


def media_object(kind: str, uid: str) -> Any:
    """Minimal photo/sticker/voice/document payloads carrying every field PTB requires."""
    base = {"file_id": f"{kind}-{uid}", "file_unique_id": f"u{kind}-{uid}", "file_size": 1234}
    return {
        "photo": [{**base, "width": 90, "height": 90},
                  {**base, "file_id": f"photo-{uid}-big", "width": 800, "height": 800}],
        "sticker": {**base, "width": 512, "height": 512, "is_animated": False,
                    "is_video": False, "type": "regular", "emoji": "👍"},
        "voice": {**base, "duration": 3, "mime_type": "audio/ogg"},
        "document": {**base, "file_name": "file.txt", "mime_type": "text/plain"},
    }[kind]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so after stop() no kept-alive socket lingers
    # and clients really see the outage.
    server: Any

    def do_POST(self) -> None:
        self.server.peer._serve(self)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass


class BotApiPeer:
    """In-process fake of api.telegram.org: scripts users, records every bot call."""

    def __init__(self, token: str, bot_username: str = "planbot_test_bot",
                 bot_id: int = 7000001) -> None:
        self.token, self.bot_username, self.bot_id = token, bot_username, bot_id
        self.stall_seconds: float = 30.0
        # Each call: method, params, time, content_type and then result / error / fault.
        self.calls: list[Json] = []
        self._cond = threading.Condition()  # RLock-based; guards all state below
        self._stopping = threading.Event()
        self._updates: list[Json] = []
        self._update_ids, self._cbq_ids = itertools.count(1), itertools.count(1)
        self._msg_ids: dict[int, itertools.count] = {}
        self._messages: dict[tuple[int, int], Json] = {}
        self._titles: dict[int, str] = {}
        self._users: dict[int, Json] = {}
        self._commands: dict[tuple[str, str], list[Json]] = {}
        self._admins: dict[int, list[int]] = {}
        # method -> queued (kind, retry_after, match); match(params) None = any call
        self._faults: dict[str, list[tuple[str, int, Callable[[Json], bool] | None]]] = {}
        self._server: ThreadingHTTPServer | None = None
        # uploaded files: file_id -> {"content", "file_path", "file_size", ...}
        self._files: dict[str, Json] = {}
        self._file_ids = itertools.count(1)
        # webhook mode: set by the bot's setWebhook; push_update then POSTs to it
        self.webhook: Json | None = None
        self.webhook_posts: list[tuple[int, int]] = []  # (update_id, HTTP status)

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._server, "peer not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def bot_user(self) -> Json:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Planbot",
                "username": self.bot_username}

    def start(self) -> BotApiPeer:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # stalled handlers must not delay stop()
        self._server.peer = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="botapi-peer", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; in-flight long polls return and stalled calls are dropped."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()  # release long polls
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> BotApiPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP layer
    def _serve(self, h: _Handler) -> None:
        url, ctype = urlsplit(h.path), h.headers.get("Content-Type", "")
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/bot([^/]+)/(\w+)", url.path)
        if self._stopping.is_set():
            return _drop(h)
        f = re.fullmatch(r"/file/bot([^/]+)/(.+)", unquote(url.path))  # PTB percent-encodes the ':'

        if f:
            return self._download(h, *f.groups())
        if not m:
            return _reply(h, 404, _error(404, "Not Found"))
        token, method = m.groups()
        call: Json = {"method": method, "params": parse_params(url.query, ctype, body),
                      "time": time.time(), "content_type": ctype}
        with self._cond:
            queue = self._faults.get(method.lower()) if token == self.token else None
            hit = next((i for i, f in enumerate(queue or ()) if f[2] is None or f[2](call["params"])),
                       None)
            fault = queue.pop(hit) if queue and hit is not None else None
            if token != self.token or fault:  # recorded now: these may never complete
                call.update({"error": 401} if token != self.token else {"fault": fault[0]})
                self.calls.append(call)
                self._cond.notify_all()
        if token != self.token:
            return _reply(h, 401, _error(401, "Unauthorized"))
        if fault:
            kind, retry_after, _ = fault
            if kind == "429":
                return _reply(h, 429, {**_error(429, f"Too Many Requests: retry after "
                                                     f"{retry_after}"),
                                       "parameters": {"retry_after": retry_after}})
            if kind == "badhtml":  # Telegram's answer to HTML it cannot parse
                return _reply(h, 400, _error(400, "Bad Request: can't parse entities: unsupported "
                                                  "start tag \"x\" at byte offset 0"))
            if kind == "502":
                return _reply(h, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                              "text/html")
            # stall: answer late (processed, response lost); lost: never processed at all
            if kind == "drop" or self._stopping.wait(self.stall_seconds) or kind == "lost":
                return _drop(h)
        try:
            result = self._dispatch(method.lower(), call["params"])
            outcome, payload, status = {"result": result}, {"ok": True, "result": result}, 200
        except ApiError as e:
            outcome, payload, status = {"error": e.code}, _error(e.code, e.description), e.code
        with self._cond:  # a stalled call was recorded early; complete it in place
            call.update(outcome)
            if not fault:
                self.calls.append(call)
            self._cond.notify_all()
        _reply(h, status, payload)

    def _download(self, h: _Handler, token: str, file_path: str) -> None:
        """GET {root}/file/bot<token>/<file_path>, as Telegram serves files after getFile."""
        with self._cond:
            found = next((f for f in self._files.values() if f["file_path"] == file_path), None)
            self.calls.append({"method": "downloadFile", "params": {"file_path": file_path},
                               "time": time.time(), "content_type": "",
                               **({"result": True} if token == self.token and found else
                                  {"error": 401 if token != self.token else 404})})
            self._cond.notify_all()
        if token != self.token:
            return _reply(h, 401, _error(401, "Unauthorized"))
        if found is None:
            return _reply(h, 404, _error(404, "Not Found"))
        _reply(h, 200, found["content"], "application/octet-stream")

    # ---------------------------------------------------------------- API methods
    def _dispatch(self, name: str, p: Json) -> Any:
        if name == "getme":
            return {**self.bot_user, "can_join_groups": True,
                    "can_read_all_group_messages": False, "supports_inline_queries": False}
        if name == "getupdates":
            if self.webhook:  # as Telegram: no polling while a webhook is set
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active;"
                                    " use deleteWebhook to delete the webhook first")
            return self._get_updates(p)
        if name == "getfile":
            return self._get_file(p)
        if name == "setwebhook":
            with self._cond:
                self.webhook = {"url": p.get("url"), "secret_token": p.get("secret_token"),
                                "allowed_updates": p.get("allowed_updates")}
            return True
        if name == "deletewebhook":
            with self._cond:
                self.webhook = None
            return True
        if name == "getwebhookinfo":
            return {"url": (self.webhook or {}).get("url") or "", "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)}
        if name == "sendmessage" or name in _MEDIA_SENDS:
            return self._send(name, p)
        if name in ("editmessagetext", "editmessagereplymarkup"):
            return self._edit(p)
        if name in ("setmycommands", "deletemycommands", "getmycommands"):
            key = _scope_key(p.get("scope"), p.get("language_code") or "")
            with self._cond:
                if name == "getmycommands":
                    return self._commands.get(key, [])
                if name == "setmycommands":
                    self._commands[key] = list(p.get("commands") or [])
                else:
                    self._commands.pop(key, None)
            return True
        if name == "getchat":
            gifts = dict.fromkeys(_GIFT_TYPES, False)
            return {**self._chat(int(p["chat_id"])), "accent_color_id": 0,
                    "max_reaction_count": 11, "accepted_gift_types": gifts}
        if name == "getchatmember":
            return self._member(int(p["user_id"]), None, int(p["chat_id"]))
        if name == "getchatadministrators":
            chat_id = int(p["chat_id"])
            return [self._member(u, None, chat_id) for u in self._admins.get(chat_id, [])]
        return True  # deleteWebhook, answerCallbackQuery, sendChatAction, leaveChat, close...

    def _get_file(self, p: Json) -> Json:
        with self._cond:
            f = self._files.get(str(p.get("file_id")))
        if f is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if f["file_size"] > 20 * 2**20:  # the public Bot API's download limit
            raise ApiError(400, "Bad Request: file is too big")
        return {k: f[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _get_updates(self, p: Json) -> list[Json]:
        """Long poll like Telegram: confirming via offset drops updates for good."""
        offset, limit = int(p.get("offset") or 0), max(1, min(int(p.get("limit") or 100), 100))
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        with self._cond:
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            while not self._updates and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._updates[:limit])

    def _send(self, name: str, p: Json) -> Json:
        chat_id = int(p["chat_id"])
        msg = self._new_message(chat_id, self.bot_user)
        if name == "sendmessage":
            msg.update(text=p["text"], **({"entities": p["entities"]} if "entities" in p else {}))
        else:
            kind = _MEDIA_SENDS[name]
            msg[kind] = media_object(kind, f"{chat_id}-{msg['message_id']}")
            if p.get("caption"):
                msg["caption"] = p["caption"]
        reply = p.get("reply_parameters")
        reply_id = (reply.get("message_id") if isinstance(reply, dict) else None) \
            or p.get("reply_to_message_id")
        if reply_id:
            msg["reply_to_message"] = self._resolve(chat_id, int(reply_id))
        if isinstance(p.get("reply_markup"), dict) and "inline_keyboard" in p["reply_markup"]:
            msg["reply_markup"] = p["reply_markup"]
        return self._store(msg)

    def _edit(self, p: Json) -> Any:
        if p.get("inline_message_id"):
            return True
        key = (int(p["chat_id"]), int(p["message_id"]))
        with self._cond:
            old = self._messages.get(key)
            if old is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            new = {k: v for k, v in old.items() if k not in ("reply_markup", "edit_date")}
            new["text"] = p.get("text", old.get("text"))
            if isinstance(p.get("reply_markup"), dict):  # Telegram drops it unless re-sent
                new["reply_markup"] = p["reply_markup"]
            if new == {k: v for k, v in old.items() if k != "edit_date"}:
                raise ApiError(400, "Bad Request: message is not modified: specified new "
                                    "message content and reply markup are exactly the same")
            self._messages[key] = new = {**new, "edit_date": int(time.time())}
            return new

    # ---------------------------------------------------------------- object builders
    def _user(self, user_id: int, first_name: str | None = None,
              username: str | None = None) -> Json:
        """Registry of scripted users, so names stay consistent across updates and getChat."""
        with self._cond:
            user = self._users.setdefault(user_id, {"id": user_id, "is_bot": False,
                                                    "first_name": "U"})
            user.update({k: v for k, v in (("first_name", first_name), ("username", username))
                         if v is not None})
            return dict(user)

    def _chat(self, chat_id: int, title: str | None = None) -> Json:
        if chat_id > 0:  # private chat id == user id
            user = self._user(chat_id)
            return {"id": chat_id, "type": "private",
                    **{k: user[k] for k in ("first_name", "username") if k in user}}
        with self._cond:
            title = self._titles[chat_id] = title or self._titles.get(chat_id, "G")
        return {"id": chat_id, "type": "supergroup", "title": title}

    def _member(self, user_id: int, status: str | None, chat_id: int | None = None) -> Json:
        """ChatMember with every field PTB 22 requires; status None = derive from admins."""
        if status is None:
            admins = self._admins.get(chat_id or 0, [])
            status = ("creator" if admins[:1] == [user_id] else
                      "administrator" if user_id in admins else "member")
        user = self.bot_user if user_id == self.bot_id else self._user(user_id)
        member: Json = {"status": status, "user": user}
        if status in ("creator", "administrator"):
            member["is_anonymous"] = False
        if status == "administrator":
            member.update(dict.fromkeys(_ADMIN_RIGHTS, True), can_be_edited=False)
        elif status in ("kicked", "restricted"):
            member["until_date"] = 0  # "restricted" would need ~15 more flags: unsupported
        return member

    def _new_message(self, chat_id: int, sender: Json, title: str | None = None) -> Json:
        with self._cond:
            ids = self._msg_ids.setdefault(chat_id, itertools.count(1))  # shared per chat
            return {"message_id": next(ids), "date": int(time.time()),
                    "chat": self._chat(chat_id, title), "from": sender}

    def _store(self, msg: Json) -> Json:
        with self._cond:
            self._messages[(msg["chat"]["id"], msg["message_id"])] = msg
        return msg

    def _resolve(self, chat_id: int, message: Json | int) -> Json:
        """Full stored message for an id, Message dict or sent() record (not nested twice)."""
        mid = message if isinstance(message, int) else int(message["message_id"])
        with self._cond:
            found = self._messages.get((chat_id, mid))
        if found is None:
            found = message if isinstance(message, dict) and "date" in message else {
                "message_id": mid, "date": int(time.time()), "chat": self._chat(chat_id)}
        return {k: v for k, v in found.items() if k != "reply_to_message"}

    # ---------------------------------------------------------------- scripting users
    def push_update(self, update: Json) -> Json:
        """Queue a raw update (update_id assigned here) and wake long polls; with a webhook set,
        POST it there instead, with the secret header, as Telegram does."""
        with self._cond:
            update = {**update, "update_id": next(self._update_ids)}
            hook = dict(self.webhook) if self.webhook else None
            if hook is None:
                self._updates.append(update)
                self._cond.notify_all()
        if hook is not None:
            status = self.post_webhook(update, hook.get("secret_token"), hook["url"])
            with self._cond:
                self.webhook_posts.append((update["update_id"], status))
                self._cond.notify_all()
        return update

    def post_webhook(self, update: Json, secret: str | None, url: str | None = None) -> int:
        """POST one update to the webhook (secret None: no header); returns the HTTP status."""
        import urllib.error
        import urllib.request

        url = url or (self.webhook or {}).get("url")
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        req = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def add_file(self, content: bytes, file_size: int | None = None) -> Json:
        """Store a file the way Telegram holds an upload; returns its file_id/unique id/size.
        file_size may claim more than the content (a large file, without the bytes)."""
        n = next(self._file_ids)
        f = {"file_id": f"doc-file-{n}", "file_unique_id": f"udoc{n}", "content": content,
             "file_size": len(content) if file_size is None else file_size,
             "file_path": f"documents/file_{n}"}
        with self._cond:
            self._files[f["file_id"]] = f
        return f

    def upload_document(self, user_id: int, content: bytes, file_name: str,
                        caption: str | None = None, mime_type: str = "application/octet-stream",
                        file_size: int | None = None, chat_id: int | None = None) -> Json:
        """A user sends a file (a Telegram "document") with an optional caption."""
        f = self.add_file(content, file_size)
        document = {"file_id": f["file_id"], "file_unique_id": f["file_unique_id"],
                    "file_size": f["file_size"], "file_name": file_name, "mime_type": mime_type}
        extra: Json = {"document": document}
        extra.update({"caption": caption} if caption else {})
        chat_id = user_id if chat_id is None else chat_id
        return self._message_update(chat_id, self._user(user_id), None, **extra)

    def _message_update(self, chat_id: int, sender: Json, text: str | None,
                        entities: list[Json] | None = None, title: str | None = None,
                        **extra: Any) -> Json:
        msg = self._new_message(chat_id, sender, title)
        if text is not None:
            msg["text"] = text
            ents = compute_entities(text) if entities is None else entities
            msg.update({"entities": ents} if ents else {})
        return self.push_update({"message": self._store({**msg, **extra})})

    def private_message(self, user_id: int, text: str, first_name: str = "U",
                        username: str | None = None, **extra: Any) -> Json:
        sender = self._user(user_id, first_name, username)
        return self._message_update(user_id, sender, text, **extra)

    def group_message(self, chat_id: int, user_id: int, text: str,
                      reply_to_message: Json | int | None = None,
                      entities: list[Json] | None = None, title: str = "G",
                      **extra: Any) -> Json:
        """Supergroup message; reply_to_message may be an id, a Message or a sent() record."""
        if chat_id >= 0:
            raise ValueError("supergroup chat ids are negative, e.g. -1001234567890")
        if reply_to_message is not None:
            extra["reply_to_message"] = self._resolve(chat_id, reply_to_message)
        return self._message_update(chat_id, self._user(user_id), text, entities, title,
                                    **extra)

    def edited_message(self, chat_id: int, message_id: int, text: str,
                       user_id: int | None = None) -> Json:
        """Edit a previously scripted message (same id, new text, edit_date set)."""
        msg = {k: v for k, v in self._resolve(chat_id, message_id).items() if k != "entities"}
        if user_id is not None or "from" not in msg:
            msg["from"] = self._user(user_id or chat_id)
        msg.update(text=text, edit_date=int(time.time()))
        msg.update({"entities": compute_entities(text)} if compute_entities(text) else {})
        return self.push_update({"edited_message": self._store(msg)})

    def _media_message(self, kind: str, user_id: int, chat_id: int | None = None,
                       caption: str | None = None) -> Json:
        chat_id = user_id if chat_id is None else chat_id
        extra: Json = {kind: media_object(kind, f"{chat_id}-{time.time_ns()}")}
        extra.update({"caption": caption} if caption else {})
        return self._message_update(chat_id, self._user(user_id), None, **extra)

    # (user_id, chat_id=None, caption=None) -> update; chat defaults to the private chat
    photo_message = partialmethod(_media_message, "photo")
    sticker_message = partialmethod(_media_message, "sticker")
    voice_message = partialmethod(_media_message, "voice")
    document_message = partialmethod(_media_message, "document")

    def callback(self, user_id: int, chat_id: int, message: Json | int, data: str) -> Json:
        """Press an inline button under a message the bot sent (id, Message or sent() record)."""
        return self.push_update({"callback_query": {
            "id": str(next(self._cbq_ids)), "from": self._user(user_id), "data": data,
            "message": self._resolve(chat_id, message), "chat_instance": f"ci{chat_id}"}})

    def my_chat_member(self, chat_id: int, user_id: int, old_status: str,
                       new_status: str) -> Json:
        """The bot's own membership changed (added/promoted/removed) by user_id.

        Statuses: member, administrator, creator, left, kicked."""
        return self.push_update({"my_chat_member": {
            "chat": self._chat(chat_id), "from": self._user(user_id), "date": int(time.time()),
            "old_chat_member": self._member(self.bot_id, old_status),
            "new_chat_member": self._member(self.bot_id, new_status)}})

    # ---------------------------------------------------------------- configuration
    def set_chat_admins(self, chat_id: int, user_ids: list[int]) -> None:
        """The first id is reported as "creator", the rest as "administrator"."""
        with self._cond:
            self._admins[chat_id] = list(user_ids)

    def inject(self, method: str, kind: str, count: int = 1, retry_after: int = 1,
               match: Callable[[Json], bool] | None = None) -> None:
        """Make the next `count` calls of `method` (whose params satisfy `match`, if given) fail.

        "429" (retry_after), "502", "badhtml" (400 can't parse entities), "drop" (connection closed at once), "stall" (held for
        stall_seconds, then processed with the response lost: the client cannot tell whether it
        ran) or "lost" (held for stall_seconds, then dropped unprocessed)."""
        if kind not in _FAULTS:
            raise ValueError(f"fault kind must be one of {_FAULTS}, not {kind!r}")
        with self._cond:
            self._faults.setdefault(method.lower(), []).extend([(kind, retry_after, match)] * count)

    def clear_faults(self, method: str | None = None) -> None:
        """Forget faults not yet triggered (for one method, or all)."""
        with self._cond:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method.lower(), None)

    # ---------------------------------------------------------------- assertions
    def commands(self, scope: Json | None = None, language_code: str = "") -> list[Json]:
        with self._cond:
            return list(self._commands.get(_scope_key(scope, language_code), []))

    @contextmanager
    def together(self) -> Iterator[None]:
        """Updates pushed inside the block reach long polls together, in one getUpdates batch."""
        with self._cond:
            yield

    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)

    def sent(self, chat_id: int | None = None, method: str = "sendMessage") -> list[Json]:
        """Successful bot calls of `method` (optionally to one chat): params + message_id."""
        with self._cond:
            calls = [c for c in self.calls if c["method"] == method and "result" in c
                     and (chat_id is None or c["params"].get("chat_id") == chat_id)]
        return [{**c["params"], **({"message_id": c["result"]["message_id"]}
                                   if isinstance(c["result"], dict) else {})} for c in calls]

    def wait_for(self, predicate: Callable[[Json], bool], timeout: float = 30.0,
                 since: int = 0) -> Json:
        """First recorded call (index >= since) matching predicate; sleeps on the Condition."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = next((c for c in self.calls[since:] if predicate(c)), None)
                if match is not None:
                    return match
                if time.monotonic() >= deadline:
                    break
                self._cond.wait(deadline - time.monotonic())
            seen = [f"{c['method']} {json.dumps(c['params'], ensure_ascii=False, default=str)}"
                    [:160] + (f" fault={c['fault']}" if "fault" in c else "")
                    for c in self.calls[-30:]]
            total = len(self.calls)
        raise TimeoutError(f"no matching call within {timeout}s; last {len(seen)} of {total} "
                           "calls:\n  " + "\n  ".join(seen))

    def wait_for_replies(self, chat_id: int, n: int = 1, timeout: float = 30.0) -> list[Json]:
        """Block until the bot has sent at least n messages to chat_id; returns them all."""
        self.wait_for(lambda c: c["method"] == "sendMessage" and len(self.sent(chat_id)) >= n,
                      timeout)
        return self.sent(chat_id)


def _error(code: int, description: str) -> Json:
    return {"ok": False, "error_code": code, "description": description}


def _scope_key(scope: Json | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


def _reply(h: _Handler, status: int, payload: Any, ctype: str = "application/json") -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    except OSError:  # client already gave up (e.g. timed out during a stall)
        h.close_connection = True


def _drop(h: _Handler) -> None:
    """Close the socket without any response, like a proxy/NAT dropping the connection."""
    h.close_connection = True
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
