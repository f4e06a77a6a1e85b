#!/usr/bin/env python3
"""Where a serving process's memory goes: resident set (VmRSS, MB) after each step of what
`python -m bot` does on the shipped corpus, one fresh process per step list.

Steps: the bot's imports; Engine.open on an index built beforehand (in another process, as the bot
finds it); the warm-up question; every seed question (Chinese, English, Traditional, typos); a
/reindex that embeds four retitled copies of the article; the seed questions again.

`python tests/memsteps.py [TREE …]` runs the same steps with each source tree first on the path
(default: this checkout), in one run, so a change is shown next to what it replaced, e.g.
`git archive main | tar -x -C /tmp/base && python tests/memsteps.py /tmp/base .`
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, shutil, sys, time
from pathlib import Path

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)

def mapped():  # resident pages of the mapped model weights file
    total, cur = 0, False
    for line in open("/proc/self/smaps"):
        p = line.split()
        if len(p) >= 5 and "-" in p[0] and not p[0].endswith(":"):
            cur = line.rstrip().endswith(".onnx.data")
        elif cur and p[0] == "Rss:":
            total += int(p[1])
    return round(total / 1024, 1)

rows = []
def step(name):
    rows.append((name, rss(), mapped()))

step("python")
import bot.app  # telegram, index.engine and what they import
getattr(bot.app, "limit_malloc_arenas", lambda: None)()  # as bot.app.run() does first
step("imports (bot.app)")
from index.config import IndexSettings
from index.engine import Engine
from index.evaluate import load_gold

engine = Engine.open(IndexSettings(), build_if_missing=False)
step("Engine.open")
engine.answer("莱山的主导产业是什么")
step("warm-up question")
qs = [r["question"] for r in load_gold(Path(sys.argv[1]))]
for q in qs:
    engine.answer(q)
step(f"{len(qs)} seed questions")
docs = Path(os.environ["PLANBOT_DOCS_DIR"])
art = next(docs.glob("*.txt"))
meta = json.loads(art.with_suffix(".meta.json").read_text(encoding="utf-8"))
for i in range(4):
    shutil.copy(art, docs / f"zz-copy-{i}.txt")
    (docs / f"zz-copy-{i}.meta.json").write_text(json.dumps({**meta, "title": f"副本{i}：" + meta["title"]},
                                                            ensure_ascii=False), encoding="utf-8")
report = engine.build()
step(f"/reindex (+{report.embedded} passages embedded)")
for q in qs:
    engine.answer(q)
step("seed questions again")
print("ROWS " + json.dumps(rows, ensure_ascii=False))
"""


def run_tree(tree: Path, py: str) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="planbot-mem-") as tmp:
        var, docs = Path(tmp) / "var", Path(tmp) / "docs"
        var.mkdir()
        (var / "models").symlink_to((REPO / "var" / "models").resolve(), target_is_directory=True)
        shutil.copytree(tree / "data" / "docs", docs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOT_")}
        env.update(PYTHONPATH=str(tree), PLANBOT_VAR_DIR=str(var), PLANBOT_DOCS_DIR=str(docs), HF_HUB_OFFLINE="1",
                   PLANBOT_VOCAB_DIR=str(tree / "data" / "vocab"), PLANBOT_RANK_MODEL=str(tree / "data/rank/model.json"))
        subprocess.run([py, "-c", "from index.cli import main; import sys; sys.exit(main(['build']))"],
                       env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run([py, "-c", CHILD, str(tree / "data" / "eval" / "questions.jsonl")], env=env, cwd=tmp,
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.rsplit("ROWS ", 1)[1])


def main(argv: list[str]) -> int:
    trees = [Path(t).resolve() for t in argv] or [REPO]
    py = sys.executable
    results = {str(t): run_tree(t, py) for t in trees}
    names = [r[0] for r in next(iter(results.values()))]
    width = max(len(n) for n in names) + 2
    print("VmRSS MB after each step (of which: the mapped model weights)")
    print("".ljust(width) + "".join(f"{t[-24:]:>26}" for t in results))
    for i, name in enumerate(names):
        print(name.ljust(width) + "".join(f"{rows[i][1]:>17.1f} ({rows[i][2]:>5.1f})" for rows in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
