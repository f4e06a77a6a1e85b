"""`planbot`: a thin command line over index.Engine; `planbot bot` execs `python -m bot`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import IndexSettings


def _engine(args, build_if_missing: bool = True):
    from .engine import Engine
    from .store import IndexError_

    try:
        return Engine.open(IndexSettings(), build_if_missing=build_if_missing)
    except IndexError_ as exc:
        sys.exit(f"planbot: {exc}")


def print_answer(a, out=sys.stdout) -> None:
    if not a.answered:
        print(f"无法回答：{a.reason}", file=out)
        return
    print(f"答：{a.text}\n", file=out)
    for c in a.citations:
        p = c.passage
        where = " · ".join(x for x in (p.date, p.heading or f"第{p.paragraph}段", f"第{p.page}页" if p.page else "") if x)
        print(f"[{c.rank}] {p.title} · {where}  (score {c.score:.3f})", file=out)
        print(f"    {c.marked_text}", file=out)
        if p.url:
            print(f"    {p.url}", file=out)
    print(f"({a.latency_ms:.0f} ms, index {a.index_version})", file=out)


def cmd_build(args) -> int:
    from tqdm import tqdm

    from .engine import Engine
    from .store import IndexError_

    engine = Engine(IndexSettings())
    bar = None

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="embedding passages", unit="passage")
        bar.n = done
        bar.refresh()

    try:
        engine.load()
    except Exception as exc:
        logging.info("building from scratch: %s", exc)
    try:
        report = engine.build(progress=progress)
    except (IndexError_, RuntimeError, OSError) as exc:  # disk full, no readable documents, …
        sys.exit(f"planbot build failed: {exc}")
    finally:
        if bar:
            bar.close()
    print(f"index {report.version}: {report.passages} passages, embedded {report.embedded} "
          f"(added {report.added}, changed {report.changed}, removed {report.removed}, "
          f"unchanged {len(report.unchanged)}) in {report.seconds:.1f}s")
    for name, why in report.failures.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    return 0


def cmd_ask(args) -> int:
    from .engine import EMPTY_REASON, is_empty
    from .models import Answer

    question = " ".join(args.question)
    if is_empty(question):  # no model load for a blank question
        a = Answer(question=question, answered=False, reason=EMPTY_REASON)
    else:
        a = _engine(args).answer(question, retriever=args.retriever)
    if args.json:
        d = a.to_dict()
        print(json.dumps({k: d[k] for k in ("question", "answered", "reason", "answer", "citations", "latency_ms")},
                         ensure_ascii=False, indent=2))
    else:
        print_answer(a)
    return 0


def cmd_chat(args) -> int:
    engine = _engine(args)
    print("planbot 终端问答 — 输入问题，回车提问；空行或 Ctrl-D 退出。")
    context = ""
    while True:
        try:
            line = input("问> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            return 0
        from .followup import resolve

        question = resolve(line, context)
        print_answer(engine.answer(question))
        context = question
        sys.stdout.flush()


def cmd_eval(args) -> int:
    from .evaluate import RETRIEVERS, corpus_engine, evaluate, format_table, load_gold

    engine = corpus_engine([Path(d) for d in args.docs]) if args.docs else _engine(args)
    retrievers = RETRIEVERS if args.retriever == "all" else [args.retriever]
    names = {"hybrid": "planbot"}
    for path in args.path:
        gold = load_gold(Path(path))
        runs = {r: evaluate(engine, gold, retriever=r) for r in retrievers}
        if args.json:
            print(json.dumps({"path": path, "runs": runs}, ensure_ascii=False, indent=2))
        else:
            print(f"\n{path} — {len(gold)} questions, {len(engine.documents())} documents, "
                  f"{engine.manifest.get('passage_count', '?')} passages\n")
            print(format_table({names.get(r, r): run["metrics"] for r, run in runs.items()}))
    return 0


def cmd_fit(args) -> int:
    """Each question file is fitted against its own corpus: PATH@DIR,DIR (default: --docs)."""
    from .evaluate import corpus_engine
    from .fit import fit

    sets = []
    for spec in args.path:
        path, _, dirs = spec.partition("@")
        folders = dirs.split(",") if dirs else args.docs
        sets.append((corpus_engine([Path(d) for d in folders]), [Path(path)]))
    command = "planbot fit " + " ".join(args.path) + " --docs " + " ".join(str(d) for d in args.docs)
    info = fit(sets, Path(args.out), command=command)
    print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(args)


def cmd_bot(args) -> int:
    """Hand over to the bot's one entry point, `python -m bot`, in this same process (exec: same
    pid, signals and exit code). index/ imports nothing from bot/, and the bot configures its
    own logging exactly as when started directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bot"])
    return 1  # not reached


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="planbot", description="Cited answers about Yantai's county-economy plan.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or update the index").set_defaults(func=cmd_build)
    a = sub.add_parser("ask", help="answer one question")
    a.add_argument("question", nargs="+")
    a.add_argument("--json", action="store_true")
    a.add_argument("--retriever", choices=["hybrid", "bm25", "dense", "rrf"])
    a.set_defaults(func=cmd_ask)
    sub.add_parser("chat", help="interactive terminal chat").set_defaults(func=cmd_chat)
    e = sub.add_parser("eval", help="score a JSONL gold set")
    e.add_argument("path", nargs="+")
    e.add_argument("--json", action="store_true")
    e.add_argument("--retriever", choices=["hybrid", "bm25", "dense", "rrf", "all"], default="all")
    e.add_argument("--docs", nargs="*", default=[], help="document folders to search together (scratch index "
                   "under var/eval); default: the configured index")
    e.set_defaults(func=cmd_eval)
    f = sub.add_parser("fit", help="fit the reranker and refusal weights on a dev split")
    f.add_argument("path", nargs="+", help="question files to fit on, each optionally FILE@DIR,DIR (its corpus)")
    f.add_argument("--docs", nargs="+", default=["data/docs", "data/eval/corpus"])
    f.add_argument("--out", default="data/rank/model.json")
    f.set_defaults(func=cmd_fit)
    b = sub.add_parser("bench", help="latency / throughput / scale benchmark")
    b.add_argument("--passages", type=int, nargs="*", default=[], help="synthetic corpus sizes (e.g. 1000 10000)")
    b.add_argument("--queries", type=int, default=200)
    b.add_argument("--embed-max", type=int, default=10000,
                   help="passages embedded by the model per scale run; more are perturbed copies")
    b.add_argument("--engine", action="store_true", help="also run the article benchmark with --passages")
    b.add_argument("--ef-sweep", type=int, nargs="*", default=[],
                   help="also HNSW recall@10 / latency at these efSearch values (PLANBOT_HNSW_EF_SEARCH)")
    b.set_defaults(func=cmd_bench)
    sub.add_parser("bot", help="run the Telegram bot").set_defaults(func=cmd_bot)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "jieba", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
