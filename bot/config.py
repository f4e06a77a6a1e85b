"""Bot settings: the index settings plus Telegram, admins and state."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode

from index.config import IndexSettings


class BotSettings(IndexSettings):
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    state_db: Path | None = None
    announce_on_reindex: bool = True
    rate_limit_per_minute: int = Field(20, ge=1)
    # seconds before "typing…" is shown for an answer not ready yet; 0: before every answer
    typing_after: float = Field(0.5, ge=0, le=10)
    # Seconds to wait for a Bot API response before retrying; getUpdates gets poll_timeout extra.
    http_read_timeout: float = Field(5.0, gt=0)
    poll_timeout: int = Field(10, ge=0)  # long-poll length of getUpdates
    # Uploads by bot admins: the public Bot API serves files up to 20 MB; a self-hosted one more.
    max_upload_mb: float = Field(20, gt=0)
    max_unpacked_mb: float = Field(100, gt=0)  # what a docx (a zip) may expand to
    # Webhook mode (polling when webhook_url is unset): Telegram POSTs updates to webhook_url,
    # which a reverse proxy forwards to webhook_listen:webhook_port (same path).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(8443, ge=1, le=65535)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value):
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            bad = [p for p in parts if not p.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"expected comma-separated numeric Telegram user ids, got {bad[0]!r}")
            return [int(p) for p in parts]
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (Telegram only calls https webhooks)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def archive_dir(self) -> Path:
        return self.var_dir / "archive"

    @property
    def incoming_dir(self) -> Path:
        return self.var_dir / "incoming"

    @property
    def state_path(self) -> Path:
        return self.state_db or self.var_dir / "state.db"


def load_settings() -> BotSettings:
    """Settings or one clear line naming the bad variable, then exit."""
    try:
        settings = BotSettings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "PLANBOT_" + str(err["loc"][0]).upper() if err["loc"] else "PLANBOT_*"
        sys.exit(f"planbot: invalid setting {name}: {err['msg']}")
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value().strip():
        sys.exit("planbot: PLANBOT_TELEGRAM_TOKEN is not set (put it in the environment or .env)")
    if settings.webhook_url and settings.webhook_secret is None:
        sys.exit("planbot: invalid setting PLANBOT_WEBHOOK_SECRET: required with PLANBOT_WEBHOOK_URL "
                 "(Telegram sends it with every update; requests without it are refused)")
    return settings
