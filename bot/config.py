"""Bot settings: the index settings plus Telegram, admins and state."""
from __future__ import annotations

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
    # Seconds to wait for a Bot API response before retrying; getUpdates gets poll_timeout extra.
    http_read_timeout: float = Field(5.0, gt=0)
    poll_timeout: int = Field(10, ge=0)  # long-poll length of getUpdates

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
    return settings
