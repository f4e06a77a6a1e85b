"""Telegram front end: turns updates into Engine calls and Answers into Telegram HTML."""
