"""Fault injection against the real bot process (real engine and model) over real HTTP.

The peer answers chosen Bot API calls with 429, 502, a dropped connection or a stall past the
client timeout; the bot must retry, keep polling and never show a user two answers. Last, the
bot is SIGKILLed in the middle of a burst and restarted on the same SQLite state: every question
is answered exactly once across the two runs and subscriptions / feedback survive.

Timeouts are shortened through settings (PLANBOT_HTTP_READ_TIMEOUT, PLANBOT_POLL_TIMEOUT) so a
stall costs seconds; assertions only use lower bounds of elapsed time, never upper ones.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from botapi_peer import BotApiPeer, Json
from botproc import BotProcess, bot_env, db_rows, prepare_root, until

TOKEN = "555000111:AAF-planbotFaultsSecret_q7"
ADMIN = 42
QUESTION = "莱山的主导产业是什么"
READ_TIMEOUT, POLL_TIMEOUT = 3.0, 2  # client timeouts of the module's bot
STALL = 8.0  # peer holds stalled calls this long: past both client timeouts
slow = pytest.mark.slow  # every test but the peer check runs the real bot


@dataclass
class Faulty:
    """The module's bot process, its peer and its directories."""

    peer: BotApiPeer
    proc: BotProcess
    var: Path
    docs: Path


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    var, docs = prepare_root(root)
    peer = BotApiPeer(TOKEN).start()
    peer.stall_seconds = STALL
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=peer.url,
                  PLANBOT_ADMIN_IDS=str(ADMIN), PLANBOT_STATE_DB=str(root / "state.db"),
                  PLANBOT_VAR_DIR=str(var), PLANBOT_DOCS_DIR=str(docs),
                  PLANBOT_HTTP_READ_TIMEOUT=str(READ_TIMEOUT),
                  PLANBOT_POLL_TIMEOUT=str(POLL_TIMEOUT))
    proc = BotProcess(peer, env, root / "bot.log", root / "cwd")
    try:
        proc.start()
        yield Faulty(peer, proc, var, docs)
        code = proc.stop()
    finally:
        proc.stop()
        peer.stop()
    log = proc.log()
    assert code == 0, f"exit code {code}:\n{log[-3000:]}"
    assert TOKEN.split(":", 1)[1] not in log
    # every fault was absorbed by a retry: nothing reached the error handler
    assert " ERROR " not in log and "Traceback" not in log, log[-5000:]


# ----------------------------------------------------------------------------- helpers
def to_chat(chat_id: int) -> Callable[[Json], bool]:
    return lambda params: params.get("chat_id") == chat_id


def assert_answer(msg: Json) -> None:
    assert msg.get("parse_mode") == "HTML", msg
    assert msg["text"].startswith("<b>答：</b>"), msg["text"]


def ask(f: Faulty, user: int, text: str = QUESTION, timeout: float = 40.0) -> Json:
    """Push a private question and return the bot's first reply to it."""
    before = len(f.peer.sent(user))
    f.peer.private_message(user, text)
    try:
        return f.peer.wait_for_replies(user, before + 1, timeout)[before]
    except TimeoutError as exc:
        raise AssertionError(f"no reply to {user}\nbot log:\n{f.proc.log()[-3000:]}") from exc


def sends_to(peer: BotApiPeer, chat_id: int) -> list[Json]:
    """Every sendMessage attempt to chat_id: faulted ones carry "fault", delivered "result"."""
    with peer._cond:
        return [c for c in peer.calls
                if c["method"] == "sendMessage" and c["params"].get("chat_id") == chat_id]


def assert_exactly_one(peer: BotApiPeer, chat_id: int, settle: float = 1.0) -> Json:
    """One delivered message to chat_id, and still one after `settle` seconds."""
    time.sleep(settle)
    sent = peer.sent(chat_id)
    assert len(sent) == 1, [m["text"][:60] for m in sent]
    return sent[0]


