"""SQLite state: groups, subscriptions, feedback, question log and answers behind buttons."""
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
"""


class State:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
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

    def stats(self) -> dict:
        q = self._exec("SELECT COUNT(*), COALESCE(SUM(1 - answered), 0) FROM questions")[0]
        up = self._exec("SELECT COUNT(*) FROM feedback WHERE vote > 0")[0][0]
        down = self._exec("SELECT COUNT(*) FROM feedback WHERE vote < 0")[0][0]
        return {"questions": q[0], "refusals": q[1], "thumbs_up": up, "thumbs_down": down,
                "groups": len(self.groups()), "subscribers": len(self.subscribers())}
