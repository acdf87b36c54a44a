"""The Train tab's default run name is made when the tab is opened, not when the app started — in the browser, so
a name typed right after opening the tab is never overwritten by a late answer from the server. The browser code
is run here with Node (Debian's nodejs; the browser journeys run it in Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import gradio as gr
import pytest

from playground.runs.jobs import Jobs
from playground.ui import train_tab

node = shutil.which("node") or shutil.which("nodejs")


def opening_handler(settings) -> tuple[gr.Textbox, object]:
    """The handler of the Train tab's select event that sets the SFT form's run name, with that box."""
    with gr.Blocks() as app, gr.Tab("Train") as tab:
        train_tab.build(settings, Jobs(settings), tab)
    boxes = [block for block in app.blocks.values()
             if isinstance(block, gr.Textbox) and block.label == "name" and str(block.value).startswith("sft-")]
    assert len(boxes) == 1
    handlers = [fn for fn in app.fns.values() if (tab._id, "select") in fn.targets and boxes[0] in fn.outputs]
    assert len(handlers) == 1
    return boxes[0], handlers[0]


def run_js(code: str, argument: str) -> str:
    script = f"process.stdout.write(JSON.stringify(({code})({json.dumps(argument)})))"
    return json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)


def test_the_name_is_set_in_the_browser_without_a_round_trip(settings):
    box, handler = opening_handler(settings)
    assert handler.fn is None and handler.js == train_tab.name_on_open_js("sft")  # nothing waits on the server
    assert re.fullmatch(r"sft-\d{8}-\d{6}", box.value)


@pytest.mark.skipif(node is None, reason="Node.js is not installed")
def test_opening_the_tab_makes_a_fresh_default_name_and_keeps_a_typed_one():
    code = train_tab.name_on_open_js("sft")
    for stale in ("sft-20260101-080000", "", "  "):
        fresh = run_js(code, stale)
        assert re.fullmatch(r"sft-\d{8}-\d{6}", fresh) and fresh != "sft-20260101-080000", (stale, fresh)
    for kept in ("my-run", "sft-gemma-cpu-demo", "reward-20260101-080000", "e2e-sft"):
        assert run_js(code, kept) == kept
    assert re.fullmatch(r"ppo-\d{8}-\d{6}", run_js(train_tab.name_on_open_js("ppo"), "ppo-20260101-080000"))
