"""What is derived from the passages (vocabulary, BM25, sentences) is kept beside the index version:
a restart reads it back instead of tagging every passage again, and damaged or stale copies are
derived again rather than served."""
from __future__ import annotations

import json
import logging

import pytest

from conftest import docs_settings
from index import derived
from index.engine import Engine
from index.vocab import CorpusVocab

DOCS = {
    "a.txt": "蓬莱区2024年风电装备产值达到120亿元，蓬莱港全年发运风电叶片800多套。\n\n"
             "莱州市的石材产业有企业2000多家，2023年营业收入突破300亿元。",
    "b.txt": "栖霞苹果种植面积100万亩，2024年产量208万吨，品牌价值超过200亿元。",
}
QUESTION = "莱州石材企业有多少家?"


@pytest.fixture()
def built(tmp_path, model_cache, embedder):
    settings = docs_settings(tmp_path, model_cache, DOCS)
    engine = Engine(settings, embedder=embedder)
    engine.build()
    return settings, engine


def _cited(answer):
    return [c.passage.passage_id for c in answer.citations], answer.text, answer.reason


def test_restart_reads_the_derived_data_back_instead_of_tagging_again(built, embedder, monkeypatch):
    settings, first = built
    before = _cited(first.answer(QUESTION))
    assert (first._live.stored.path / derived.FOLDER / "key.json").is_file()

    def no_tagging(*a, **k):
        raise AssertionError("the vocabulary was derived again at start-up")

    monkeypatch.setattr(CorpusVocab, "build", no_tagging)
    again = Engine(settings, embedder=embedder)
    again.load()
    assert _cited(again.answer(QUESTION)) == before
    assert "2000多家" in again.answer(QUESTION).citations[0].passage.text


def test_damaged_derived_data_is_derived_again_and_rewritten(built, embedder, caplog):
    settings, first = built
    before = _cited(first.answer(QUESTION))
    folder = first._live.stored.path / derived.FOLDER
    (folder / "vocab.json").write_text('{"kinds": {', encoding="utf-8")  # cut short
    again = Engine(settings, embedder=embedder)
    with caplog.at_level(logging.WARNING, logger="index.derived"):
        again.load()
    assert "computing it again" in caplog.text
    assert _cited(again.answer(QUESTION)) == before
    json.loads((folder / "vocab.json").read_text(encoding="utf-8"))  # whole again


def test_derived_data_of_other_passages_is_not_served(tmp_path):
    from index.models import Passage

    one = [Passage("p0", "d", "标题", "", 0, 0, 10, "龙口市裕龙岛炼化一体化项目一期投资1168.5亿元。")]
    other = [Passage("p0", "d", "标题", "", 0, 0, 10, "海阳市核能供暖覆盖面积达到1000万平方米。")]
    derived.derive(tmp_path, one, "sha-one")
    got = derived.derive(tmp_path, other, "sha-other")  # another passages.jsonl checksum: derive again
    assert "海阳" in got.contexts[0] and "裕龙岛" not in got.contexts[0]
    real = derived.compute
    derived.compute = lambda passages: (_ for _ in ()).throw(AssertionError("derived again"))
    try:  # the same checksum again: read back, not computed
        back = derived.derive(tmp_path, other, "sha-other")
    finally:
        derived.compute = real
    assert back.contexts == got.contexts and back.sentences == got.sentences
    assert back.bm25.scores(["海阳", "核能"]).tolist() == got.bm25.scores(["海阳", "核能"]).tolist()
    assert back.bm25.idf("海阳") == got.bm25.idf("海阳")


def test_a_package_upgrade_derives_again(tmp_path, monkeypatch):
    """Stored contexts come from OpenCC's conversion, entities from jieba's tagger: a new version of
    either must not be served the old results."""
    from index.models import Passage

    passages = [Passage("p0", "d", "標題", "", 0, 0, 10, "煙臺市芝罘區朝陽街全長約400米。")]
    derived.derive(tmp_path, passages, "sha")
    calls = []
    real = derived.compute
    monkeypatch.setattr(derived, "compute", lambda ps: calls.append(1) or real(ps))
    derived.derive(tmp_path, passages, "sha")
    assert calls == []
    from importlib import metadata

    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "99.0" if name == "opencc-python-reimplemented"
                        else real_version(name))
    got = derived.derive(tmp_path, passages, "sha")
    assert calls == [1] and "烟台市芝罘区" in got.contexts[0]


def test_an_unwritable_index_is_served_all_the_same(tmp_path, caplog):
    from index.models import Passage

    blocked = tmp_path / "version"
    blocked.write_text("a file where the version folder should be")
    passages = [Passage("p0", "d", "标题", "", 0, 0, 10, "芝罘区朝阳街全长约400米。")]
    with caplog.at_level(logging.WARNING, logger="index.derived"):
        got = derived.derive(blocked, passages, "sha")
    assert got.sentences == [["芝罘区朝阳街全长约400米。"]] and "could not keep" in caplog.text
