"""Model text on screen: every character shown as text, nothing in it parsed as markup or template."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from playground.core.verbatim import escape, verbatim_html

TRICKY = [
    "List<String> xs = new ArrayList<>();",
    "#include <stdio.h>\nint main() { return 0; }",
    "<div>x</div> <img src=x onerror=alert(1)> <script>alert(2)</script>",
    "<start_of_image>and everything after it",
    "    indented\n\tand a tab\r\n\n\ntrailing blank lines\n\n",
    "${alert(3)} {{constructor}} `tick` back\\slash &amp; &lt; literal entities",
    "**not bold** _not italic_ $$x^2$$ [link](javascript:alert(4))",
]


class _Reader(HTMLParser):
    """What a browser would make of the HTML: its tags and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def read(markup: str) -> _Reader:
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    return reader


@pytest.mark.parametrize("text", TRICKY)
def test_every_character_is_text_and_nothing_is_a_tag(text):
    shown = read(verbatim_html(text))
    assert shown.tags == ["div"]
    assert shown.text == text


@pytest.mark.parametrize("text", TRICKY)
def test_no_template_syntax_or_line_structure_survives(text):
    escaped = escape(text)
    for raw in ("<", ">", "$", "{", "}", "`", "\\", "\n", "\t", "\r"):
        assert raw not in escaped  # gr.HTML templates and gr.Chatbot's cleandoc see no markup and one line


def test_nothing_to_show_is_said_in_italics():
    assert read(verbatim_html("", empty="(empty answer)")).text == "(empty answer)"
    assert read(verbatim_html(" \n\t")).text == "(only whitespace: 3 characters)"
    assert "<em>" in verbatim_html("")


def test_compare_chat_shows_every_message_verbatim():
    """Compare's chat panes get escaped HTML (gr.Chatbot with Markdown off), an error in place of a missing answer,
    and an empty answer still pending stays empty."""
    from playground.models.generation import StreamUpdate
    from playground.ui.compare_tab import _chat

    history = [{"role": "user", "content": TRICKY[2]}, {"role": "assistant", "content": TRICKY[4]},
               {"role": "user", "content": TRICKY[0]}, {"role": "assistant", "content": ""}]
    shown = _chat(history, StreamUpdate())
    assert [read(m["content"]).text for m in shown[:3]] == [TRICKY[2], TRICKY[4], TRICKY[0]]
    assert shown[3]["content"] == "" and history[3]["content"] == ""  # the conversation itself is not changed
    failed = _chat(history, StreamUpdate(error="<b>Out of memory</b>"))
    assert read(failed[3]["content"]).text == "Error: <b>Out of memory</b>"
