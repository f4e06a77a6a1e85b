"""SQLite state: groups, subscriptions, feedback, question log, answers behind buttons and the
update journal that makes answers exactly-once across restarts."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (chat_id INTEGER PRIMARY KEY, title TEXT, status TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS subscriptions (chat_id INTEGER PRIMARY KEY, since REAL);
CREATE TABLE IF NOT EXISTS feedback (answer_id INTEGER, user_id INTEGER, vote INTEGER, ts REAL,
    PRIMARY KEY (answer_id, user_id));
CREATE TABLE IF NOT EXISTS questions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, chat_id INTEGER,
    user_id INTEGER, question TEXT, answered INTEGER, latency_ms REAL, index_version TEXT, payload TEXT);
CREATE TABLE IF NOT EXISTS updates (update_id INTEGER PRIMARY KEY, payload TEXT, received REAL, done REAL,
    replays INTEGER NOT NULL DEFAULT 0);
"""


class State:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(updates)")}
        if "replays" not in columns:  # a state db from before replays were counted
            self._db.execute("ALTER TABLE updates ADD COLUMN replays INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def group_seen(self, chat_id: int, title: str, status: str) -> None:
        self._exec("INSERT INTO groups VALUES (?,?,?,?) ON CONFLICT(chat_id) DO UPDATE SET "
                   "title=excluded.title, status=excluded.status, updated=excluded.updated",
                   (chat_id, title, status, time.time()))
        if status in ("left", "kicked"):
            self.unsubscribe(chat_id)

    def groups(self) -> list[tuple[int, str, str]]:
        return [tuple(r) for r in self._exec("SELECT chat_id, title, status FROM groups ORDER BY chat_id")]

    def subscribe(self, chat_id: int) -> bool:
        return bool(self._exec("INSERT OR IGNORE INTO subscriptions VALUES (?, ?) RETURNING chat_id",
                               (chat_id, time.time())))

    def unsubscribe(self, chat_id: int) -> bool:
        return bool(self._exec("DELETE FROM subscriptions WHERE chat_id=? RETURNING chat_id", (chat_id,)))

    def subscribers(self) -> list[int]:
        return [r[0] for r in self._exec("SELECT chat_id FROM subscriptions ORDER BY chat_id")]

    def log_question(self, chat_id: int, user_id: int, question: str, answer: dict) -> int:
        rows = self._exec(
            "INSERT INTO questions (ts, chat_id, user_id, question, answered, latency_ms, index_version, payload) "
            "VALUES (?,?,?,?,?,?,?,?) RETURNING id",
            (time.time(), chat_id, user_id, question, int(answer["answered"]), answer.get("latency_ms", 0.0),
             answer.get("index_version", ""), json.dumps(answer, ensure_ascii=False)))
        return rows[0][0]

    def answer_payload(self, answer_id: int) -> dict | None:
        rows = self._exec("SELECT payload FROM questions WHERE id=?", (answer_id,))
        return json.loads(rows[0][0]) if rows else None

    def feedback(self, answer_id: int, user_id: int, vote: int) -> None:
        self._exec("INSERT INTO feedback VALUES (?,?,?,?) ON CONFLICT(answer_id, user_id) DO UPDATE SET "
                   "vote=excluded.vote, ts=excluded.ts", (answer_id, user_id, vote, time.time()))

    # -- update journal (bot/delivery.py): payload kept until done, done ids kept for dedup
    def journal_updates(self, updates: list[dict]) -> None:
        """Store fetched updates in one transaction; ids already known are left untouched."""
        rows = [(u["update_id"], json.dumps(u, ensure_ascii=False), time.time()) for u in updates]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR IGNORE INTO updates (update_id, payload, received) "
                                     "VALUES (?,?,?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def update_done(self, update_id: int) -> bool:
        return bool(self._exec("SELECT 1 FROM updates WHERE update_id=? AND done IS NOT NULL", (update_id,)))

    def finish_update(self, update_id: int) -> None:
        """Only journaled (i.e. polled) updates are tracked; ones fed in directly are not."""
        self._exec("UPDATE updates SET done=?, payload=NULL WHERE update_id=?", (time.time(), update_id))

    def unfinished_updates(self, max_replays: int = 1) -> tuple[list[dict], list[int]]:
        """(updates to replay now, ids given up). An update already replayed `max_replays` times
        died with the process each time (an OOM-killed /reindex, say): replaying it again would
        crash every restart, so it is marked done instead."""
        rows = self._exec("SELECT update_id, payload, replays FROM updates "
                          "WHERE done IS NULL AND payload IS NOT NULL ORDER BY update_id")
        replay = [(uid, payload) for uid, payload, n in rows if n < max_replays]
        give_up = [uid for uid, _, n in rows if n >= max_replays]
        for uid in give_up:
            self.finish_update(uid)
        for uid, _ in replay:
            self._exec("UPDATE updates SET replays = replays + 1 WHERE update_id=?", (uid,))
        return [json.loads(p) for _, p in replay], give_up

    def prune_updates(self, max_age: float) -> None:
        """Forget entries older than Telegram could redeliver (and too stale to replay)."""
        self._exec("DELETE FROM updates WHERE received < ?", (time.time() - max_age,))

    def stats(self) -> dict:
        q = self._exec("SELECT COUNT(*), COALESCE(SUM(1 - answered), 0) FROM questions")[0]
        up = self._exec("SELECT COUNT(*) FROM feedback WHERE vote > 0")[0][0]
        down = self._exec("SELECT COUNT(*) FROM feedback WHERE vote < 0")[0][0]
        return {"questions": q[0], "refusals": q[1], "thumbs_up": up, "thumbs_down": down,
                "groups": len(self.groups()), "subscribers": len(self.subscribers())}
