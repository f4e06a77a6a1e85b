"""Incremental builds and the on-disk index: only changed documents are re-embedded,
versions switch atomically, and a damaged or foreign index is refused, never served."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import docs_settings
from index.engine import Engine
from index.store import IndexMismatch, IndexMissing, IndexStore

DOCS = {
    "laishan.txt": (
        "县域经济高质量发展，莱山如何突围？“我们要充分发挥中心城区的区位优势，继续在产业上下功夫、做文章。”"
        "莱山区委书记宫权说，未来三年，莱山区将全力打造全市高质量发展先行区。\n\n"
        "在莱山，中国原子能科学研究院产业园项目施工现场一派繁忙，工人们正在紧张地进行厂房施工，预计下半年投产。"
    ),
    "muping.txt": (
        "生物医药产业在牟平快速崛起，石药集团二期项目施工现场一片繁忙，6栋厂房拔地而起；"
        "丰金生物医药二期工程正加紧建设，新产品研发紧锣密鼓。"
    ),
    "changdao.txt": (
        "长岛持续推动生态保护修复，衰退的大叶藻现已在海滩礁石丛生，东亚江豚、斑海豹等濒危生物频繁群游，"
        "鲸鱼、海龟经常现身。"
    ),
}
PENGLAI = "蓬莱区加快与国内外龙头企业的合作项目，尽快形成风电装备制造全产业链，打造海上风电产业基地。"


class CountingEmbedder:
    """The real embedder, recording which passage texts it was asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.texts: list[str] = []

    def encode_passages(self, texts, batch_size=32, progress=False):
        self.texts.extend(texts)
        return self.inner.encode_passages(texts, batch_size=batch_size, progress=progress)

    def encode_query(self, text):
        return self.inner.encode_query(text)


@pytest.fixture
def settings(tmp_path, model_cache):
    return docs_settings(tmp_path, model_cache, DOCS)


@pytest.fixture
def built(settings, embedder):
    """A first build; tests then use a fresh Engine, as a restarted `planbot build` would."""
    return Engine(settings, embedder=embedder).build()


def top_doc(engine: Engine, question: str) -> str:
    return engine.search(question, k=1)[0][0].doc_id


def test_first_build_embeds_every_passage(settings, embedder):
    counting = CountingEmbedder(embedder)
    engine = Engine(settings, embedder=counting)
    report = engine.build()
    assert sorted(report.added) == ["changdao", "laishan", "muping"]
    assert report.changed == report.removed == report.unchanged == []
    # laishan's two short paragraphs share one passage (one section, under 260 characters)
    assert report.passages == report.embedded == len(counting.texts) == 3
    assert top_doc(engine, "哪里能看到江豚和斑海豹?") == "changdao"


def test_unchanged_rebuild_embeds_nothing(settings, embedder, built):
    counting = CountingEmbedder(embedder)
    report = Engine(settings, embedder=counting).build()
    assert sorted(report.unchanged) == ["changdao", "laishan", "muping"]
    assert report.embedded == 0 and counting.texts == []
    assert report.passages == built.passages


def test_editing_one_document_reembeds_only_that_document(settings, embedder, built):
    (settings.docs_dir / "muping.txt").write_text(DOCS["muping.txt"] + "\n\n" + PENGLAI, encoding="utf-8")
    counting = CountingEmbedder(embedder)
    engine = Engine(settings, embedder=counting)
    report = engine.build()
    assert report.changed == ["muping"]
    assert sorted(report.unchanged) == ["changdao", "laishan"]
    muping = [p.embed_text for p in engine._live.stored.passages if p.doc_id == "muping"]
    assert report.embedded == len(muping) == 1
    assert counting.texts == muping
    assert top_doc(engine, "哪里在建风电装备制造全产业链?") == "muping"


def test_adding_and_removing_documents_are_reported(settings, embedder, built):
    (settings.docs_dir / "changdao.txt").unlink()
    (settings.docs_dir / "penglai.txt").write_text(PENGLAI, encoding="utf-8")
    counting = CountingEmbedder(embedder)
    engine = Engine(settings, embedder=counting)
    report = engine.build()
    assert report.added == ["penglai"] and report.removed == ["changdao"]
    assert counting.texts == ["penglai\n" + PENGLAI]  # embedded with its title
    assert {p.doc_id for p in engine._live.stored.passages} == {"laishan", "muping", "penglai"}
    assert "changdao" not in {d["doc_id"] for d in engine.documents()}


def test_current_switches_and_old_version_still_loads(settings, embedder, built):
    store = IndexStore(settings.index_dir)
    assert store.current_version() == built.version
    (settings.docs_dir / "changdao.txt").write_text(PENGLAI, encoding="utf-8")
    second = Engine(settings, embedder=embedder).build()
    assert second.version != built.version
    assert store.current_version() == second.version
    old = store.load(model=embedder.name, dim=embedder.dim, version=built.version)
    new = store.load(model=embedder.name, dim=embedder.dim)
    assert any("江豚" in p.text for p in old.passages)
    assert not any("江豚" in p.text for p in new.passages)


