"""End to end on the real article: the gold set is sound, answers cite the right
passage or refuse with a reason, and the `planbot` CLI prints what it promises."""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest

from conftest import ARTICLE_URL, DOCS, GOLD, REPO
from index.followup import resolve
from index.textnorm import fold

KINDS = {"fact", "paraphrase", "number", "multi", "compare", "typo", "traditional", "english", "unanswerable"}


@pytest.fixture(scope="module")
def gold() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def by_id(gold: list[dict], qid: str) -> dict:
    return next(row for row in gold if row["id"] == qid)


# -- the gold set -------------------------------------------------------------------

def test_gold_set_is_well_formed(gold):
    assert len(gold) >= 60
    for row in gold:
        assert set(row) == {"id", "question", "answerable", "evidence", "kind"}, row
        assert row["question"].strip() and row["kind"] in KINDS
        assert bool(row["evidence"]) == row["answerable"] == (row["kind"] != "unanswerable"), row["id"]
    assert len({row["id"] for row in gold}) == len(gold)
    assert len({row["question"] for row in gold}) == len(gold)
    assert sum(not row["answerable"] for row in gold) >= 12
    assert set(Counter(row["kind"] for row in gold)) == KINDS


def test_every_evidence_string_is_in_one_passage(gold, article, doc_engine):
    """Otherwise a question could never score a hit: evidence must sit inside a single passage."""
    text = fold(article.text)
    passages = [fold(p.text) for p in doc_engine._live.stored.passages]
    for row in gold:
        for ev in row["evidence"]:
            assert fold(ev) in text, (row["id"], ev)
            assert any(fold(ev) in p for p in passages), (row["id"], ev)


# -- answering ----------------------------------------------------------------------

def cited(answer, evidence: list[str]) -> bool:
    return any(fold(e) in fold(c.passage.text) for c in answer.citations for e in evidence)


def test_answers_laishan_with_a_citation(doc_engine):
    a = doc_engine.answer("莱山的主导产业是什么")
    assert a.answered and a.text
    assert any("莱山" in c.passage.text and c.passage.url == ARTICLE_URL for c in a.citations)
    assert [c.rank for c in a.citations] == list(range(1, len(a.citations) + 1))
    assert a.citations[0].best_sentence in a.citations[0].passage.text


def test_refuses_a_place_the_article_never_mentions(doc_engine):
    a = doc_engine.answer("莱州的主导产业是什么")
    assert not a.answered and a.citations == []
    assert "莱州" in a.reason


@pytest.mark.parametrize("qid", ["q045", "q046", "q047", "q053", "q055", "q057"])
def test_traditional_and_english_questions_find_the_passage(doc_engine, gold, qid):
    """Readers ask in 繁體 and in English; the cited passages must still hold the evidence."""
    row = by_id(gold, qid)
    a = doc_engine.answer(row["question"])
    assert a.answered, a.reason
    assert cited(a, row["evidence"]), [c.passage.text[:30] for c in a.citations]


@pytest.mark.parametrize("question", ["", "   ", "？？"])
def test_empty_question_is_refused_politely(doc_engine, question):
    a = doc_engine.answer(question)
    assert not a.answered and "问题是空的" in a.reason


def test_follow_up_is_resolved_against_the_previous_question():
    assert resolve("那牟平呢?", "莱山的主导产业是什么") == "牟平的主导产业是什么"
    assert resolve("那牟平呢？", "莱山的主导产业是什么") == "牟平的主导产业是什么"
    assert resolve("芝罘区的突破口是什么?", "莱山的主导产业是什么") == "芝罘区的突破口是什么?"
    assert resolve("那牟平呢?", "") == "那牟平呢?"


# -- the CLI --------------------------------------------------------------------------
EVAL_IDS = ["q001", "q002", "q004", "q006", "q025", "q045", "q055", "q059", "q065", "q069"]


@pytest.fixture(scope="module")
def cli(session_var, doc_engine, gold, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run the three `planbot` invocations side by side (each loads the model, ~5 s) on the
    index doc_engine already built; tests below check one result each."""
    subset = tmp_path_factory.mktemp("eval") / "subset.jsonl"
    subset.write_text("".join(json.dumps(by_id(gold, i), ensure_ascii=False) + "\n" for i in EVAL_IDS),
                      encoding="utf-8")
    env = {**os.environ, "PLANBOT_VAR_DIR": str(session_var), "PLANBOT_DOCS_DIR": str(DOCS),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    runs = {
        "ask": ["ask", "--json", "莱山的主导产业是什么"],
        "eval": ["eval", str(subset), "--json", "--retriever", "all"],
        "blank": ["ask", "   "],
    }
    procs = {name: subprocess.Popen([str(REPO / ".venv" / "bin" / "planbot"), *args], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in runs.items()}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_cli_ask_json(cli):
    proc = cli["ask"]
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"question", "answered", "reason", "answer", "citations", "latency_ms"} <= set(out)
    assert out["question"] == "莱山的主导产业是什么" and out["answered"] is True
    assert out["citations"] and isinstance(out["latency_ms"], (int, float))
    for rank, c in enumerate(out["citations"], 1):
        assert {"rank", "doc_id", "title", "heading", "url", "text", "score", "date"} <= set(c)
        assert c["rank"] == rank and c["url"] == ARTICLE_URL
        assert c["doc_id"] == "yantai-county-economy-2021"
    assert any("莱山" in c["text"] for c in out["citations"])


def test_cli_eval_json(cli):
    """planbot and the three plain baselines, scored on the same questions in one run."""
    proc = cli["eval"]
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert set(runs) == {"bm25", "dense", "rrf", "hybrid"}
    for name, run in runs.items():
        overall = run["metrics"]["overall"]
        assert {"hit@1", "hit@3", "mrr", "answer_holds", "refused", "false_refusals", "snippet_median",
                "snippet_max"} <= set(overall)
        assert (overall["n"], overall["answerable"], overall["unanswerable"]) == (10, 7, 3)
        assert [r["id"] for r in run["results"]] == EVAL_IDS
        answerable = [r for r in run["results"] if r["gold_answerable"]]
        hits1 = sum(r["answered"] and r["hit_rank"] == 1 for r in answerable)
        assert overall["hit@1"] == round(hits1 / len(answerable), 3)
    assert runs["bm25"]["metrics"]["overall"]["refused"] == 0.0  # baselines never refuse


def test_cli_ask_blank_question(cli):
    proc = cli["blank"]
    assert proc.returncode == 0, proc.stderr
    assert "问题是空的" in proc.stdout
    assert "Traceback" not in proc.stderr
