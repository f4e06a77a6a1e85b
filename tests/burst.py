#!/usr/bin/env python3
"""Burst benchmark: the real bot process against the local Bot API peer (tests/botapi_peer.py).

`planbot bench --burst` (index/bench.py) runs this; so can `python tests/burst.py`. Rows:
- bot start-to-ready: spawning `python -m bot` on a built index until it long-polls;
- a burst of U users x Q private questions pushed at once: reply p50/p95/max, lost, duplicates;
- the same burst right after an admin's /reindex of a changed corpus (the rebuild runs meanwhile).
Latency is push -> the peer receiving the reply's sendMessage, so it includes long polling and
PTB's AIORateLimiter (Telegram's 30 requests/s overall; every answer costs a message, plus a typing
action if it was not ready after PLANBOT_TYPING_AFTER): `rate_floor_s` is the time that limiter alone
needs for the burst's API calls (it lets 30 go at once, then 30 a second).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadtest import ADMIN, ARTICLE, Ask, BotProcess, _match, eval_questions, pct, wait_until  # noqa: E402
from botproc import DOCS  # noqa: E402

RATE = 30.0  # AIORateLimiter's overall requests per second


def start_to_ready(bot: BotProcess, t_spawn: float) -> float:
    """Seconds from spawning the process to its first long poll of the peer."""
    wait_until(lambda: "Application started" in bot.log() or bot.proc.poll() is not None, 180, 0.02)
    ready = time.time()
    bot.wait_ready()
    return ready - t_spawn


def _changed_corpus(bot: BotProcess, copies: int) -> None:
    """`copies` retitled copies of the article: a /reindex that really embeds something."""
    meta = json.loads((DOCS / f"{ARTICLE}.meta.json").read_text(encoding="utf-8"))
    for i in range(copies):
        shutil.copy(DOCS / f"{ARTICLE}.txt", bot.docs / f"zz-burst-{i}.txt")
        (bot.docs / f"zz-burst-{i}.meta.json").write_text(
            json.dumps({**meta, "title": f"突发测试副本{i}：" + meta["title"]}, ensure_ascii=False), encoding="utf-8")


def run_burst(bot: BotProcess, users: int = 20, per_user: int = 5, reindex_copies: int = 0,
              first_user: int = 20_000, timeout: float = 120.0) -> dict:
    qs = eval_questions()
    peer, since = bot.peer, len(bot.peer.calls)
    reindex = None
    if reindex_copies:
        _changed_corpus(bot, reindex_copies)
        peer.private_message(ADMIN, "/reindex")
        assert wait_until(lambda: any(c["method"] == "sendMessage" and c["params"]["chat_id"] == ADMIN
                                      and "开始重建" in c["params"].get("text", "") for c in peer.calls[since:]), 30)
    asks = [Ask(first_user + u, first_user + u, "private", qs[(u * per_user + j) % len(qs)])
            for j in range(per_user) for u in range(users)]
    for a in asks:  # as fast as the peer takes them: ~all at once
        a.t_push = time.time()
        a.message_id = peer.private_message(a.user, a.text)["message"]["message_id"]
    chats = {a.chat for a in asks}

    def sends() -> list[dict]:
        return [c for c in peer.calls[since:] if c["method"] == "sendMessage" and "result" in c
                and c["params"]["chat_id"] in chats]

    def rebuilt() -> dict | None:
        return next((c for c in peer.calls[since:] if c["method"] == "editMessageText"
                     and c["params"].get("text", "").startswith(("重建完成", "重建失败"))), None)

    wait_until(lambda: len(sends()) >= len(asks) and (not reindex_copies or rebuilt()), timeout, 0.05)
    time.sleep(1.0)  # late duplicates would show up here
    duplicates = _match(asks, sends(), bot.question_log())
    lat = sorted(a.latency for a in asks if a.replies)
    calls = [c for c in peer.calls[since:] if c["method"] in ("sendMessage", "sendChatAction")
             and c["params"].get("chat_id") in chats]
    row = {"questions": len(asks), "users": users, "answered": len(lat),
           "lost": sum(not a.replies for a in asks), "duplicates": duplicates,
           "p50_s": round(pct(lat, 50), 2), "p95_s": round(pct(lat, 95), 2), "max_s": round(max(lat, default=0), 2),
           "api_calls": len(calls), "rate_floor_s": round(max(0.0, len(calls) - RATE) / RATE, 2)}
    if reindex_copies:
        done = rebuilt()
        row["reindex"] = done["params"]["text"].replace("\n", "; ") if done else "no summary"
        if done:
            row["reindex_finished_after_s"] = round(done["time"] - asks[0].t_push, 2)
    return row


def bench_bot(users: int = 20, per_user: int = 5, reindex_copies: int = 4) -> dict:
    """Start-to-ready, a burst, and a burst during /reindex, each bot in a scratch root."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="planbot-burst-") as tmp:
        root = Path(tmp)
        # first run builds the index (not timed as start-up); the second starts on it
        first = BotProcess(root / "a")
        first.wait_ready()
        first.stop()
        shutil.rmtree(root / "a" / "cwd")
        (root / "a" / "state.db").unlink(missing_ok=True)
        t0 = time.time()
        bot = _restart(first)
        try:
            out["bot_start_to_ready_s"] = round(start_to_ready(bot, t0), 2)
            out["rss_after_start_mb"] = _rss_mb(bot.proc.pid)
            out["burst"] = run_burst(bot, users, per_user)
            out["burst_during_reindex"] = run_burst(bot, users, per_user, reindex_copies, first_user=30_000)
            out["rss_after_bursts_mb"] = _rss_mb(bot.proc.pid)
        finally:
            bot.stop()
    return out


def _restart(old: BotProcess) -> BotProcess:
    """A new bot process on the same scratch root (index already built)."""
    bot = BotProcess.__new__(BotProcess)
    import subprocess

    from botapi_peer import BotApiPeer
    from botproc import PY, bot_env
    from loadtest import BOT_USERNAME, TOKEN

    bot.root, bot.token, bot.var, bot.docs = old.root, old.token, old.var, old.docs
    bot.state_db, bot.out_path, bot.err_path = old.state_db, old.root / "bot2.out", old.root / "bot2.err"
    (old.root / "cwd").mkdir()
    bot.peer = BotApiPeer(TOKEN, bot_username=BOT_USERNAME).start()
    env = bot_env(PLANBOT_TELEGRAM_TOKEN=TOKEN, PLANBOT_TELEGRAM_API_URL=bot.peer.url, PLANBOT_VAR_DIR=str(bot.var),
                  PLANBOT_DOCS_DIR=str(bot.docs), PLANBOT_STATE_DB=str(bot.state_db),
                  PLANBOT_ADMIN_IDS=str(ADMIN), PLANBOT_RATE_LIMIT_PER_MINUTE="20")
    with open(bot.out_path, "wb") as o, open(bot.err_path, "wb") as e:
        bot.proc = subprocess.Popen([str(PY), "-m", "bot"], cwd=old.root / "cwd", env=env, stdout=o, stderr=e,
                                    stdin=subprocess.DEVNULL)
    return bot


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 0)
    except OSError:
        pass
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--questions", type=int, default=5, help="questions per user")
    ap.add_argument("--reindex-copies", type=int, default=4)
    a = ap.parse_args(argv)
    print(json.dumps(bench_bot(a.users, a.questions, a.reindex_copies), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
