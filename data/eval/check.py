#!/usr/bin/env python3
"""Self-check of the planbot development corpus and question sets.

Loads the seed article (../corpus/yantai-county-economy-2021.txt) and every document in docs/:
  .txt / .md  as text
  .html       BeautifulSoup visible text (script and style removed)
  .docx       python-docx paragraphs, then every table row with its cells joined by " | "
  .pdf        pypdf page text
and then verifies dev.jsonl and test.jsonl:
  * ids unique (across both files) and prefixed "dev-" / "test-"; no question text repeated;
  * every line has id, question, answer, evidence, answerable, kind, doc; kind is known;
  * answerable questions: non-empty answer and evidence; every evidence string is 6-25 characters
    (raw and folded) and occurs, folded, in one of the documents named in "doc"; every named document
    holds at least one evidence string; multi_part questions carry "evidence_parts" (a list of
    non-empty lists whose strings all appear in "evidence");
  * year_sensitive and cross_doc questions: no evidence string occurs in any document not named in
    "doc" (other kinds only get a warning);
  * unanswerable questions: answerable false, kind "unanswerable", answer "" and evidence [];
  * at least 25% of each file is unanswerable;
  * (warning only) a test evidence string that is also a dev evidence string;
  * every document has a sidecar <stem>.meta.json with title, url, date, outlet, language, note,
    sources; language is zh-Hans, zh-Hant or en; date is YYYY-MM-DD or YYYY-MM; the extracted text is
    600-3000 characters long.
Folding = NFKC, then all whitespace and punctuation removed (the same rule the scorer uses).

Usage:  python check.py              run all checks, print counts, end with "ALL OK" (exit 0)
        python check.py --dump STEM  print the extracted text of one document
        python check.py --lengths    print the extracted length of every document
Needs: beautifulsoup4, python-docx, pypdf.
"""
import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
# corpus2/ holds reports written after tuning began; only test2.jsonl asks about them (and, once test2 was
# scored, dev3.jsonl). corpus3/ holds reports only test3.jsonl asks about; corpus4/ only test4.jsonl; corpus5/ only test5.jsonl;
# corpus6/ only test6.jsonl; corpus7/ only test7.jsonl; corpus8/ only test8.jsonl; corpus9/ only test9.jsonl.
DOC_DIRS = [d for d in (os.path.join(HERE, c) for c in ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7", "corpus8", "corpus9")) if os.path.isdir(d)]
SEED = os.path.normpath(os.path.join(HERE, "..", "docs", "yantai-county-economy-2021.txt"))
SEED_STEM = "yantai-county-economy-2021"
SPLITS = tuple(s for s in ("dev", "test", "dev2", "test2", "dev3", "test3", "test4", "test5", "test6", "test7", "test8", "test9") if os.path.exists(os.path.join(HERE, f"{s}.jsonl")))
KINDS = {"fact", "number", "date", "paraphrase", "typo", "traditional", "english", "zh_about_en",
         "table", "year_sensitive", "cross_doc", "multi_part", "unanswerable"}
STRICT_KINDS = {"year_sensitive", "cross_doc"}
META_KEYS = ("title", "url", "date", "outlet", "language", "note", "sources")
LANGS = {"zh-Hans", "zh-Hant", "en"}


def fold(s):
    s = unicodedata.normalize("NFKC", s)
    return re.sub(r"[\s\W_]+", "", s)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def read_html(path):
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(read_text(path), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text("\n")


def read_docx(path):
    import docx
    d = docx.Document(path)
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def read_pdf(path):
    import pypdf
    return "\n".join((page.extract_text() or "") for page in pypdf.PdfReader(path).pages)


READERS = {".txt": read_text, ".md": read_text, ".html": read_html, ".docx": read_docx, ".pdf": read_pdf}


def load_docs():
    texts = {SEED_STEM: read_text(SEED)}
    files = {}
    for folder in DOC_DIRS:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".meta.json"):
                continue
            stem, ext = os.path.splitext(name)
            if ext not in READERS:
                continue
            texts[stem] = READERS[ext](os.path.join(folder, name))
            files[stem] = os.path.join(folder, name)
    return texts, files


def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def main(argv):
    texts, files = load_docs()
    if "--dump" in argv:
        print(texts[argv[argv.index("--dump") + 1]])
        return 0
    if "--lengths" in argv:
        for stem in sorted(texts):
            print(f"{len(texts[stem]):5d}  {stem}")
        return 0

    folded = {k: fold(v) for k, v in texts.items()}
    errs, warns = [], []

    # ---- documents and sidecars
    for stem, name in files.items():
        mp = os.path.join(os.path.dirname(name), stem + ".meta.json")
        if not os.path.exists(mp):
            errs.append(f"{name}: no sidecar {stem}.meta.json")
            continue
        try:
            meta = json.load(open(mp, encoding="utf-8"))
        except ValueError as e:
            errs.append(f"{stem}.meta.json: not JSON ({e})")
            continue
        for key in META_KEYS:
            if not meta.get(key):
                errs.append(f"{stem}.meta.json: missing or empty {key}")
        if meta.get("language") not in LANGS:
            errs.append(f"{stem}.meta.json: bad language {meta.get('language')!r}")
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", str(meta.get("date", ""))):
            errs.append(f"{stem}.meta.json: date {meta.get('date')!r} is not YYYY-MM-DD or YYYY-MM")
        if not isinstance(meta.get("sources"), list) or meta.get("url") not in meta.get("sources", []):
            errs.append(f"{stem}.meta.json: sources must be a list that includes url")
        n = len(texts[stem])
        if not 600 <= n <= 3000:
            errs.append(f"{name}: extracted length {n} outside 600-3000")

    # ---- questions
    seen_ids, seen_q = Counter(), Counter()
    per_split = {}
    for split in SPLITS:
        path = os.path.join(HERE, f"{split}.jsonl")
        qs = []
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                qs.append(json.loads(line))
            except ValueError as e:
                errs.append(f"{split}.jsonl:{lineno}: not JSON ({e})")
        per_split[split] = qs
        for q in qs:
            qid = q.get("id", f"{split}:?")
            seen_ids[qid] += 1
            seen_q[fold(q.get("question", ""))] += 1
            if not str(qid).startswith(split + "-"):
                errs.append(f"{qid}: id should start with {split}-")
            missing = [k for k in ("id", "question", "answer", "evidence", "answerable", "kind", "doc") if k not in q]
            if missing:
                errs.append(f"{qid}: missing field(s) {missing}")
                continue
            kind = q["kind"]
            if kind not in KINDS:
                errs.append(f"{qid}: unknown kind {kind!r}")
            if not q["question"].strip():
                errs.append(f"{qid}: empty question")
            if not q["answerable"]:
                if kind != "unanswerable":
                    errs.append(f"{qid}: answerable is false but kind is {kind!r}")
                if q["answer"] or q["evidence"]:
                    errs.append(f"{qid}: unanswerable but answer/evidence not empty")
                continue
            if kind == "unanswerable":
                errs.append(f"{qid}: kind unanswerable but answerable is true")
            if not str(q["answer"]).strip():
                errs.append(f"{qid}: answerable with empty answer")
            stems = as_list(q["doc"])
            if not stems:
                errs.append(f"{qid}: answerable with no doc")
            for s in stems:
                if s not in texts:
                    errs.append(f"{qid}: unknown doc {s!r}")
            stems = [s for s in stems if s in texts]
            evidence = q["evidence"]
            if not evidence:
                errs.append(f"{qid}: answerable without evidence")
            hit_docs = set()
            for ev in evidence:
                fe = fold(ev)
                if not (6 <= len(ev) <= 25 and 6 <= len(fe) <= 25):
                    errs.append(f"{qid}: evidence length raw {len(ev)} / folded {len(fe)} not in 6-25: {ev}")
                where = [s for s in stems if fe and fe in folded[s]]
                if not where:
                    errs.append(f"{qid}: evidence not found in {stems}: {ev}")
                hit_docs.update(where)
                others = [k for k in folded if k not in stems and fe and fe in folded[k]]
                if others:
                    msg = f"{qid} ({kind}): evidence also in {others}: {ev}"
                    (errs if kind in STRICT_KINDS else warns).append(msg)
            for s in stems:
                if s not in hit_docs:
                    errs.append(f"{qid}: named doc {s} holds none of the evidence")
            if kind == "cross_doc" and len(stems) < 2:
                errs.append(f"{qid}: cross_doc needs at least two docs")
            if kind == "multi_part" or "evidence_parts" in q:
                parts = q.get("evidence_parts")
                if not isinstance(parts, list) or len(parts) < 2 or not all(isinstance(p, list) and p for p in parts):
                    errs.append(f"{qid}: evidence_parts must be a list of >= 2 non-empty lists")
                else:
                    for p in parts:
                        for ev in p:
                            if ev not in evidence:
                                errs.append(f"{qid}: evidence_parts string not in evidence: {ev}")

    for qid, c in seen_ids.items():
        if c > 1:
            errs.append(f"duplicate id {qid}")
    for qtext, c in seen_q.items():
        if c > 1:
            errs.append(f"question text used {c} times: {qtext[:30]}")

    # ---- report
    print(f"docs: {len(files)} (+ seed) in {', '.join(os.path.basename(d) for d in DOC_DIRS)}")
    for split, qs in per_split.items():
        n_un = sum(1 for q in qs if not q.get("answerable"))
        share = n_un / len(qs) if qs else 0
        kinds = Counter(q.get("kind") for q in qs)
        seed_n = sum(1 for q in qs if SEED_STEM in as_list(q.get("doc")) + as_list(q.get("near_miss")))
        print(f"{split}: {len(qs)} questions, {len(qs) - n_un} answerable, {n_un} unanswerable "
              f"({share:.0%}); about the seed article: {seed_n}")
        print("  by kind:", dict(sorted(kinds.items())))
        if share < 0.25:
            errs.append(f"{split}: only {share:.0%} unanswerable (need >= 25%)")
        missing_kinds = KINDS - set(kinds)
        if missing_kinds:
            warns.append(f"{split}: no question of kind(s) {sorted(missing_kinds)}")
    dev_ev = {e for q in per_split.get("dev", []) + per_split.get("dev2", []) + per_split.get("dev3", []) for e in q.get("evidence", [])}
    for q in per_split.get("test", []) + per_split.get("test2", []) + per_split.get("test3", []) + per_split.get("test4", []) + per_split.get("test5", []) + per_split.get("test6", []) + per_split.get("test7", []) + per_split.get("test8", []) + per_split.get("test9", []):
        for e in q.get("evidence", []):
            if e in dev_ev:
                warns.append(f"{q.get('id')}: evidence string also used in dev: {e}")
    for w in warns:
        print("WARN", w)
    for e in errs:
        print("ERROR", e)
    if errs:
        print(f"{len(errs)} error(s)")
        return 1
    print("ALL OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
