"""Answers to Telegram HTML: everything escaped, split under the 4096-character limit
at block boundaries so no tag is ever cut in half."""
from __future__ import annotations

import re
from html import escape, unescape

from index.intake import is_http_url

LIMIT = 4096


def safe_href(url: str | None) -> str:
    """An http(s) link or "" -- whatever the index says, nothing else reaches <a href>."""
    return url if url and is_http_url(url) else ""


def to_plain(html_text: str) -> str:
    """The same message as plain text (tags dropped, entities undone), for when Telegram
    rejects its HTML: better an unformatted answer than a lost one."""
    text = re.sub(r'<a\s+href="([^"]*)"[^>]*>(.*?)</a>', lambda m: f"{m.group(2)} {unescape(m.group(1))}",
                  html_text, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", "", text)).strip() or "…"


def _snippet(text: str, best: str, max_chars: int = 600) -> str:
    if len(text) > max_chars:
        text = text[:max_chars] + "…"
    if best and best in text:
        head, _, tail = text.partition(best)
        return f"{escape(head)}<b>{escape(best)}</b>{escape(tail)}"
    return escape(text)


def citation_block(c: dict, full: bool = False) -> str:
    where = " · ".join(x for x in (c.get("heading") or f"第{c.get('paragraph', '?')}段",
                                   f"第{c['page']}页" if c.get("page") else "") if x)
    date = f"（{escape(c['date'])}）" if c.get("date") else ""
    head = f"<b>[{c['rank']}]</b> {escape(c['title'])}{date} · {escape(where)}"
    body = _snippet(c["text"], c.get("best_sentence", ""), max_chars=3500 if full else 600)
    url = safe_href(c.get("url"))
    link = f'\n<a href="{escape(url, quote=True)}">来源</a>' if url else ""
    return f"{head}\n{body}{link}"


def answer_blocks(answer: dict, covered: list[str], max_citations: int = 3) -> list[str]:
    if not answer["answered"]:
        tail = f"\n\n文档涉及：{escape('、'.join(covered))}。" if covered and "涉及" not in answer["reason"] else ""
        return [f"抱歉，文档里找不到这个问题的答案。\n{escape(answer['reason'])}{tail}"]
    blocks = [f"<b>答：</b>{escape(answer.get('answer', ''))}"]
    blocks += [citation_block(c) for c in answer["citations"][:max_citations]]
    return blocks


def split_messages(blocks: list[str], limit: int = LIMIT) -> list[str]:
    """Pack whole blocks into messages; a block over the limit is split as escaped plain text."""
    messages, cur = [], ""
    for block in blocks:
        pieces = [block] if len(block) <= limit else _hard_split(block, limit)
        for piece in pieces:
            if cur and len(cur) + 2 + len(piece) > limit:
                messages.append(cur)
                cur = ""
            cur = f"{cur}\n\n{piece}" if cur else piece
    if cur:
        messages.append(cur)
    return messages


def _hard_split(block: str, limit: int) -> list[str]:
    plain = unescape(re.sub(r"<[^>]+>", "", block))
    out, cur = [], ""
    for ch in plain:
        piece = escape(ch)
        if len(cur) + len(piece) > limit:
            out.append(cur)
            cur = ""
        cur += piece
    return out + ([cur] if cur else [])
