"""A reduced `make load` inside pytest: 8 users x 3 questions (private, /ask, @mention) against
the real bot process, a small flood and an admin /reindex mid-run. The harness is
tests/loadtest.py; latency is printed (pytest -s) but not asserted, the machine is shared."""
from __future__ import annotations

import pytest

import loadtest

pytestmark = pytest.mark.slow


def test_reduced_load_with_reindex_loses_nothing_and_switches_version(tmp_path):
    bot = loadtest.BotProcess(tmp_path, rate_limit=20)
    try:
        # 24 questions over ~20 s; the rebuild (a copied article, 29 passages) starts at ~5 s so
        # that questions are answered before, during and after the switch.
        report = loadtest.run_load(bot, users=8, per_user=3, rate=1.2, flood=30, reindex=True,
                                   reindex_at=0.25)
    finally:
        code = bot.stop()
    print("\n" + loadtest.format_report(report, "reduced load: 8 users x 3 questions + /reindex"))
    assert len(report.asks) == 24
    assert {a.via for a in report.asks} == {"private", "ask", "mention"}
    assert report.lost == 0, [a.text for a in report.asks if not a.replies]
    assert report.duplicates == 0
    assert report.failed == 0
    x = report.reindex
    assert x["summary"].startswith("重建完成"), x
    assert x["new"] != x["old"]
    assert x["before"] > 0 and x["after"] > 0, x  # both sides of the switch were exercised
    assert x["before_old"] == x["before"] and x["after_new"] == x["after"], x
    assert set(x["counts"]) == {x["old"], x["new"]}, x
    assert x["ok"]
    # 30 messages against a limit of 20/min: 20 answers and one polite notice, then silence
    assert report.flood["polite"] == 1 and report.flood["replies"] == 21, report.flood
    log = bot.log()
    assert code == 0, log[-3000:]
    assert loadtest.TOKEN not in log and "Traceback" not in log