# ----------------------------------------------------------------------------- the peer itself
def _call(peer: BotApiPeer, method: str, **params) -> Json:
    req = urllib.request.Request(f"{peer.url}/bot{TOKEN}/{method}", json.dumps(params).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_peer_models_offsets_and_lost_calls():
    """What the crash test relies on: like Telegram, getUpdates hands out updates until a later
    call's offset confirms them, so a restarted client (offset 0) gets the unconfirmed ones
    again; a "lost" call is held, then dropped without ever being processed."""
    with BotApiPeer(TOKEN) as peer:
        peer.stall_seconds = 0.3
        for user in (1, 2, 3):
            peer.private_message(user, "q")
        ids = lambda r: [u["update_id"] for u in r["result"]]  # noqa: E731
        assert ids(_call(peer, "getUpdates", timeout=0)) == [1, 2, 3]
        assert ids(_call(peer, "getUpdates", timeout=0)) == [1, 2, 3]  # nothing confirmed yet
        assert ids(_call(peer, "getUpdates", offset=3, timeout=0)) == [3]  # confirms 1 and 2
        assert ids(_call(peer, "getUpdates", timeout=0)) == [3]  # "restart": 3 comes back
        assert ids(_call(peer, "getUpdates", offset=4, timeout=0)) == [] and not peer.pending_updates()

        peer.inject("sendMessage", "lost", match=to_chat(7))
        assert _call(peer, "sendMessage", chat_id=8, text="other chat")["ok"]  # not targeted
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _call(peer, "sendMessage", chat_id=7, text="never arrives")
        (lost,) = [c for c in peer.calls if c.get("fault")]
        assert lost["params"]["chat_id"] == 7 and "result" not in lost and peer.sent(7) == []
        peer.inject("sendMessage", "502")
        peer.clear_faults()
        assert _call(peer, "sendMessage", chat_id=7, text="now")["ok"]


# ----------------------------------------------------------------------------- sendMessage
@slow
def test_429_answer_arrives_once_after_retry_after(faulty):
    user, retry_after = 6001, 2
    faulty.peer.inject("sendMessage", "429", retry_after=retry_after, match=to_chat(user))
    assert_answer(ask(faulty, user))
    attempts = sends_to(faulty.peer, user)
    assert [c.get("fault") for c in attempts] == ["429", None]
    assert attempts[1]["time"] - attempts[0]["time"] >= retry_after  # waited as told
    assert_exactly_one(faulty.peer, user)


@slow
@pytest.mark.parametrize("kind", ["502", "drop"])
def test_gateway_error_is_retried_with_backoff_and_answered_once(faulty, kind):
    """502 Bad Gateway, or a connection closed before any response: the peer never ran the
    call, so retrying cannot duplicate. Two failures, then success; waits grow (0.5 s, 1 s)."""
    user = 6100 + len(kind)
    faulty.peer.inject("sendMessage", kind, count=2, match=to_chat(user))
    assert_answer(ask(faulty, user))
    attempts = sends_to(faulty.peer, user)
    assert [c.get("fault") for c in attempts] == [kind, kind, None]
    gaps = [b["time"] - a["time"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps  # exponential back-off (lower bounds only)
    assert_exactly_one(faulty.peer, user)


@slow
def test_send_stalled_past_timeout_is_retried_once(faulty):
    """The peer holds the answer past the bot's read timeout and then drops it unprocessed
    ("lost"): the request never reached Telegram, so the bot must retry, and exactly one
    answer is recorded. (A stall Telegram *did* process but whose response was lost cannot be
    told apart by any client; the bot retries then too, preferring a rare duplicate to a lost
    answer. The peer's "stall" kind models that case; it is not what is asserted here.)"""
    user = 6201
    faulty.peer.inject("sendMessage", "lost", match=to_chat(user))
    assert_answer(ask(faulty, user))
    attempts = sends_to(faulty.peer, user)
    assert [c.get("fault") for c in attempts] == ["lost", None]
    assert "result" not in attempts[0]
    assert attempts[1]["time"] - attempts[0]["time"] >= READ_TIMEOUT  # gave up, then retried
    assert_exactly_one(faulty.peer, user)
    assert_answer(ask(faulty, user + 1))  # and it kept polling meanwhile


# ----------------------------------------------------------------------------- getUpdates
@slow
def test_get_updates_stall_past_timeout_bot_recovers(faulty):
    """The long poll hangs past poll timeout + read timeout; PTB gives up and polls again with
    the same offset, so the question queued meanwhile is delivered (once) by the next poll."""
    peer, user = faulty.peer, 6301
    since = len(peer.calls)
    peer.inject("getUpdates", "stall")
    stalled = peer.wait_for(lambda c: c.get("fault") == "stall", timeout=30, since=since)
    peer.private_message(user, QUESTION)
    assert_answer(peer.wait_for_replies(user, 1, timeout=40)[0])
    later = peer.wait_for(lambda c: c["method"] == "getUpdates" and c["time"] > stalled["time"]
                          and "fault" not in c, timeout=10, since=since)
    assert later["time"] - stalled["time"] >= READ_TIMEOUT + POLL_TIMEOUT  # timed out first
    assert_exactly_one(peer, user)
    assert_answer(ask(faulty, user + 1))


@slow
def test_dropped_get_updates_connection_bot_keeps_polling(faulty):
    peer, user = faulty.peer, 6401
    since = len(peer.calls)
    peer.inject("getUpdates", "drop", count=2)
    drops = lambda: [c for c in peer.calls[since:] if c.get("fault") == "drop"]  # noqa: E731
    peer.wait_for(lambda c: len(drops()) == 2, timeout=30, since=since)
    assert all(c["method"] == "getUpdates" for c in drops())
    assert_answer(ask(faulty, user))
    assert_answer(ask(faulty, user + 1))
    assert_exactly_one(peer, user, settle=0.5)
    assert_exactly_one(peer, user + 1, settle=0)
    assert faulty.proc.alive()
    assert "getUpdates failed, polling again" in faulty.proc.log()


# ----------------------------------------------------------------------------- crash + restart
@slow
def test_kill_mid_burst_and_restart_answers_each_question_once(faulty, tmp_path):
    """SIGKILL while a burst is in flight, then restart on the same state DB.

    At the kill, by construction (typing indicators and confirming getUpdates calls are held at
    the peer, never processed, so the kill lands at a known point rather than a race):
      * A1-A3 answered and confirmed to Telegram;
      * A4-A6 fetched and confirmed (PTB confirms on queueing) but not answered: without the
        update journal they would be lost, Telegram will not send them again;
      * B1-B2 answered but not confirmed: Telegram redelivers them, they must be skipped;
      * B3-B4 neither: they come back from the journal and from Telegram, handled once;
      * C1-C2 sent while the bot is down.
    The one window no client can close is a kill between Telegram accepting an answer and the
    bot recording it; the update is then replayed (at-least-once), which this test avoids by
    waiting until the answered updates are recorded as done before killing.
    """
    peer = BotApiPeer(TOKEN).start()
    peer.stall_seconds = 300  # held calls stay held until the kill
    db, group, fan = tmp_path / "state.db", -3001, 3100
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=peer.url,
                  PLANBOT_ADMIN_IDS=str(ADMIN), PLANBOT_STATE_DB=str(db),
                  PLANBOT_VAR_DIR=str(faulty.var), PLANBOT_DOCS_DIR=str(faulty.docs),
                  PLANBOT_HTTP_READ_TIMEOUT="120", PLANBOT_POLL_TIMEOUT="2",
                  PLANBOT_TYPING_AFTER="0")  # typing before every answer: holding it holds the answer
    first = BotProcess(peer, env, tmp_path / "run1.log", tmp_path / "cwd")
    second = BotProcess(peer, env, tmp_path / "run2.log", tmp_path / "cwd")
    f = Faulty(peer, first, faulty.var, faulty.docs)
    try:
        first.start()
        # state worth keeping: a subscribed group and a thumbs-up
        peer.set_chat_admins(group, [3001])
        peer.group_message(group, 3001, "/subscribe")
        assert peer.wait_for_replies(group, 1)[0]["text"] == "已订阅方案公告。"
        answer = ask(f, fan)
        vote = re.search(r"fb:(\d+):1", str(answer["reply_markup"])).group(0)
        cbq = peer.callback(fan, fan, answer, vote)["callback_query"]["id"]
        peer.wait_for(lambda c: c["method"] == "answerCallbackQuery"
                      and str(c["params"].get("callback_query_id")) == cbq)

        def done_ids() -> set[int]:
            return {r[0] for r in db_rows(db, "SELECT update_id FROM updates WHERE done IS NOT NULL")}

        def held_typing(users: list[int]) -> bool:
            return len({c["params"]["chat_id"] for c in peer.calls if c.get("fault") == "lost"
                        and c["method"] == "sendChatAction"} & set(users)) == len(users)

        # burst A: everything fetched and confirmed; A4-A6 stuck before answering
        a = list(range(3201, 3207))
        for u in a[3:]:
            peer.inject("sendChatAction", "lost", match=to_chat(u))
        ids = {u: peer.private_message(u, QUESTION)["update_id"] for u in a}
        until(lambda: all(peer.sent(u) for u in a[:3]) and held_typing(a[3:])
              and peer.pending_updates() == 0, "burst A in flight")
        until(lambda: {ids[u] for u in a[:3]} <= done_ids(), "A1-A3 recorded")
        # burst B, one batch: its confirming poll (offset past B) is held, so B stays pending
        b = list(range(3301, 3305))
        last_b = max(ids.values()) + len(b)
        peer.inject("getUpdates", "lost", count=1000,
                    match=lambda p: int(p.get("offset") or 0) > last_b)
        for u in b[2:]:
            peer.inject("sendChatAction", "lost", match=to_chat(u))
        with peer.together():
            ids.update({u: peer.private_message(u, QUESTION)["update_id"] for u in b})
        assert max(ids.values()) == last_b
        until(lambda: all(peer.sent(u) for u in b[:2]) and held_typing(b[2:])
              and any(c.get("fault") == "lost" and c["method"] == "getUpdates"
                      for c in peer.calls), "burst B in flight")
        until(lambda: {ids[u] for u in b[:2]} <= done_ids(), "B1-B2 recorded")
        assert peer.pending_updates() == len(b)  # A confirmed, B not
        first.kill()

        c = [3401, 3402]
        ids.update({u: peer.private_message(u, QUESTION)["update_id"] for u in c})
        peer.clear_faults()
        f.proc = second.start()
        everyone = [fan, *a, *b, *c]
        until(lambda: all(peer.sent(u) for u in everyone), "every question answered", 90)
        assert_answer(ask(f, 3500))  # the restarted bot is polling normally
        time.sleep(1.5)  # room for a duplicate to show up
        for u in everyone:
            sent = peer.sent(u)
            assert len(sent) == 1, (u, [m["text"][:40] for m in sent])
            assert_answer(sent[0])
        assert peer.pending_updates() == 0
        log2 = second.log()
        assert "replaying 5 update(s)" in log2, log2[-3000:]
        for u in b[:2]:
            assert f"update {ids[u]} already handled" in log2

        # state survived the SIGKILL; each question logged once
        assert db_rows(db, "SELECT chat_id FROM subscriptions") == [(group,)]
        assert db_rows(db, "SELECT user_id, vote FROM feedback") == [(fan, 1)]
        per_user = db_rows(db, "SELECT user_id, COUNT(*) FROM questions GROUP BY user_id")
        assert dict(per_user) == {u: 1 for u in everyone + [3500]}
        stats = ask(f, ADMIN, "/stats")["text"]
        assert "👍 1 / 👎 0" in stats and "订阅 1" in stats, stats
        assert second.stop() == 0
    finally:
        for proc in (first, second):
            if proc.alive():
                proc.kill()
        peer.stop()
