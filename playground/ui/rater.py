"""Who is voting: a rater name remembered per browser, or the logged-in user when the app runs with ``--auth``."""

from __future__ import annotations

import gradio as gr

ANONYMOUS = "anonymous"
STORAGE_KEY = "rlhf-playground-rater"


def rater_name(typed: str | None, request: gr.Request | None) -> str:
    """The name a vote is recorded under: the login when there is one (it can't be faked from the page), else
    what the user typed, else "anonymous"."""
    username = getattr(request, "username", None) if request is not None else None
    if username:
        return str(username)
    name = " ".join((typed or "").split())[:80]
    return name or ANONYMOUS


def build(app: gr.Blocks, auth: bool) -> gr.Textbox:
    """The rater box (top of the page, shared by every tab), filled on page load from this browser's memory
    (``localStorage``) or the login."""
    remembered = gr.BrowserState("", storage_key=STORAGE_KEY)
    box = gr.Textbox(label="Rater", placeholder="Your name (recorded with your votes)", scale=0, min_width=220,
                     max_length=80, interactive=not auth, elem_id="rater",
                     info="Your login name" if auth else "Remembered in this browser")

    def restore(saved: str, request: gr.Request) -> str:
        username = getattr(request, "username", None)
        return str(username) if username else (saved or "")

    app.load(restore, remembered, box, api_visibility="private")
    gr.on([box.blur, box.submit], lambda name: name, box, remembered, api_visibility="private")
    return box
