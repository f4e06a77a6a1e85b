"""`python -m bot` (also what `planbot bot` execs): the Telegram bot when a token is configured,
else the terminal chat. The one entry point of the bot; bot/app.py configures its logging."""
from __future__ import annotations

import os
import sys


def main() -> int:
    from index.cli import main as cli_main

    if not os.environ.get("PLANBOT_TELEGRAM_TOKEN") and not _token_in_dotenv():
        print("PLANBOT_TELEGRAM_TOKEN is not set: starting the terminal chat instead of the Telegram bot.")
        return cli_main(["chat"])
    from .app import run

    return run()


def _token_in_dotenv() -> bool:
    try:
        with open(".env", encoding="utf-8") as fh:
            return any(line.strip().startswith("PLANBOT_TELEGRAM_TOKEN=") and line.split("=", 1)[1].strip()
                       for line in fh)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
