"""Wiring: settings -> engine -> PTB Application with every handler registered in one place."""
from __future__ import annotations

import logging
import sys

from telegram import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.ext import (AIORateLimiter, Application, ApplicationBuilder, CallbackQueryHandler,
                          ChatMemberHandler, CommandHandler, MessageHandler, TypeHandler, filters)

from index.engine import Engine

from . import admin, handlers as h, removal, uploads
from .common import Services
from .config import BotSettings, load_settings
from .delivery import Inbox, JournalingRequest, RetryingRequest
from .state import State

log = logging.getLogger("bot")
PUBLIC = [BotCommand("ask", "提问：/ask 莱山的主导产业是什么"), BotCommand("sources", "已收录的文档"),
          BotCommand("help", "帮助与示例")]
GROUP = PUBLIC + [BotCommand("subscribe", "订阅方案公告（群管理员）"), BotCommand("unsubscribe", "退订公告（群管理员）")]
ADMIN = PUBLIC + [BotCommand("reindex", "重建索引"), BotCommand("announce", "群发公告"),
                  BotCommand("stats", "统计"), BotCommand("docs", "文档列表（id、段数、添加者）"),
                  BotCommand("remove", "移除文档：/remove id")]


class RedactToken(logging.Filter):
    """The token is in every Bot API URL; keep it out of every log line and traceback."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token and self.token in record.getMessage():
            record.msg, record.args = record.getMessage().replace(self.token, "<token>"), ()
        if record.exc_info and record.exc_info[1]:
            text = logging.Formatter().formatException(record.exc_info)  # includes chained causes
            if self.token in text:
                record.exc_text, record.exc_info = text.replace(self.token, "<token>"), None
        return True


async def post_init(app: Application) -> None:
    settings: BotSettings = app.bot_data["services"].settings
    await app.bot.set_my_commands(PUBLIC, scope=BotCommandScopeDefault())
    await app.bot.set_my_commands(GROUP, scope=BotCommandScopeAllGroupChats())
    for admin_id in settings.admin_ids:
        try:
            await app.bot.set_my_commands(ADMIN, scope=BotCommandScopeChat(admin_id))
        except Exception as exc:  # an admin who never talked to the bot has no chat yet
            log.warning("admin menu for %s not set: %s", admin_id, exc)
    await app.bot_data["inbox"].replay(app)  # before polling starts: the previous run's leftovers
    engine = app.bot_data["services"].engine
    log.info("planbot ready as @%s: index %s, %d passages", app.bot.username, engine.version,
             engine.manifest.get("passage_count", 0))


def build_application(settings: BotSettings, engine: Engine, state: State) -> Application:
    token = settings.telegram_token.get_secret_value()
    root = settings.telegram_api_url
    inbox, timeout = Inbox(state), settings.http_read_timeout  # getUpdates adds the poll timeout
    app = (ApplicationBuilder().token(token).base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
           .request(RetryingRequest(connection_pool_size=256, read_timeout=timeout))
           .get_updates_request(JournalingRequest(state.journal_updates, read_timeout=timeout))
           .rate_limiter(AIORateLimiter(max_retries=3)).concurrent_updates(True)
           .post_init(post_init).build())
    app.bot_data["services"] = Services(settings, engine, state)
    app.bot_data["inbox"] = inbox
    app.add_handler(TypeHandler(Update, inbox.gate), group=-1)  # skip redelivered updates
    app.add_handler(TypeHandler(Update, inbox.done), group=1)  # runs after the handler, even on error
    new_msg = filters.UpdateType.MESSAGE
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    app.add_handler(CommandHandler(["start", "help"], h.start, filters=new_msg))
    app.add_handler(CommandHandler("sources", h.sources, filters=new_msg))
    app.add_handler(CommandHandler("ask", h.ask_command, filters=new_msg))
    app.add_handler(CommandHandler("subscribe", h.subscribe, filters=new_msg))
    app.add_handler(CommandHandler("unsubscribe", h.unsubscribe, filters=new_msg))
    app.add_handler(CommandHandler("announce", admin.announce, filters=new_msg))
    app.add_handler(CommandHandler("reindex", admin.reindex, filters=new_msg))
    app.add_handler(CommandHandler("stats", admin.stats, filters=new_msg))
    app.add_handler(CommandHandler("docs", removal.docs_command, filters=new_msg))
    app.add_handler(CommandHandler("remove", removal.remove_command, filters=new_msg))
    app.add_handler(MessageHandler(new_msg & private & filters.COMMAND, h.start))  # unknown command: help
    app.add_handler(MessageHandler(new_msg & private & filters.TEXT & ~filters.COMMAND, h.private_text))
    app.add_handler(MessageHandler(new_msg & groups & filters.TEXT & ~filters.COMMAND, h.group_text))
    app.add_handler(MessageHandler(new_msg & private & filters.Document.ALL, uploads.on_document))
    app.add_handler(MessageHandler(new_msg & private & ~filters.TEXT & ~filters.StatusUpdate.ALL, h.non_text))
    # edits never run commands, but an edited admin command is refused/answered, not ignored
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.COMMAND, admin.edited_command))
    # a callable pattern: PTB lets empty callback data through a regex pattern
    app.add_handler(CallbackQueryHandler(uploads.on_button, pattern=uploads.is_button))
    app.add_handler(CallbackQueryHandler(h.callback))
    app.add_handler(ChatMemberHandler(h.chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_error_handler(h.error_handler)
    return app


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread that allocates its own malloc arena (up to 8 per core), and each
    keeps the peak of what its thread freed: the answer threads and a rebuild's embedding workers
    left ~15 MB behind after a /reindex. Two arenas for the whole process (MALLOC_ARENA_MAX=2);
    before any thread starts. Not glibc: nothing happens."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run() -> int:
    limit_malloc_arenas()
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)  # the same log lines however the bot was started
    secrets = [settings.telegram_token.get_secret_value()]
    if settings.webhook_secret is not None:
        secrets.append(settings.webhook_secret.get_secret_value())
    for handler in logging.getLogger().handlers:
        for secret in secrets:
            handler.addFilter(RedactToken(secret))
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers", "apscheduler", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from index.docstore import clean_stale

    clean_stale(settings.docs_dir, settings.incoming_dir)
    try:
        engine = Engine.open(settings)
    except Exception as exc:
        sys.exit(f"planbot: cannot load the index: {exc}")
    # The first query loads tokenizers and dictionaries lazily (~0.7 s alone, ~2 s for a burst
    # of concurrent first questions, see `make load`): pay that before polling starts.
    engine.answer("莱山的主导产业是什么")
    app = build_application(settings, engine, State(settings.state_path))
    if settings.webhook_url:
        run_webhook(app, settings)
    else:
        app.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False, poll_interval=0.0,
                        timeout=settings.poll_timeout)
    return 0


def run_webhook(app: Application, settings: BotSettings) -> None:
    """Telegram POSTs each update to PLANBOT_WEBHOOK_URL with the secret in the
    X-Telegram-Bot-Api-Secret-Token header; PTB's server listens on listen:port under the URL's
    path (a reverse proxy terminates TLS and forwards that path) and answers 403 to a request
    without the right secret, which is then not processed."""
    from urllib.parse import urlsplit

    path = urlsplit(settings.webhook_url).path.strip("/")
    log.info("webhook mode: listening on %s:%d/%s for %s", settings.webhook_listen, settings.webhook_port,
             path, settings.webhook_url)
    app.run_webhook(listen=settings.webhook_listen, port=settings.webhook_port, url_path=path,
                    webhook_url=settings.webhook_url, secret_token=settings.webhook_secret.get_secret_value(),
                    allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)
