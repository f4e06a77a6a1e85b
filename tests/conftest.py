"""Shared fixtures: the real model (loaded once), throw-away var dirs that reuse the
materialised model cache, and an engine built on the real article."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "data" / "docs"
ARTICLE = DOCS / "yantai-county-economy-2021.txt"
GOLD = REPO / "data" / "eval" / "questions.jsonl"
ARTICLE_URL = "https://guanhai.com.cn/cmdetail/104546"


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The repo's materialised model folder; built once here if a fresh checkout lacks it."""
    from index.e5model import MODEL_NAME, materialise

    cache = REPO / "var" / "models"
    if not (cache / MODEL_NAME / "planbot-source.json").exists():
        materialise(cache)
    return cache


def new_var_dir(root: Path, model_cache: Path) -> Path:
    """An empty var dir whose `models` points at the shared cache (no re-materialising)."""
    var = root / "var"
    var.mkdir(parents=True)
    (var / "models").symlink_to(model_cache.resolve(), target_is_directory=True)
    return var


def docs_settings(root: Path, model_cache: Path, docs: dict[str, str]):
    """IndexSettings over a throw-away docs folder holding `docs` (file name -> text)."""
    from index.config import IndexSettings

    folder = root / "docs"
    folder.mkdir()
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return IndexSettings(docs_dir=folder, var_dir=new_var_dir(root, model_cache))


@pytest.fixture(scope="session")
def session_var(tmp_path_factory, model_cache) -> Path:
    return new_var_dir(tmp_path_factory.mktemp("session"), model_cache)


@pytest.fixture(scope="session")
def embedder(session_var):
    """The real embedding model, loaded once for the whole run."""
    from index.config import DEFAULT_MODEL
    from index.embedder import Embedder

    return Embedder(DEFAULT_MODEL, session_var / "models")


@pytest.fixture(scope="session")
def article():
    """The real article as the loader cleans it."""
    from index.loaders import load_documents

    report = load_documents(DOCS)
    assert not report.failures
    (doc,) = report.documents
    return doc


@pytest.fixture(scope="session")
def doc_engine(session_var, embedder):
    """Engine built on data/docs in the session var dir (the CLI tests reuse this index)."""
    from index.config import IndexSettings
    from index.engine import Engine

    engine = Engine(IndexSettings(docs_dir=DOCS, var_dir=session_var), embedder=embedder)
    engine.build()
    return engine
