"""Model text on screen exactly as written: every character visible, nothing in it interpreted or run.

Answers and prompts are data, not markup. Rendered as Markdown, `List<String>` loses `<String>`, `<div>x</div>`
becomes a box, `#include <stdio.h>` becomes a heading without its header name and `<start_of_image>` swallows
what follows, so a rater would judge text they never saw. Every place the UI shows model text (Compare's chats,
Rate's pair, History's detail) shows it through :func:`verbatim_html`: escaped HTML in a block that keeps every
space and line break (the app's CSS gives ``.verbatim`` ``white-space: pre-wrap``).
"""

from __future__ import annotations

import html

# Written as character references too, besides HTML's own specials:
# - dollar, braces, backtick, backslash: gr.HTML fills its value into a JS-template / Handlebars template, and no
#   `${…}` or `{{…}}` in an answer should ever reach a template engine;
# - tab, line feed, carriage return: gr.Chatbot passes every message through `inspect.cleandoc`, which expands
#   tabs, strips the first line and dedents the others; as references the message is one line it can't reshape,
#   and the browser still shows each of them (`white-space: pre-wrap`).
_MORE = str.maketrans({"$": "&#36;", "{": "&#123;", "}": "&#125;", "`": "&#96;", "\\": "&#92;",
                       "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def escape(text: str) -> str:
    """``text`` as HTML character data that a browser displays as exactly these characters."""
    return html.escape(text, quote=True).translate(_MORE)


def verbatim_html(text: str, empty: str = "(empty)") -> str:
    """``text`` in a ``<div class="verbatim">`` that shows it character for character.

    With nothing visible to show, a note in italics says so instead (``empty``, or how much whitespace there is),
    so it can't be mistaken for the text."""
    if not text.strip():
        note = f"(only whitespace: {len(text)} characters)" if text else empty
        return f'<div class="verbatim verbatim-empty"><em>{escape(note)}</em></div>'
    return f'<div class="verbatim">{escape(text)}</div>'
