"""A strict checker for Telegram's HTML parse mode (https://core.telegram.org/bots/api#html-style).

`problems(text)` returns a list of human-readable problems; an empty list means Telegram would
accept the message: only Telegram's tags with their allowed attributes, balanced and properly
nested, every `<`, `>` and `&` outside a tag escaped, and at most 4096 characters.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

LIMIT = 4096
# tag -> allowed attributes (value check or None for any value)
ALLOWED: dict[str, dict[str, object]] = {
    "b": {}, "strong": {}, "i": {}, "em": {}, "u": {}, "ins": {}, "s": {}, "strike": {}, "del": {},
    "a": {"href": None}, "code": {"class": re.compile(r"language-[\w+#-]+")}, "pre": {},
    "span": {"class": re.compile(r"tg-spoiler")}, "tg-spoiler": {}, "blockquote": {"expandable": None},
}
REQUIRED = {"a": "href", "span": "class"}
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s+[a-zA-Z-]+(?:=(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>=]+))?)*\s*/?>")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            self.errors.append(f"tag <{tag}> is not supported by Telegram")
            return
        if self.stack and self.stack[-1] in ("pre", "code") and not (tag == "code" and self.stack[-1] == "pre"):
            self.errors.append(f"<{tag}> nested inside <{self.stack[-1]}>")
        if tag == "a" and "a" in self.stack:
            self.errors.append("<a> nested inside <a>")
        names = {k for k, _ in attrs}
        if tag in REQUIRED and REQUIRED[tag] not in names:
            self.errors.append(f"<{tag}> without {REQUIRED[tag]}")
        for k, v in attrs:
            rule = ALLOWED[tag].get(k, False)
            if rule is False:
                self.errors.append(f"attribute {k!r} not allowed on <{tag}>")
            elif isinstance(rule, re.Pattern) and not rule.fullmatch(v or ""):
                self.errors.append(f"bad {k}={v!r} on <{tag}>")
        if tag == "code" and names & {"class"} and (not self.stack or self.stack[-1] != "pre"):
            self.errors.append("<code class=...> outside <pre>")
        self.stack.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        self.errors.append(f"self-closing <{tag}/> is not supported")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack})")
            if tag in self.stack:
                del self.stack[self.stack.index(tag):]
            return
        self.stack.pop()

    def handle_comment(self, data) -> None:
        self.errors.append("HTML comment")

    def handle_decl(self, decl) -> None:
        self.errors.append("declaration")

    def handle_pi(self, data) -> None:
        self.errors.append("processing instruction")

    def unknown_decl(self, data) -> None:
        self.errors.append("unknown declaration")


def problems(text: str) -> list[str]:
    out: list[str] = []
    if not text.strip():
        out.append("empty message")
    if len(text) > LIMIT:
        out.append(f"{len(text)} characters > {LIMIT}")
    # Lexical pass: every '<' starts a tag, every '>' ends one, every '&' starts an entity.
    pos = 0
    while True:
        i = min([j for j in (text.find("<", pos), text.find(">", pos), text.find("&", pos)) if j >= 0],
                default=-1)
        if i < 0:
            break
        ch = text[i]
        m = (_TAG if ch == "<" else _ENTITY).match(text, i) if ch != ">" else None
        if m is None:
            out.append(f"unescaped {ch!r} at {i}: {text[max(0, i - 15):i + 15]!r}")
            pos = i + 1
        else:
            pos = m.end()
    checker = _Checker()
    checker.feed(text)
    checker.close()
    out += checker.errors
    if checker.stack:
        out.append(f"unclosed tags {checker.stack}")
    return out


def plain(text: str) -> str:
    """What the user reads: tags dropped, entities decoded."""
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", "", text))
