"""The Train tab's default run name is made when the tab is opened, not when the app started — in the browser, so
a name typed right after opening the tab is never overwritten by a late answer from the server. The browser code
is run here with Node (Debian's nodejs; the browser journeys run it in Chromium).

The tab's callbacks are called directly, without a server: the form's messages naming a refused field, Show config,
Start's started/queued message, recipes filling the form, the lists renewed on opening, the GPU unload option."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import gradio as gr
import pytest
import yaml

from playground.models.loading import ModelCache
from playground.runs import gpu_room
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder
from playground.train.config import CONFIGS
from playground.ui import train_tab
from playground.ui.train_tab import (
    INTRO,
    TrainContext,
    check_form,
    form_config,
    form_fields,
    gpu_offer,
    list_inputs,
    load_recipe,
    pick_stage,
    recipes,
    refresh_lists,
    show_config,
    start_run,
    unload_first,
)

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


# ---------------------------------------------------------------------------------------------- callbacks


def form(stage: str, **changes: Any) -> dict[str, Any]:
    """A stage form's values by field name: the config's defaults, with ``changes``."""
    defaults = CONFIGS[stage]().to_dict()
    return {name: defaults[name] for name in form_fields(stage)} | changes


def refused(call: Callable[[], Any]) -> str:
    """The message of the error pop-up ``call`` raises (as the page shows it)."""
    with pytest.raises(gr.Error) as caught:
        call()
    return caught.value.message


@pytest.fixture
def context(settings) -> TrainContext:
    return TrainContext(settings, Jobs(settings, poll=False))


def test_the_forms_hold_every_setting_but_data_dir_once_in_layout_order():
    for stage, config_class in CONFIGS.items():
        names = form_fields(stage)
        assert sorted(names) == sorted(f for f in config_class().to_dict() if f != "data_dir"), stage
        assert names[:2] == ["name", "base_model"]


def test_numbers_from_the_form_become_the_config_types_and_the_app_data_dir(context):
    cfg = form_config(context, "sft", form("sft", lora_r=8.0, epochs=2, max_steps=3.0))
    assert (cfg.lora_r, cfg.max_steps, cfg.epochs) == (8, 3, 2.0)
    assert type(cfg.lora_r) is int and type(cfg.epochs) is float
    assert cfg.data_dir == str(context.settings.data_dir)


@pytest.mark.parametrize("stage, changes, message", [
    ("sft", {"learning_rate": 5.0}, "Learning rate must be in (0, 0.01]; LoRA usually uses 1e-4–5e-4"),
    ("sft", {"lora_r": None}, "Lora r must be a number"),  # a Number box holding letters or nothing
    ("sft", {"lora_r": 8.5}, "Lora r must be a whole number, got 8.5"),
    ("sft", {"name": "../escape"}, "Name: use 1–64 letters, digits, '-', '_' or '.', starting with a letter or digit"),
    ("sft", {"datasets": []}, "Datasets: choose at least one dataset"),
    ("dpo", {"beta": 0}, "Beta must be in (0, 10]; 0.1 is the usual choice"),
    ("reward", {"center_rewards_coefficient": 2.0}, "Center rewards coefficient must be in [0, 1]"),
    ("ppo", {"mini_batch_size": 3}, "Mini batch size must divide batch_size (8)"),
    ("ppo", {"answers_per_prompt": 2}, "Value init must be fresh with several answers per prompt"),
])
def test_a_refused_value_is_named_as_the_form_labels_it(context, stage, changes, message):
    values = form(stage, **changes)
    for check in (lambda: check_form(context, stage, values), lambda: show_config(context, stage, values),
                  lambda: check_form(context, stage, values, start=True), lambda: start_run(context, stage, values)):
        assert refused(check).startswith(message)
    assert context.jobs.runs() == []  # nothing queued


def test_start_also_checks_the_model_and_the_data_show_config_does_not(context, tiny_base):
    values = form("sft", base_model="/no/such/folder")
    assert check_form(context, "sft", values) is None
    assert yaml.safe_load(show_config(context, "sft", values)[0])["base_model"] == "/no/such/folder"
    assert refused(lambda: check_form(context, "sft", values, start=True)) == (
        "Base model: /no/such/folder is not a model folder (it does not exist or is a file).")
    no_data = form("sft", base_model=str(tiny_base), datasets=["no-such-data"])
    assert re.match(r"Datasets: .*no-such-data", refused(lambda: check_form(context, "sft", no_data, start=True)))
    assert check_form(context, "sft", form("sft", base_model=str(tiny_base)), start=True) is None


def test_show_config_gives_the_yaml_and_the_commands_that_run_it(context):
    text, commands, details = show_config(context, "reward", form("reward", name="mine", lora_r=8.0))
    config = yaml.safe_load(text)
    assert config["name"] == "mine" and config["lora_r"] == 8 and config["data_dir"] == str(
        context.settings.data_dir)
    assert commands.startswith("# Save the config above as mine.yaml in the project folder")
    assert f"python -m playground.train reward mine.yaml --run-dir {context.settings.runs_dir / 'mine'}" in commands
    assert "accelerate launch" in commands
    assert details == gr.update(open=True)
    ppo_commands = show_config(context, "ppo", form("ppo", name="p"))[1]
    assert "PPO runs on one process" in ppo_commands and "accelerate launch -m" not in ppo_commands


class Started:
    """The run process Jobs spawns, still running (no training happens in these tests)."""

    pid = 4242

    def poll(self) -> None:
        return None


def test_start_says_started_then_queued_and_refuses_a_taken_name(context, tiny_base, monkeypatch):
    spawned: list[list[str]] = []
    monkeypatch.setattr("playground.runs.jobs.subprocess.Popen", lambda args, **kw: spawned.append(args) or Started())
    monkeypatch.setattr("playground.runs.jobs._process_alive", lambda pid: pid == Started.pid)
    runs = context.settings.runs_dir
    message, name, text, commands, details = start_run(context, "sft", form("sft", name="first",
                                                                            base_model=str(tiny_base)))
    assert message == "Run **first** started. Watch it in the **Runs** tab."
    assert re.fullmatch(r"sft-\d{8}-\d{6}", name)  # a fresh default name for the next run
    assert RunFolder(runs / "first").config.read_text() == text and yaml.safe_load(text)["name"] == "first"
    assert commands.startswith(f"# The app runs it as:\npython -m playground.train sft {runs / 'first' / 'config.yaml'}")
    assert details == gr.update(open=True)
    assert spawned[0][-3:] == ["playground.train", "sft", str(runs / "first" / "config.yaml")]
    message = start_run(context, "sft", form("sft", name="second", base_model=str(tiny_base)))[0]
    assert message == "Run **second** queued (#1: another run is using the machine). Watch it in the **Runs** tab."
    assert len(spawned) == 1 and RunFolder(runs / "second").status()["state"] == "queued"
    again = form("sft", name="first", base_model=str(tiny_base))
    assert refused(lambda: start_run(context, "sft", again)) == "A run named 'first' already exists: choose another name."


def test_the_models_are_unloaded_only_when_ticked_and_the_run_starts_now(settings, monkeypatch):
    unloaded: list[tuple] = []
    monkeypatch.setattr(gpu_room, "unload_for_training", lambda cache, models: unloaded.append((cache, models)))
    jobs, cache, models = Jobs(settings, poll=False), ModelCache(settings), object()
    unload_first(TrainContext(settings, jobs, cache, models), False)
    unload_first(TrainContext(settings, jobs), True)  # outside the app: no cache to unload
    assert unloaded == []
    unload_first(TrainContext(settings, jobs, cache, models), True)
    assert unloaded == [(cache, models)]
    monkeypatch.setattr(jobs, "active", lambda: "busy")  # the run would queue behind another
    unload_first(TrainContext(settings, jobs, cache, models), True)
    assert unloaded == [(cache, models)]


def test_the_unload_option_shows_ticked_only_while_the_app_holds_gpu_models(settings, monkeypatch):
    jobs, cache = Jobs(settings, poll=False), ModelCache(settings)
    hidden = {"__type__": "update", "visible": False, "value": False, "info": ""}
    assert gpu_offer(TrainContext(settings, jobs)) == hidden
    assert gpu_offer(TrainContext(settings, jobs, cache)) == hidden  # nothing loaded
    monkeypatch.setattr(gpu_room, "app_models_on_gpu", lambda cache, models: (["gemma-3-270m"], 2**30))
    offer = gpu_offer(TrainContext(settings, jobs, cache))
    assert offer["visible"] is True and offer["value"] is True
    assert offer["info"].startswith("The app holds 1 model on the GPU (gemma-3-270m; 1.0 GiB).")


@pytest.mark.parametrize("stage", CONFIGS)
def test_a_recipe_fills_the_fields_it_sets_and_leaves_the_others(context, stage):
    names = form_fields(stage)
    assert load_recipe(stage, None) == load_recipe(stage, "no-such-recipe") == [gr.skip()] * len(names)
    for choice, path in recipes(stage).items():
        data = yaml.safe_load(path.read_text())
        assert set(data) <= set(names), choice  # every setting a recipe holds has an input to go in
        filled = dict(zip(names, load_recipe(stage, choice), strict=True))
        assert {name: value for name, value in filled.items() if value != gr.skip()} == data, choice
        assert form_config(context, stage, form(stage) | data).name == data["name"]  # the form then validates


def test_opening_the_tab_renews_the_lists_each_form_offers(context, tiny_adapter):
    assert list_inputs("sft") == ["base_model", "datasets"]
    assert list_inputs("ppo") == ["base_model", "datasets", "sft_run", "reward_run"]
    sft = dict(zip(list_inputs("sft"), refresh_lists(context, "sft"), strict=True))
    assert "gemma-3-270m" in [key for _, key in sft["base_model"]["choices"]]
    assert "instructions" in sft["datasets"]["choices"]
    assert refresh_lists(context, "dpo")[2] == gr.update(choices=[""])  # no SFT run to start from yet
    shutil.copytree(tiny_adapter, context.settings.runs_dir / "my-sft" / "adapter")
    dpo = dict(zip(list_inputs("dpo"), refresh_lists(context, "dpo"), strict=True))
    assert dpo["sft_run"]["choices"] == ["", "my-sft"] and "preferences" in dpo["datasets"]["choices"]
    assert "prompts" in refresh_lists(context, "ppo")[1]["choices"]


def test_picking_a_stage_shows_its_form_and_introduction():
    intro, *forms = pick_stage("dpo")
    assert intro == INTRO["dpo"]
    # sft, reward, dpo, ppo, grpo, rloo, kto
    assert [update["visible"] for update in forms] == [False, False, True, False, False, False, False]


def test_the_page_hands_the_callbacks_the_form_by_field_name(settings):
    """The events take the inputs in :func:`form_fields` order, so position i is field i."""
    with gr.Blocks() as app, gr.Tab("Train") as tab:
        train_tab.build(settings, Jobs(settings, poll=False), tab)
    fns = {fn.api_name: fn for fn in app.fns.values()}
    for stage in CONFIGS:
        start = fns["train_start" if stage == "sft" else f"train_{stage}_start"]
        assert [block.label for block in start.inputs] == [train_tab.field_label(n) for n in form_fields(stage)]
        assert start.api_visibility == "public"
    preview = next(fn for fn in app.fns.values() if fn.api_visibility == "private" and len(fn.outputs) == 3
                   and len(fn.inputs) == len(form_fields("ppo")))
    values = form("ppo", name="by-position", kl_coef=0.5)
    text = preview.fn(*values.values())[0]
    assert yaml.safe_load(text)["name"] == "by-position" and yaml.safe_load(text)["kl_coef"] == 0.5
