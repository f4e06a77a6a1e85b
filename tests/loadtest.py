#!/usr/bin/env python3
"""Load test: the real bot process (real engine and model) against the local Bot API peer.

`make load` runs it twice (plain and --reindex); tests/test_load.py runs a reduced version and
tests/test_security.py reuses `BotProcess`. Latency is push_update -> the peer receiving the
reply's sendMessage, so it includes PTB's long poll, the engine and AIORateLimiter's pacing
(Telegram's limits: 30 requests/s overall, 20/min per group, typing indicators included).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from botapi_peer import BotApiPeer  # noqa: E402
from botproc import DOCS, PY, bot_env, db_rows, prepare_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTICLE = "yantai-county-economy-2021"
TOKEN = "700100200:AAH-planbotLoadCanary_k3Zq9"  # distinctive, so leaks are greppable
BOT_USERNAME = "planbot_load_bot"
ADMIN = 42
FLOODER = 99_999
LIMIT_TEXT = "提问太频繁了"
ERROR_TEXT = "抱歉，处理这条消息时出错了"


def eval_questions() -> list[str]:
    lines = (REPO / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def norm(text: str) -> str:
    """How the bot logs a question: /ask joins its args with single spaces."""
    return " ".join(text.split())


def wait_until(pred, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class BotProcess:
    """`python -m bot` in a scratch root (var, docs copy, state db, logs) with its own peer."""

    def __init__(self, root: Path, token: str = TOKEN, admins: tuple[int, ...] = (ADMIN,),
                 rate_limit: int = 20, **env: str) -> None:
        self.root, self.token = root, token
        self.var, self.docs = prepare_root(root)  # model cache shared, docs a private copy
        self.state_db, self.out_path, self.err_path = root / "state.db", root / "bot.out", root / "bot.err"
        (root / "cwd").mkdir()  # no .env there: the environment below is the whole configuration
        self.peer = BotApiPeer(token, bot_username=BOT_USERNAME).start()
        full_env = bot_env(PLANBOT_TELEGRAM_TOKEN=token, PLANBOT_TELEGRAM_API_URL=self.peer.url,
                           PLANBOT_VAR_DIR=str(self.var), PLANBOT_DOCS_DIR=str(self.docs),
                           PLANBOT_STATE_DB=str(self.state_db), PLANBOT_ADMIN_IDS=",".join(map(str, admins)),
                           PLANBOT_RATE_LIMIT_PER_MINUTE=str(rate_limit), **env)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([str(PY), "-m", "bot"], cwd=root / "cwd", env=full_env,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return "".join(p.read_text(encoding="utf-8", errors="replace")
                       for p in (self.out_path, self.err_path))

    def wait_ready(self, timeout: float = 180) -> str:
        """Block until the bot polls; returns the index version it started with. (The peer
        records a getUpdates only when it returns, i.e. after a whole idle long poll.)"""
        ok = wait_until(lambda: "Application started" in self.log() or self.proc.poll() is not None,
                        timeout, 0.2)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"bot not ready (exit {self.proc.returncode}):\n{self.log()[-3000:]}")
        return re.search(r"planbot ready as @\S+: index (\S+),", self.log()).group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.peer.stop()
        return self.proc.returncode

    def question_log(self) -> list[tuple[int, int, int, str, str]]:
        """(id, chat, user, question, index_version) rows from the bot's own question log."""
        return db_rows(self.state_db, "SELECT id, chat_id, user_id, question, index_version "
                                      "FROM questions ORDER BY id")


