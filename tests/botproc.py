"""Run the real bot (`python -m bot`) as a child process against a BotApiPeer.

Process-level tests need what an operator would see: a real event loop, real HTTP, signals
(SIGTERM for a clean stop, SIGKILL for a crash) and a state DB that outlives the process.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Callable

from botapi_peer import BotApiPeer

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
DOCS = REPO / "data" / "docs"
MODELS = REPO / "var" / "models"


def model_cache() -> Path:
    """The materialised model folder (built once if a fresh checkout lacks it)."""
    from index.e5model import MODEL_NAME, materialise

    if not (MODELS / MODEL_NAME / "planbot-source.json").exists():
        materialise(MODELS)
    return MODELS


def prepare_root(root: Path) -> tuple[Path, Path]:
    """A var dir sharing the model cache and a private copy of the docs: (var, docs)."""
    var, docs = root / "var", root / "docs"
    var.mkdir(parents=True)
    (var / "models").symlink_to(model_cache().resolve(), target_is_directory=True)
    shutil.copytree(DOCS, docs)
    for p in docs.iterdir():
        p.chmod(0o644)
    return var, docs


def bot_env(**settings: str) -> dict[str, str]:
    """The test's environment minus any PLANBOT_* of the developer's, offline, plus settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOT_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update(settings)
    return env


class BotProcess:
    """One run of the bot; a restart is a new BotProcess with the same env (and state DB)."""

    def __init__(self, peer: BotApiPeer, env: dict[str, str], log_path: Path,
                 cwd: Path, argv: list[str] | None = None) -> None:
        self.peer, self.env, self.log_path, self.cwd = peer, env, log_path, cwd
        self.argv = argv or [str(PY), "-m", "bot"]  # or [.venv/bin/planbot, "bot"]
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, timeout: float = 180.0) -> BotProcess:
        """Spawn and wait until it is ready and long-polling this peer (or, in webhook mode,
        until it has set its webhook and accepts connections on its port)."""
        self.cwd.mkdir(parents=True, exist_ok=True)  # no .env there: env is the whole config
        since = len(self.peer.calls)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "planbot ready" not in self.log():
            assert self.proc.poll() is None, \
                f"bot exited {self.proc.returncode}:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"bot not ready:\n{self.log()[-3000:]}"
            time.sleep(0.2)
        if not self.env.get("PLANBOT_WEBHOOK_URL"):
            self.peer.wait_for(lambda c: c["method"] == "getUpdates", timeout=30, since=since)
            return self
        self.peer.wait_for(lambda c: c["method"] == "setWebhook" and "result" in c, timeout=30, since=since)
        port = int(self.env["PLANBOT_WEBHOOK_PORT"])
        until(lambda: _listening(port), f"the webhook server on port {port}", timeout=30)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final getUpdates confirming the last batch."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit code (killed if it hangs), None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Query the bot's SQLite state read-only, while it runs or after it died."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def until(pred: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    """Poll pred() until true; fail naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
