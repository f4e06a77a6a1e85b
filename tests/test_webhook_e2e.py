"""Webhook mode end to end: the bot is started the way an operator would, `planbot bot`
(the CLI handing over to `python -m bot`), with PLANBOT_WEBHOOK_URL/SECRET; the peer receives
setWebhook and POSTs every update to the bot with Telegram's secret-token header. The Q&A tests
of test_bot_e2e.py run again here against this process; requests with a wrong or missing secret
get 403 and are not processed.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from botapi_peer import BotApiPeer
from botproc import BotProcess, bot_env, free_port, prepare_root
from test_bot_e2e import (ADMIN, BOT_USERNAME, OTHER_ADMIN, QUESTION, TOKEN, Bot, _assert_answer,  # noqa: F401
                          test_follow_up_question_is_about_the_new_district,
                          test_full_passage_button_sends_the_passage, test_group_ask_addressed_to_this_bot,
                          test_group_ask_command_is_answered_in_thread, test_group_ask_without_question_explains_usage,
                          test_group_ignores_chatter_and_other_bots_commands, test_group_mention_is_answered,
                          test_group_reply_to_bot_message_is_answered,
                          test_non_text_gets_a_short_explanation,
                          test_private_question_gets_cited_html_answer_with_buttons,
                          test_sources_lists_the_article, test_stale_or_tampered_buttons_get_a_notice,
                          test_start_and_help_in_chinese_with_examples,
                          test_startup_builds_index_and_registers_menus, test_thumbs_up_is_acknowledged_and_counted,
                          test_uncovered_district_is_refused_plainly_with_covered_list)

REPO = Path(__file__).resolve().parents[1]
SECRET = "wh-Secret_0123456789"
PATH = "tg-hook"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    root = tmp_path_factory.mktemp("webhook")
    var, docs = prepare_root(root)
    peer = BotApiPeer(TOKEN, bot_username=BOT_USERNAME).start()
    port = free_port()
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=peer.url,
                  PLANBOT_ADMIN_IDS=f"{ADMIN},{OTHER_ADMIN}", PLANBOT_STATE_DB=str(root / "state.db"),
                  PLANBOT_VAR_DIR=str(var), PLANBOT_DOCS_DIR=str(docs),
                  PLANBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}/{PATH}", PLANBOT_WEBHOOK_SECRET=SECRET,
                  PLANBOT_WEBHOOK_LISTEN="127.0.0.1", PLANBOT_WEBHOOK_PORT=str(port))
    proc = BotProcess(peer, env, root / "bot.log", root / "cwd", argv=[str(REPO / ".venv" / "bin" / "planbot"), "bot"])
    try:
        proc.start()
        yield Bot(peer, proc.proc, proc.log_path, var, docs, root / "cwd")
    finally:
        code = proc.stop()
        peer.stop()
    log = proc.log()
    assert code == 0, log[-3000:]
    assert TOKEN.split(":", 1)[1] not in log and SECRET not in log


def _update(update_id: int, user: int, text: str) -> dict:
    who = {"id": user, "is_bot": False, "first_name": "X"}
    return {"update_id": update_id, "message": {"message_id": 1, "date": int(time.time()), "text": text,
                                                "chat": {"id": user, "type": "private", "first_name": "X"},
                                                "from": who}}


def test_webhook_was_set_with_the_secret_and_nothing_polls(bot):
    hook = bot.peer.webhook
    assert hook and hook["url"].endswith(f"/{PATH}") and hook["secret_token"] == SECRET
    assert not [c for c in bot.peer.calls if c["method"] == "getUpdates"]
    assert bot.peer.webhook_posts and all(status == 200 for _, status in bot.peer.webhook_posts)


def test_wrong_or_missing_secret_gets_403_and_is_not_processed(bot):
    intruder = 7001
    assert bot.peer.post_webhook(_update(900001, intruder, QUESTION), "wrong-secret") == 403
    assert bot.peer.post_webhook(_update(900002, intruder, QUESTION), None) == 403
    assert bot.peer.post_webhook(_update(900003, intruder, QUESTION), SECRET + "x") == 403
    # the same request with the right secret is answered, so the ones above really were dropped
    assert bot.peer.post_webhook(_update(900004, intruder + 1, QUESTION), SECRET) == 200
    _assert_answer(bot.peer.wait_for_replies(intruder + 1, 1)[0])
    time.sleep(1.0)
    assert bot.peer.sent(intruder) == []
    assert "900001" not in bot.log() and "900002" not in bot.log()


def test_cli_entry_point_logs_like_python_m_bot(bot):
    """`planbot bot` execs `python -m bot`: the bot's own INFO lines, not the CLI's WARNING level."""
    log = bot.log()
    assert " INFO bot: planbot ready as @planbot_test_bot" in log, log[-3000:]
    assert f" INFO bot: webhook mode: listening on 127.0.0.1:" in log
