"""Who is voting: a rater name remembered per browser, or the logged-in user when the app runs with ``--auth``.

Also ``bind``, which fixes a callback's first arguments (settings, store, …) the way Gradio can still read: the
callbacks that take the voter's ``gr.Request`` need it, and a plain ``functools.partial`` would hide it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from playground.ratings.selection import human_rater_error

ANONYMOUS = "anonymous"
STORAGE_KEY = "rlhf-playground-rater"


def rater_name(typed: str | None, request: gr.Request | None) -> str:
    """The name a vote is recorded under: the login when there is one (it can't be faked from the page), else
    what the user typed, else "anonymous". A name an AI judge would vote under (``judge:…``) is refused with a
    ``gr.Error``: a person's votes must never pass for a judge's."""
    username = getattr(request, "username", None) if request is not None else None
    name = str(username) if username else " ".join((typed or "").split())[:80]
    error = human_rater_error(name)
    if error:
        raise gr.Error(error)
    return name or ANONYMOUS


def bind(fn: Callable[..., Any], *fixed: Any) -> Callable[..., Any]:
    """``fn`` with its first arguments fixed (``functools.partial(fn, *fixed)``), as an event callback.

    Gradio reads a callback's signature and type hints: the parameters left are the event's inputs (and, by name,
    its API arguments), and one annotated ``gr.Request`` is filled in by Gradio. A bare ``partial`` keeps the
    signature but not the type hints (Gradio looks them up on ``partial.__call__``), so Gradio would take the
    request for one more input. This wrapper keeps both, and stays a generator function when ``fn`` is one (Gradio
    streams only what it sees as a generator function)."""
    bound = functools.partial(fn, *fixed)
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return (yield from bound(*args, **kwargs))
    else:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return bound(*args, **kwargs)
    call.__signature__ = inspect.signature(bound)  # type: ignore[attr-defined]  # not the one __wrapped__ has
    call.__doc__ = None  # Gradio shows a callback's docstring as its API description: the endpoints keep none
    return call


def restore_rater(saved: str, request: gr.Request) -> str:
    """The rater box's value on page load: the login when there is one, else the name this browser remembered."""
    username = getattr(request, "username", None)
    return str(username) if username else (saved or "")


def remember_rater(name: str) -> str:
    """What this browser remembers once the rater box is left or submitted: the name as typed."""
    return name


def build(app: gr.Blocks, auth: bool) -> gr.Textbox:
    """The rater box (top of the page, shared by every tab), filled on page load from this browser's memory
    (``localStorage``) or the login."""
    remembered = gr.BrowserState("", storage_key=STORAGE_KEY)
    box = gr.Textbox(label="Rater", placeholder="Your name (recorded with your votes)", scale=0, min_width=220,
                     max_length=80, interactive=not auth, elem_id="rater",
                     info="Your login name" if auth else "Remembered in this browser")

    app.load(restore_rater, remembered, box, api_visibility="private")
    gr.on([box.blur, box.submit], remember_rater, box, remembered, api_visibility="private")
    return box