def _version_dir(settings) -> Path:
    store = IndexStore(settings.index_dir)
    return store.versions / store.current_version()


def test_truncated_faiss_file_is_refused(settings, embedder, built):
    path = _version_dir(settings) / "index.faiss"
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(IndexMismatch, match="index.faiss"):
        IndexStore(settings.index_dir).load(model=embedder.name, dim=embedder.dim)


def _edit_manifest(settings, **changes) -> None:
    path = _version_dir(settings) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_wrong_passage_count_in_manifest_is_refused(settings, embedder, built):
    _edit_manifest(settings, passage_count=built.passages + 1)
    with pytest.raises(IndexMismatch, match=f"manifest says {built.passages + 1} passages"):
        IndexStore(settings.index_dir).load(model=embedder.name, dim=embedder.dim)


def test_index_built_with_another_model_is_refused_and_rebuilt(settings, embedder, built):
    """Vectors of two models must never be mixed: refuse to serve, then rebuild everything."""
    _edit_manifest(settings, model="intfloat/multilingual-e5-large")
    with pytest.raises(IndexMismatch, match="built with model 'intfloat/multilingual-e5-large'"):
        Engine(settings, embedder=embedder).load()
    report = Engine(settings, embedder=embedder).build()
    assert report.embedded == report.passages == built.passages
    assert sorted(report.added) == ["changdao", "laishan", "muping"]


def test_missing_index(settings, embedder):
    with pytest.raises(IndexMissing, match="planbot build"):
        IndexStore(settings.index_dir).load()
    engine = Engine(settings, embedder=embedder)
    with pytest.raises(IndexMissing):
        engine.load()
    refused = engine.answer("莱山的主导产业是什么")
    assert not refused.answered and "planbot build" in refused.reason


def test_engine_does_not_serve_a_corrupted_index(settings, embedder, built):
    (_version_dir(settings) / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    engine = Engine(settings, embedder=embedder)
    with pytest.raises(IndexMismatch, match="vectors.npy"):
        engine.load()
    answer = engine.answer("莱山区委书记是谁?")
    assert not answer.answered and answer.citations == []
    report = engine.build()  # the damaged version is not reused
    assert report.embedded == report.passages == built.passages
    assert top_doc(engine, "莱山区委书记是谁?") == "laishan"


def test_document_that_fails_to_load_keeps_its_passages(settings, embedder, built):
    """A file that breaks mid-edit must not make its answers vanish."""
    (settings.docs_dir / "changdao.txt").write_bytes(b"\xff\xfe broken")
    engine = Engine(settings, embedder=embedder)
    report = engine.build()
    assert "changdao.txt" in report.failures and report.embedded == 0
    assert top_doc(engine, "哪里能看到江豚和斑海豹?") == "changdao"


def test_document_that_fails_to_load_is_not_reported_removed(settings, embedder, built):
    (settings.docs_dir / "changdao.txt").write_bytes(b"\xff\xfe broken")
    report = Engine(settings, embedder=embedder).build()
    assert report.removed == []


def test_same_name_in_two_formats_does_not_duplicate_passages(settings, embedder):
    (settings.docs_dir / "laishan.md").write_text("---\ntitle: 莱山\n---\n" + PENGLAI, encoding="utf-8")
    first = Engine(settings, embedder=embedder).build()
    engine = Engine(settings, embedder=embedder)
    second = engine.build()
    ids = [p.passage_id for p in engine._live.stored.passages]
    assert len(ids) == len(set(ids))
    assert (second.embedded, second.passages) == (0, first.passages)


def test_hnsw_ef_search_is_a_setting_applied_on_load(settings, embedder, monkeypatch):
    """PLANBOT_HNSW_EF_SEARCH changes how many candidates an HNSW index searches, for an index
    already on disk too (no rebuild), and still finds the passage a question is about."""
    hnsw = settings.model_copy(update={"hnsw_min_passages": 1, "hnsw_ef_search": 40})
    Engine(hnsw, embedder=embedder).build()
    monkeypatch.setenv("PLANBOT_HNSW_EF_SEARCH", "300")
    from index.config import IndexSettings

    wider = IndexSettings(**{k: v for k, v in hnsw.model_dump().items() if k != "hnsw_ef_search"})
    assert wider.hnsw_ef_search == 300
    engine = Engine(wider, embedder=embedder)
    engine.load()
    assert engine.manifest["index_type"] == "hnsw"
    assert engine._live.stored.index.hnsw.efSearch == 300
    assert top_doc(engine, "长岛的生态保护修复有什么成效") == "changdao"
    monkeypatch.setenv("PLANBOT_HNSW_EF_SEARCH", "3")
    with pytest.raises(ValueError, match="hnsw_ef_search"):
        IndexSettings()
