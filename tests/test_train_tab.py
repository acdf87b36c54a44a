"""The Train tab's default run name is made when the tab is opened, not when the app started."""

from __future__ import annotations

import gradio as gr

from playground.jobs import Jobs
from playground.ui import train_tab


def opening_handlers(settings, monkeypatch, start_name: str) -> tuple[gr.Tab, list]:
    """Build the Train tab (the run-name clock reading ``start_name``); the handlers of its select event that set
    the SFT form's name box, with that box."""
    monkeypatch.setattr(train_tab, "run_name", lambda stage: start_name.replace("sft", stage))
    with gr.Blocks() as app, gr.Tab("Train") as tab:
        train_tab.build(settings, Jobs(settings), tab)
    boxes = [block for block in app.blocks.values()
             if isinstance(block, gr.Textbox) and block.label == "name" and block.value == start_name]
    assert len(boxes) == 1
    handlers = [fn for fn in app.fns.values()
                if (tab._id, "select") in fn.targets and boxes[0] in fn.outputs]
    return boxes[0], handlers


def test_opening_the_tab_makes_a_fresh_default_name(settings, monkeypatch):
    box, handlers = opening_handlers(settings, monkeypatch, "sft-20260101-080000")
    assert len(handlers) == 1
    monkeypatch.setattr(train_tab, "run_name", lambda stage: f"{stage}-20260101-093000")  # an hour later
    assert handlers[0].fn(box.value) == "sft-20260101-093000"
    assert handlers[0].fn("") == "sft-20260101-093000"


def test_a_typed_or_recipe_name_is_kept(settings, monkeypatch):
    box, handlers = opening_handlers(settings, monkeypatch, "sft-20260101-080000")
    for kept in ("my-run", "sft-gemma-cpu-demo", "reward-20260101-080000"):
        assert isinstance(handlers[0].fn(kept), type(gr.skip()))