@dataclass
class Ask:
    user: int
    chat: int
    via: str  # private | ask | mention
    question: str
    at: float = 0.0  # planned offset from the start of the run
    t_push: float = 0.0
    message_id: int = 0
    replies: list[tuple[float, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return {"private": self.question, "ask": f"/ask {self.question}",
                "mention": f"@{BOT_USERNAME} {self.question}"}[self.via]

    @property
    def latency(self) -> float:
        return min(t for t, _ in self.replies) - self.t_push


def plan(users: int, per_user: int, rate: float, group_size: int, burst: int = 2,
         seed: int = 1) -> tuple[list[Ask], float]:
    """Each user sends bursts of `burst` questions, private / /ask / @mention in turn; groups of
    `group_size` users; the whole run offers about `rate` questions per second."""
    qs, rng = eval_questions(), random.Random(seed)
    assert per_user <= len(qs), "questions must be distinct per user"
    duration = users * per_user / rate
    period = duration / math.ceil(per_user / burst)
    asks = []
    for u in range(users):
        uid, group, start = 10_000 + u, -1_000_000 - u // group_size, rng.uniform(0, period)
        for j in range(per_user):
            via = ("private", "ask", "mention")[j % 3]
            asks.append(Ask(uid, uid if via == "private" else group, via,
                            qs[(u * per_user + j) % len(qs)],
                            at=start + (j // burst) * period + rng.uniform(0, 0.2)))
    return sorted(asks, key=lambda a: a.at), duration


@dataclass
class Report:
    asks: list[Ask]
    duplicates: int = 0
    flood: dict = field(default_factory=dict)
    reindex: dict = field(default_factory=dict)

    def latencies(self, asks: list[Ask] | None = None) -> list[float]:
        return sorted(a.latency for a in (self.asks if asks is None else asks) if a.replies)

    @property
    def lost(self) -> int:
        return sum(not a.replies for a in self.asks)

    @property
    def failed(self) -> int:
        return sum(any(ERROR_TEXT in t or LIMIT_TEXT in t for _, t in a.replies) for a in self.asks)

    def problems(self, p95_target: float = 1.0) -> list[str]:
        out = [f"{k} {v}" for k, v in (("lost", self.lost), ("duplicates", self.duplicates),
                                       ("failed", self.failed)) if v]
        if self.latencies() and pct(self.latencies(), 95) > p95_target:
            out.append(f"p95 {pct(self.latencies(), 95):.2f}s > {p95_target}s")
        if self.reindex and not self.reindex["ok"]:
            out.append("index version switch not as expected")
        if self.flood and not self.flood["polite"]:
            out.append("flooder got no rate-limit reply")
        return out


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))] if values else 0.0


def run_load(bot: BotProcess, users: int = 50, per_user: int = 10, rate: float = 10.0,
             group_size: int = 2, flood: int = 100, reindex: bool = False, seed: int = 1,
             flood_at: float = 1 / 3, reindex_at: float = 0.5, settle: float = 1.5,
             timeout: float = 90.0) -> Report:
    """Play the plan against the bot; returns who got what, when, from which index.
    The flood and /reindex start at those fractions of the planned run."""
    old_version = bot.wait_ready()
    asks, duration = plan(users, per_user, rate, group_size, seed=seed)
    peer, since, marks = bot.peer, len(bot.peer.calls), {}

    def do_flood() -> None:
        marks["flood_start"] = time.time()
        for i in range(flood):
            peer.private_message(FLOODER, asks[i % len(asks)].question)
        marks["flood_pushed"] = time.time()

    def do_reindex() -> None:  # a changed document, so the new index version really differs
        shutil.copy(DOCS / f"{ARTICLE}.txt", bot.docs / "zz-load-copy.txt")
        meta = json.loads((DOCS / f"{ARTICLE}.meta.json").read_text(encoding="utf-8"))
        meta["title"] = "负载测试副本：" + meta["title"]
        (bot.docs / "zz-load-copy.meta.json").write_text(json.dumps(meta, ensure_ascii=False),
                                                          encoding="utf-8")
        marks["reindex"] = time.time()
        peer.private_message(ADMIN, "/reindex")

    events = [(a.at, a) for a in asks] + ([(duration * flood_at, do_flood)] if flood else []) \
        + ([(duration * reindex_at, do_reindex)] if reindex else [])
    t0, threads = time.time(), []
    for at, ev in sorted(events, key=lambda e: e[0]):
        time.sleep(max(0.0, t0 + at - time.time()))
        if isinstance(ev, Ask):
            ev.t_push = time.time()
            push = peer.private_message if ev.via == "private" else \
                (lambda u, t, c=ev.chat: peer.group_message(c, u, t, title=f"负载群{-c}"))
            ev.message_id = push(ev.user, ev.text)["message"]["message_id"]
        else:
            threads.append(threading.Thread(target=ev, daemon=True))
            threads[-1].start()
    for t in threads:
        t.join()
    chats = {a.chat for a in asks}

    def sends(chat_ok) -> list[dict]:
        return [c for c in peer.calls[since:] if c["method"] == "sendMessage" and "result" in c
                and chat_ok(c["params"]["chat_id"])]

    def summary() -> dict | None:
        return next((c for c in peer.calls[since:] if c["method"] == "editMessageText"
                     and re.match(r"重建(完成|失败)", c["params"].get("text", ""))), None)

    wait_until(lambda: len(sends(chats.__contains__)) >= len(asks)
               and (not reindex or summary() is not None), timeout, 0.1)
    time.sleep(settle)  # late duplicates would show up here
    report = Report(asks)
    report.duplicates = _match(asks, sends(chats.__contains__), bot.question_log())
    if flood:
        got = sends(lambda c: c == FLOODER)
        end = max([c["time"] for c in got] + [marks["flood_pushed"]])
        report.flood = {"sent": flood, "polite": sum(LIMIT_TEXT in c["params"]["text"] for c in got),
                        "replies": len(got), "window": (marks["flood_start"], end),
                        "others": [a for a in asks if marks["flood_start"] <= a.t_push <= end]}
    if reindex:
        report.reindex = _version_check(asks, old_version, summary(), marks["reindex"])
    return report


def _match(asks: list[Ask], sends: list[dict], rows: list[tuple]) -> int:
    """Attach each sent message to its question; returns the number of surplus replies.

    Group replies quote the question; private ones carry the answer id (the question log's
    row id) in their buttons; the rest (refusals) pair with a chat's unanswered questions in order."""
    by_msg = {(a.chat, a.message_id): a for a in asks}
    by_key = {(a.chat, a.user, norm(a.question)): a for a in asks}
    by_row = {}
    for row_id, chat, user, question, version in rows:
        if (a := by_key.get((chat, user, norm(question)))) is not None:
            a.versions.append(version)
            by_row[row_id] = a
    leftovers: dict[int, list[dict]] = defaultdict(list)
    for c in sorted(sends, key=lambda c: c["time"]):
        p = c["params"]
        rp = p.get("reply_parameters")
        a = by_msg.get((p["chat_id"], rp.get("message_id") if isinstance(rp, dict)
                        else p.get("reply_to_message_id")))
        m = re.search(r"(?:more|full):(\d+)", json.dumps(p.get("reply_markup") or {}))
        if a is None and m:
            a = by_row.get(int(m.group(1)))
        if a is None:
            leftovers[p["chat_id"]].append(c)
        else:
            a.replies.append((c["time"], p["text"]))
    surplus = sum(max(0, len(a.replies) - 1) for a in asks)
    for chat, cs in leftovers.items():
        waiting = sorted((a for a in asks if a.chat == chat and not a.replies), key=lambda a: a.t_push)
        for c in cs:
            if waiting:
                waiting.pop(0).replies.append((c["time"], c["params"]["text"]))
            else:
                surplus += 1
    return surplus


def _version_check(asks: list[Ask], old: str, summary: dict | None, t_reindex: float) -> dict:
    """Answers finished before /reindex came from the old index, questions sent after the
    switch was reported from the new one; in between either, but nothing else and none lost."""
    text = summary["params"]["text"] if summary else "no summary"
    new = (re.search(r"版本 (\S+)", text) or [None, None])[1]
    t_done = summary["time"] if summary else float("inf")
    answered = [a for a in asks if a.replies]
    before = [a for a in answered if min(t for t, _ in a.replies) < t_reindex]
    after = [a for a in answered if a.t_push > t_done]
    seen = Counter(v for a in answered for v in a.versions)
    ok = (text.startswith("重建完成") and new not in (None, old) and set(seen) <= {old, new}
          and all(a.versions == [old] for a in before) and all(a.versions == [new] for a in after)
          and len(after) > 0 and len(before) > 0)
    return {"ok": ok, "old": old, "new": new, "summary": text.replace("\n", "; "), "counts": seen,
            "before": len(before), "after": len(after),
            "before_old": sum(a.versions == [old] for a in before),
            "after_new": sum(a.versions == [new] for a in after)}


def format_report(r: Report, title: str) -> str:
    """The table `make load` prints."""
    def lat(asks: list[Ask] | None = None) -> str:
        v = r.latencies(asks)
        if not v:
            return "-  (n=0)"
        return f"{pct(v, 50):.2f} / {pct(v, 95):.2f} / {max(v, default=0):.2f} s  (n={len(v)})"

    via = Counter(a.via for a in r.asks)
    rows = [("questions sent", f"{len(r.asks)}  (private {via['private']}, /ask {via['ask']}, "
                               f"@mention {via['mention']})"),
            ("answers received", str(sum(bool(a.replies) for a in r.asks))),
            ("lost", str(r.lost)), ("duplicate replies", str(r.duplicates)),
            ("failed (error or rate-limited)", str(r.failed)),
            ("latency p50 / p95 / max", lat()),
            ("  private", lat([a for a in r.asks if a.via == "private"])),
            ("  groups (/ask, @mention)", lat([a for a in r.asks if a.via != "private"]))]
    if r.flood:
        f = r.flood
        rows += [("flooder (1 user)", f"sent {f['sent']}, replies {f['replies']}, of which "
                                      f"rate-limit notices {f['polite']}"),
                 ("  others during the flood", lat(f["others"])),
                 ("  others outside the flood", lat([a for a in r.asks if a not in f["others"]]))]
    if r.reindex:
        x = r.reindex
        rows += [("reindex", f"{x['summary']}  ({'ok' if x['ok'] else 'NOT OK'})"),
                 ("  answers per index version", ", ".join(f"{v}: {n}" for v, n in x["counts"].items())),
                 ("  done before /reindex -> old", f"{x['before_old']}/{x['before']} ({x['old']})"),
                 ("  sent after the switch -> new", f"{x['after_new']}/{x['after']} ({x['new']})")]
    width = max(len(k) for k, _ in rows)
    problems = r.problems()
    return "\n".join([title, "-" * len(title)] + [f"{k:<{width}}  {v}" for k, v in rows]
                     + [f"{'result':<{width}}  " + ("PASS (0 lost, 0 duplicates, p95 <= 1 s)"
                                                    if not problems else "FAIL: " + "; ".join(problems))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--questions", type=int, default=10, help="questions per user")
    ap.add_argument("--rate", type=float, default=10.0, help="questions per second offered overall")
    ap.add_argument("--group-size", type=int, default=2, help="users per group chat")
    ap.add_argument("--flood", type=int, default=100, help="messages from one flooding user (0: none)")
    ap.add_argument("--rate-limit", type=int, default=20, help="PLANBOT_RATE_LIMIT_PER_MINUTE")
    ap.add_argument("--reindex", action="store_true", help="an admin runs /reindex mid-run")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="planbot-load-") as tmp:
        bot = BotProcess(Path(tmp), rate_limit=a.rate_limit)
        try:
            report = run_load(bot, a.users, a.questions, a.rate, a.group_size, a.flood, a.reindex,
                              a.seed)
        finally:
            code = bot.stop()
        log = bot.log()
    title = (f"planbot load: {a.users} users x {a.questions} questions at ~{a.rate:g}/s, "
             f"groups of {a.group_size}, PLANBOT_RATE_LIMIT_PER_MINUTE={a.rate_limit}"
             + (", /reindex mid-run" if a.reindex else ""))
    print(format_report(report, title))
    leaks = [w for w in (TOKEN, TOKEN.split(":")[1]) if w in log]
    if code != 0 or leaks or "Traceback" in log:
        print(f"bot exit {code}; token in log: {bool(leaks)}; traceback: {'Traceback' in log}")
        print(log[-3000:])
        return 1
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
