"""Train tab: a form built from the stage's config dataclass; Start queues the run as its own process."""

from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from playground import datasets
from playground.catalog import list_models
from playground.jobs import JobError, Jobs, shell_command
from playground.settings import Settings
from playground.train.config import ConfigError, SFTConfig, from_dict, help_text
from playground.ui.compare_tab import model_choices

INTRO = """
**Instruction fine-tuning** (the lecture's first step): collect (instruction, answer) pairs across many tasks and
fine-tune the language model on them, so it learns to *answer* rather than continue — and, the claim goes, to answer
tasks it never saw. Here the base model stays frozen and a small **LoRA** adapter learns the change (QLoRA: the
frozen base in 4-bit, on a GPU). Defaults finish a demo on a CPU in minutes with the offline Gemma 3 270M base. The
run continues if you close the page; watch it in the **Runs** tab, then compare base vs tuned in **Compare**.
"""

RECIPES = Path(__file__).resolve().parents[2] / "assets" / "recipes"
GROUPS = {
    "Model and data": ["name", "base_model", "datasets", "max_examples", "prompt_format"],
    "LoRA / QLoRA": ["lora_r", "lora_alpha", "lora_dropout", "target_modules", "quantization"],
    "Optimisation": ["learning_rate", "epochs", "max_steps", "batch_size", "gradient_accumulation", "max_length",
                     "warmup_ratio", "completion_only_loss", "gradient_checkpointing", "seed", "eval_fraction",
                     "save_steps"],
}


def recipes() -> dict[str, Path]:
    """Ready-made configs in assets/recipes (name → file)."""
    return {p.stem: p for p in sorted(RECIPES.glob("*.yaml"))} if RECIPES.is_dir() else {}


def _component(field: dataclasses.Field, default: Any, settings: Settings) -> gr.components.Component:
    """The input for one config field, chosen by its type; its help text comes from the dataclass."""
    label, info = field.name.replace("_", " "), help_text(SFTConfig, field.name)
    if field.name == "base_model":
        return gr.Dropdown(model_choices(list_models(settings)), value=default, label=label, info=info,
                           allow_custom_value=True)
    if field.name == "datasets":
        names = [d.name for d in datasets.list_datasets(settings) if d.purpose == "training"]
        return gr.Dropdown(names, value=default, multiselect=True, allow_custom_value=True, label=label, info=info)
    choices = typing.get_args(typing.get_type_hints(SFTConfig)[field.name])
    if choices:
        return gr.Radio(list(choices), value=default, label=label, info=info)
    if isinstance(default, bool):
        return gr.Checkbox(default, label=label, info=info)
    if isinstance(default, (int, float)):
        return gr.Number(default, precision=0 if isinstance(default, int) else None, label=label, info=info)
    return gr.Textbox(default, label=label, info=info)


def _values(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    """Form values as config values: whole numbers from Number boxes back to int where the field is an int."""
    defaults = SFTConfig()
    out = {}
    for name, value in zip(names, values):
        if isinstance(getattr(defaults, name), int) and not isinstance(getattr(defaults, name), bool) and \
                isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out


def build(settings: Settings, jobs: Jobs, tab: gr.Tab) -> None:
    """Lay out the Train tab and wire its events (layout first, events at the end)."""
    defaults = SFTConfig(name=time.strftime("sft-%Y%m%d-%H%M"))
    fields = {f.name: f for f in dataclasses.fields(SFTConfig) if f.name != "data_dir"}

    with gr.Accordion("What this tab does", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        gr.Radio(["SFT (instruction tuning)"], value="SFT (instruction tuning)", label="Stage",
                 info="Reward model, DPO and PPO come next.")
        recipe = gr.Dropdown(list(recipes()), value=None, label="Start from a recipe (optional)")
    inputs: dict[str, Any] = {}
    for group, names in GROUPS.items():
        with gr.Accordion(group, open=group == "Model and data"), gr.Row(equal_height=False):
            for name in names:
                inputs[name] = _component(fields[name], getattr(defaults, name), settings)
    with gr.Row():
        start = gr.Button("Start", variant="primary")
        preview = gr.Button("Show config and command")
    message = gr.Markdown("", elem_id="train-message")
    with gr.Accordion("Config and command", open=False) as details:
        config_text = gr.Code(language="yaml", label="config.yaml")
        command_text = gr.Code(language="shell", label="Command (run it yourself, or with accelerate on several GPUs)")

    # ------------------------------------------------------------------------------------------ events

    names = list(inputs)

    def make_config(*values: Any) -> SFTConfig:
        try:
            return from_dict("sft", _values(names, values) | {"data_dir": str(settings.data_dir)})
        except ConfigError as error:
            raise gr.Error(f"**{error.field.replace('_', ' ')}**: {str(error).split(': ', 1)[-1]}") from error

    def show_config(*values: Any) -> list[Any]:
        cfg = make_config(*values)
        path = settings.runs_dir / cfg.name / "config.yaml"
        commands = f"{shell_command('sft', path)}\n# several GPUs:\n{shell_command('sft', path, launcher='accelerate')}"
        return [cfg.to_yaml(), commands, gr.update(open=True)]

    preview.click(show_config, list(inputs.values()), [config_text, command_text, details], api_visibility="private")

    def start_run(*values: Any) -> list[Any]:
        cfg = make_config(*values)
        try:
            jobs.create("sft", cfg)
        except JobError as error:
            raise gr.Error(str(error)) from error
        position = next((r.queue_position for r in jobs.runs() if r.name == cfg.name), None)
        where = f"queued (#{position}: another run is using the machine)" if position else "started"
        return [f"✔ Run **{cfg.name}** {where}. Watch it in the **Runs** tab.",
                time.strftime("sft-%Y%m%d-%H%M%S")] + show_config(*values)

    start.click(start_run, list(inputs.values()), [message, inputs["name"], config_text, command_text, details],
                api_name="train_start")

    def load_recipe(choice: str | None) -> list[Any]:
        path = recipes().get(choice or "")
        if path is None:
            return [gr.skip()] * len(names)
        data = yaml.safe_load(path.read_text()) or {}
        return [data.get(name, gr.skip()) for name in names]

    recipe.change(load_recipe, recipe, list(inputs.values()), api_visibility="private")

    def refresh_lists() -> list[Any]:
        training = [d.name for d in datasets.list_datasets(settings) if d.purpose == "training"]
        return [gr.update(choices=model_choices(list_models(settings))), gr.update(choices=training)]

    tab.select(refresh_lists, None, [inputs["base_model"], inputs["datasets"]], api_visibility="private")
