"""Start-up integrity checks that cost little: an index version's files are hashed (and its vectors
scanned) once per change of size or mtime, not on every load, and a change is still caught."""
from __future__ import annotations

import pytest

from conftest import docs_settings
from index import store as store_mod
from index.engine import Engine
from index.store import IndexCorrupt, IndexStore

DOCS = {"laishan.txt": "莱山区委书记宫权说，未来三年，莱山区将全力打造全市高质量发展先行区。\n\n"
                       "长岛持续推动生态保护修复，东亚江豚、斑海豹等濒危生物频繁群游。"}


@pytest.fixture
def built(tmp_path, model_cache, embedder):
    settings = docs_settings(tmp_path, model_cache, DOCS)
    Engine(settings, embedder=embedder).build()  # writes, reads back (verifies) and remembers
    return settings


def test_an_unchanged_version_is_not_hashed_again(built, embedder, monkeypatch):
    store = IndexStore(built.index_dir)
    folder = store.versions / store.current_version()
    assert (folder / store_mod.VERIFIED).is_file()
    hashed, scanned = [], []
    real_sha, real_scan = store_mod._sha, store_mod._all_finite
    monkeypatch.setattr(store_mod, "_sha", lambda p: hashed.append(p.name) or real_sha(p))
    monkeypatch.setattr(store_mod, "_all_finite", lambda *a: scanned.append(1) or real_scan(*a))
    engine = Engine(built, embedder=embedder)
    engine.load()  # the spot check still re-embeds passages on every load
    assert engine.answer("长岛能看到哪些濒危生物?").answered
    assert hashed == [] and scanned == []


@pytest.mark.parametrize("name", ["passages.jsonl", "vectors.npy", "index.faiss"])
def test_a_file_changed_after_verification_is_hashed_and_refused(built, embedder, name):
    store = IndexStore(built.index_dir)
    path = store.versions / store.current_version() / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # same size, new content, new mtime
    path.unlink()
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt):
        store.load(model=embedder.name, dim=embedder.dim)
