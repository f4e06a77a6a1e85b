"""bot/render.py: escaping, the bold best sentence, and splitting under Telegram's limit."""
from __future__ import annotations

import random

import pytest

from bot.render import LIMIT, answer_blocks, citation_block, split_messages
from telegram_html import plain, problems

NASTY = ["<", ">", "&", "&amp;", '"', "'", "<b>", "</a>", "<script>", "&lt;", "😀", "👨‍👩‍👧", "\u200b", "\n", "莱山",
         "产业", " ", "*_[]()~`>#+-=|{}.!", "&#", "\x00", "\u202e"]


def cite(rank=1, title="标题", heading="", text="莱山的主导产业是先进制造业。", best="", url="https://guanhai.com.cn/cmdetail/104546", paragraph=3):
    return {"rank": rank, "title": title, "heading": heading, "text": text, "best_sentence": best, "url": url,
            "paragraph": paragraph, "doc_id": "d", "score": 0.9}


def nasty(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(NASTY) for _ in range(n))


def assert_valid(messages: list[str]) -> None:
    assert messages
    for m in messages:
        assert len(m) <= LIMIT
        assert problems(m) == [], (problems(m), m[:200])


def test_best_sentence_is_bold_and_escaped():
    text = "烟台的目标很多。莱山要打造<先进制造业> & 数字经济。其他内容。"
    best = "莱山要打造<先进制造业> & 数字经济。"
    block = citation_block(cite(text=text, best=best))
    assert "<b>莱山要打造&lt;先进制造业&gt; &amp; 数字经济。</b>" in block
    assert block.count("<b>") == 2  # the rank and the best sentence, nothing else
    assert_valid([block])
    assert plain(block).endswith("烟台的目标很多。莱山要打造<先进制造业> & 数字经济。其他内容。\n来源")


def test_best_sentence_missing_or_cut_off_is_not_bold():
    assert citation_block(cite(best="不在原文里的句子。")).count("<b>") == 1
    long_text = "前" * 700 + "最佳句子。"
    block = citation_block(cite(text=long_text, best="最佳句子。"))
    assert "最佳句子" not in block and "…" in block and block.count("<b>") == 1
    full = citation_block(cite(text=long_text, best="最佳句子。"), full=True)
    assert "<b>最佳句子。</b>" in full
    assert_valid([block, full])


def test_html_specials_in_title_heading_snippet_and_url_are_escaped():
    c = cite(title='<script>alert("x")</script> & Co', heading="<i>第一部分</i>", text="a<b>c</b>&amp;d",
             best="<b>c</b>", url='https://e.com/?a=1&b="2"><script>')
    block = citation_block(c)
    assert_valid([block])
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in block
    assert "&lt;i&gt;第一部分&lt;/i&gt;" in block and "&amp;amp;d" in block
    assert 'href="https://e.com/?a=1&amp;b=&quot;2&quot;&gt;&lt;script&gt;"' in block
    assert "<b>&lt;b&gt;c&lt;/b&gt;</b>" in block


def test_heading_falls_back_to_paragraph_and_url_is_optional():
    block = citation_block(cite(heading="", paragraph=7, url=""))
    assert "第7段" in block and "<a " not in block
    assert_valid([block])


def test_answer_blocks_answered_and_refused():
    answer = {"answered": True, "answer": "莱山 <b>&</b>", "reason": "",
              "citations": [cite(rank=i, best="莱山的主导产业是先进制造业。") for i in range(1, 6)]}
    blocks = answer_blocks(answer, ["莱山", "芝罘"])
    assert len(blocks) == 4 and blocks[0] == "<b>答：</b>莱山 &lt;b&gt;&amp;&lt;/b&gt;"
    assert_valid(split_messages(blocks))
    refusal = {"answered": False, "answer": "", "reason": "文档中没有提到“<莱州>”。", "citations": []}
    (block,) = answer_blocks(refusal, ["莱山", "<芝罘&>"])
    assert "&lt;莱州&gt;" in block and "文档涉及：莱山、&lt;芝罘&amp;&gt;。" in block
    assert_valid([block])
    (block,) = answer_blocks({**refusal, "reason": "文档涉及的区市有：莱山。"}, ["莱山"])
    assert block.count("涉及") == 1  # the list is not repeated


def test_20k_character_snippet_is_split_without_losing_text():
    text = ("莱山 <产业> & “数字经济”。" * 1500)[:20000]
    blocks = answer_blocks({"answered": True, "answer": text, "reason": "", "citations": [cite()]}, [])
    assert len(blocks[0]) > LIMIT
    messages = split_messages(blocks)
    assert len(messages) >= 5
    assert_valid(messages)
    assert "".join(plain(m) for m in messages).startswith("答：" + text)


def test_full_paragraph_of_20k_characters_is_capped_and_valid():
    block = citation_block(cite(text="&<>莱山" * 4000, best="莱山"), full=True)
    assert_valid(split_messages([block]))


@pytest.mark.parametrize("seed", range(40))
def test_random_blocks_never_exceed_limit_or_break_tags(seed):
    rng = random.Random(seed)
    blocks = []
    for i in range(rng.randint(1, 12)):
        text = nasty(rng, rng.choice([5, 80, 400, 2000, 6000]))
        best = text[len(text) // 3: len(text) // 3 + rng.randint(0, 30)]
        blocks.append(citation_block(cite(rank=i + 1, title=nasty(rng, 10), heading=nasty(rng, rng.randint(0, 5)),
                                          text=text, best=best), full=rng.random() < 0.3))
    if rng.random() < 0.5:
        answer = {"answered": True, "answer": nasty(rng, rng.choice([3, 5000, 9000])), "reason": "", "citations": []}
        blocks = answer_blocks(answer, []) + blocks
    messages = split_messages(blocks)
    assert_valid(messages)
    # whole blocks under the limit are never cut: each such block appears intact in one message
    for b in blocks:
        if len(b) <= LIMIT:
            assert any(b in m for m in messages)


def test_blocks_are_packed_greedily():
    blocks = ["a" * 2000, "b" * 2000, "c" * 2000]
    assert [len(m) for m in split_messages(blocks)] == [4002, 2000]
    assert split_messages([]) == []


@pytest.mark.parametrize("bad", ["a < b", "a > b", "AT&T", "&nbsp;", "<b>x", "x</b>", "<b><i>x</b></i>", "<p>x</p>",
                                 "<script>x</script>", '<a>x</a>', '<a href="u"><a href="v">x</a></a>',
                                 '<span class="red">x</span>', "<pre><b>x</b></pre>", "<br/>", "", "x" * 4097])
def test_validator_rejects_what_telegram_rejects(bad):
    assert problems(bad)


@pytest.mark.parametrize("good", ["<b>答：</b>x &amp; &lt;y&gt; &quot; &#39; &#x27;", '<a href="https://e.com/?a=1&amp;b=2">来源</a>',
                                  '<pre><code class="language-python">x</code></pre>', '<span class="tg-spoiler">s</span>',
                                  "<blockquote expandable>q</blockquote>", "<tg-spoiler><i>x</i></tg-spoiler>"])
def test_validator_accepts_telegram_html(good):
    assert problems(good) == []
