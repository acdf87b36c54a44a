"""The Reward tab with no reward run: a message saying how to make one, no empty tables, both Score buttons off
until a reward run exists and is picked (checked on the built tab and through its callbacks)."""

from __future__ import annotations

import json

import gradio as gr

from playground.ratings.store import Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModels
from playground.ui import reward_tab


def make_reward_run(settings, name: str = "rm-1") -> None:
    """A reward run's saved adapter as the Reward tab lists it (no weights: nothing here loads it)."""
    adapter = settings.runs_dir / name / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS"}))
    (adapter / "playground.json").write_text(json.dumps({"stage": "reward", "run": name, "base_model": "tiny-base",
                                                         "prompt_format": "chat", "max_length": 256}))


def build(settings) -> tuple[gr.Blocks, dict]:
    """The built tab and its parts by role: the Score buttons, the agreement tables, the description."""
    with gr.Blocks() as app, gr.Tab("Reward") as tab:
        reward_tab.build(Jobs(settings), Store(settings.ratings_db), RewardModels(settings), tab)
    blocks = list(app.blocks.values())
    buttons = {b.value: b for b in blocks if isinstance(b, gr.Button)}
    tables = [b for b in blocks if isinstance(b, gr.Dataframe)]
    about = next(b for b in blocks if getattr(b, "elem_id", None) == "reward-about")
    return app, {"score": buttons["Score both"], "check": buttons["Score stored comparisons"], "tables": tables,
                 "about": about}


def shown(block) -> bool:
    """Whether a block is visible with every container above it."""
    while block is not None:
        if getattr(block, "visible", True) is False:
            return False
        block = getattr(block, "parent", None)
    return True


def handler(app: gr.Blocks, name: str):
    return next(fn.fn for fn in app.fns.values() if fn.name == name)


def test_no_reward_run_says_how_to_make_one_and_offers_nothing_to_press(settings):
    app, parts = build(settings)
    assert "No reward model yet" in parts["about"].value and "**Train**" in parts["about"].value
    assert "Reward model" in parts["about"].value  # the stage to pick
    assert parts["score"].interactive is False and parts["check"].interactive is False
    assert len(parts["tables"]) == 2 and not any(shown(table) for table in parts["tables"])  # no "1 2 3" headers
    text, score, check = handler(app, "show_run")(None)  # the tab opened again, still no run
    assert "No reward model yet" in text and score["interactive"] is False and check["interactive"] is False


def test_a_reward_run_turns_the_buttons_on(settings):
    app, parts = build(settings)
    make_reward_run(settings)  # finished while the page was open: Refresh (or opening the tab) finds it
    text, score, check = handler(app, "show_run")("rm-1")
    assert "tiny-base" in text and score["interactive"] is True and check["interactive"] is True
    text, score, check = handler(app, "show_run")("no-such-run")
    assert "No reward model 'no-such-run'" in text and score["interactive"] is False


def test_a_tab_built_with_a_reward_run_picks_it_and_is_usable(settings):
    make_reward_run(settings)
    app, parts = build(settings)
    assert "tiny-base" in parts["about"].value
    assert parts["score"].interactive is not False and parts["check"].interactive is not False


def test_picking_another_run_hides_the_previous_agreement(settings):
    make_reward_run(settings)
    app, _ = build(settings)
    text, score, check, summary, results = handler(app, "switch_run")("rm-1")
    assert summary == "" and results["visible"] is False and score["interactive"] is True
