"""What a query reads besides the vectors, derived from the passages and kept beside their version.

The corpus vocabulary (jieba POS tagging of every passage), the BM25 index (jieba tokenising) and
each passage's context and sentences cost ~4 ms a passage to compute: ~7 minutes of start-up at
100k passages. They depend only on the passages and on the code that derives them, so they are
computed once per index version and stored in `<version>/derived/`, then read back at the next
start. The files are JSON and bm25s's own .npy arrays (no pickle: nothing read from disk can run
code). They are keyed by passages.jsonl's checksum, the deriving code and the versions of the
packages it derives with (jieba, OpenCC, pypinyin, bm25s); any
mismatch or damage means compute again (and store again, best effort: a read-only index is
served all the same).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .chunking import split_sentences
from .lexical import BM25Index, warm
from .models import Passage
from .textnorm import simplify
from .vocab import CorpusVocab, passage_context

log = logging.getLogger(__name__)

FOLDER = "derived"
# the modules whose code decides what is derived, and the packages they derive it with: a change
# to any of them recomputes
_SOURCES = ("derived.py", "lexical.py", "vocab.py", "chunking.py", "textnorm.py", "models.py")
_PACKAGES = ("jieba", "opencc-python-reimplemented", "pypinyin", "bm25s")


@dataclass
class Derived:
    bm25: BM25Index
    vocab: CorpusVocab
    contexts: list[str]  # simplified title + heading + text of each passage
    sentences: list[list[str]]


def compute(passages: list[Passage]) -> Derived:
    return Derived(
        bm25=BM25Index([p.embed_text for p in passages]), vocab=CorpusVocab.build(passages),
        contexts=[passage_context(p) for p in passages],
        sentences=[split_sentences(simplify(p.text)) for p in passages],
    )


def key(passages_sha: str) -> str:
    from importlib import metadata

    h = hashlib.sha256(f"{passages_sha}\n".encode())
    for package in _PACKAGES:
        try:
            h.update(f"{package} {metadata.version(package)}\n".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{package} -\n".encode())
    here = Path(__file__).parent
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def derive(version_dir: Path, passages: list[Passage], passages_sha: str | None) -> Derived:
    """Read back what was derived for this version, or compute it and keep it for next time."""
    k = key(passages_sha) if passages_sha else None
    if k:
        try:
            found = load(version_dir / FOLDER, k, len(passages))
        except Exception as exc:  # noqa: BLE001 - damaged or from another release: compute again
            log.warning("derived data of %s unusable (%s); computing it again", version_dir.name, exc)
            found = None
        if found is not None:
            warm()  # what computing would have loaded on the way
            return found
    d = compute(passages)
    if k and passages:
        save(version_dir / FOLDER, k, d)
    return d


def load(folder: Path, k: str, n: int) -> Derived | None:
    if not (folder / "key.json").is_file() or json.loads((folder / "key.json").read_text())["key"] != k:
        return None
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    model = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
    text = json.loads((folder / "text.json").read_text(encoding="utf-8"))
    v = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    if not (len(text["contexts"]) == len(text["sentences"]) == len(v["passage_entities"]) == n
            == int(model.scores["num_docs"])):
        raise ValueError(f"holds {len(text['contexts'])} passages, the index {n}")
    canon = {name: name for name in v["kinds"]}  # one string per name, as CorpusVocab.build shares them
    vocab = CorpusVocab.from_parts(v["kinds"], [[canon.get(x, x) for x in names] for names in v["passage_entities"]],
                                   v["years"], v["pinyin"])
    return Derived(BM25Index.restore(model, n), vocab, text["contexts"], text["sentences"])


def save(folder: Path, k: str, d: Derived) -> None:
    """Written into a temp folder of its own (another process may be deriving the same version) and
    renamed into place; key.json last, so a half-written folder is never taken for a whole one.
    JSON is streamed to the files: at 100k passages the text would be ~300 MB in memory."""
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=folder.parent))
        d.bm25.model.save(str(tmp / "bm25"), show_progress=False)
        v = d.vocab
        for name, data in (("text.json", {"contexts": d.contexts, "sentences": d.sentences}),
                           ("vocab.json", {"kinds": v.kinds, "passage_entities": v.passage_entities, "pinyin": v.pinyin,
                                           "years": {y: ix.tolist() for y, ix in v.years.items()}})):
            with open(tmp / name, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
        (tmp / "key.json").write_text(json.dumps({"key": k}))
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    except OSError as exc:  # read-only or full disk: serve what was computed, derive again next start
        log.warning("could not keep derived data in %s (%s)", folder, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
