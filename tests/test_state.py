"""The update journal's crash rules, without a bot process: a fetched update that was never
finished is replayed once after a restart, and not again if that run died on it too."""
from __future__ import annotations

import sqlite3

from bot.state import State


def _update(uid: int) -> dict:
    return {"update_id": uid, "message": {"message_id": uid, "date": 0, "chat": {"id": 1, "type": "private"},
                                          "text": "/reindex"}}


def test_unfinished_update_is_replayed_once_then_given_up(tmp_path):
    db = tmp_path / "state.db"
    State(db).journal_updates([_update(7), _update(8)])
    State(db).finish_update(8)
    pending, given_up = State(db).unfinished_updates()  # first restart
    assert [u["update_id"] for u in pending] == [7] and given_up == []
    pending, given_up = State(db).unfinished_updates()  # it killed that run as well
    assert pending == [] and given_up == [7]
    assert State(db).update_done(7)


def test_state_db_from_before_replay_counting_is_upgraded(tmp_path):
    db = tmp_path / "state.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE updates (update_id INTEGER PRIMARY KEY, payload TEXT, received REAL, done REAL)")
    con.execute("INSERT INTO updates VALUES (5, '{\"update_id\": 5}', 0, NULL)")
    con.commit()
    con.close()
    pending, _ = State(db).unfinished_updates()
    assert [u["update_id"] for u in pending] == [5]
