"""Train tab: SFT, reward model, DPO or PPO — a form built from the stage's config dataclass; Start queues the run as its
own process."""

from __future__ import annotations

import dataclasses
import re
import shlex
import time
import typing
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from playground.core.settings import Settings
from playground.data import instructions, preference_pairs, prompt_sets
from playground.models.catalog import is_language_model_adapter, list_models
from playground.models.loading import ModelCache
from playground.runs import gpu_room, reward_model
from playground.runs.jobs import ROOT, JobError, Jobs, several_gpus_text, shell_command
from playground.runs.reward_model import RewardModels
from playground.train.checks import check_inputs
from playground.train.config import CONFIGS, ConfigError, from_dict, help_text
from playground.ui.compare_tab import model_choices

INTRO = {
    "sft": """
**Instruction fine-tuning** (the lecture's first step): collect (instruction, answer) pairs across many tasks and
fine-tune the language model on them, so it learns to *answer* rather than continue — and, the claim goes, to answer
tasks it never saw. Here the base model stays frozen and a small **LoRA** adapter learns the change (QLoRA: the
frozen base in 4-bit, on a GPU). Defaults finish a demo on a CPU in minutes with the offline Gemma 3 270M base. The
run continues if you close the page; watch it in the **Runs** tab, then compare base vs tuned in **Compare**.
""",
    "reward": """
**Reward model** (the lecture's second step): humans are better at *comparing* two answers than at scoring one, so
learn a scalar reward r(x, y) from pairwise comparisons with the Bradley–Terry loss
−log σ(r(x, y_chosen) − r(x, y_rejected)). The model is the base (or an SFT run) with a one-output score head and a
LoRA adapter. Train it on **your votes** (`votes`), the bundled flawed-answer pairs (`preferences`) or an upload;
watch accuracy on held-out pairs rise in **Runs**, then probe it in the **Reward** tab (does it agree with you?
does it just like long answers?).
""",
    "dpo": """
**DPO** (Direct Preference Optimization): the same comparisons straight into the policy, with no reward model and no
RL. The loss −log σ(β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]) pushes up the chosen
answer relative to the reference model and pushes down the rejected one; β plays the role of RLHF's KL penalty.
The reference is the starting model (the base, or an SFT run). The result is a model you can pick in **Compare**.
""",
    "ppo": """
**PPO** (the lecture's third step, RLHF): the policy writes answers to prompts, the **reward model** scores them,
and reinforcement learning pushes the policy towards higher scores — maximising r(x, y) − β·KL(π ‖ π_ref), where the
KL penalty holds it near the starting model so it can't drift into gibberish the reward model happens to like. Pick
the start (an SFT run, or the base), a reward run trained on the same base, and a prompt set. One base model serves
all four roles — policy, reference, reward and value — by switching LoRA adapters. In **Runs** watch the reward
climb and KL grow, and read the answers at each step: if reward rises while the answers get worse, that is reward
hacking. The result is a model you can pick in **Compare**.
""",
}

STAGE_LABELS = {"sft": "SFT (instruction tuning)", "reward": "Reward model", "dpo": "DPO", "ppo": "PPO (RLHF)"}
RECIPES = Path(__file__).resolve().parents[2] / "assets" / "recipes"
_LORA = ["lora_r", "lora_alpha", "lora_dropout", "target_modules", "quantization"]
_OPTIMISATION = ["learning_rate", "weight_decay", "epochs", "max_steps", "batch_size", "gradient_accumulation", "max_length",
                 "warmup_ratio"]
_RUNTIME = ["gradient_checkpointing", "seed", "save_steps"]
GROUPS: dict[str, dict[str, list[str]]] = {
    "sft": {"Model and data": ["name", "base_model", "datasets", "max_examples", "prompt_format"],
            "LoRA / QLoRA": _LORA,
            "Optimisation": _OPTIMISATION + ["completion_only_loss"] + _RUNTIME[:2] + ["eval_fraction"]
            + _RUNTIME[2:]},
    "reward": {"Model and data": ["name", "base_model", "sft_run", "datasets", "max_examples", "prompt_format",
                                  "eval_fraction"],
               "LoRA / QLoRA": _LORA,
               "Reward loss": ["use_margin", "center_rewards_coefficient"],
               "Optimisation": _OPTIMISATION + _RUNTIME},
    "dpo": {"Model and data": ["name", "base_model", "sft_run", "datasets", "max_examples", "prompt_format",
                               "eval_fraction"],
            "LoRA / QLoRA": _LORA,
            "DPO loss": ["beta", "loss_type"],
            "Optimisation": _OPTIMISATION + _RUNTIME},
    "ppo": {"Model and data": ["name", "base_model", "sft_run", "reward_run", "datasets", "max_examples",
                               "prompt_format", "eval_fraction"],
            "Sampling": ["answers_per_prompt", "response_length", "temperature", "samples_per_step"],
            "PPO": ["kl_coef", "kl_estimator", "adaptive_kl", "kl_target", "kl_horizon", "cliprange",
                    "cliprange_value", "vf_coef", "gamma", "lam", "whiten_rewards", "missing_eos_penalty",
                    "value_init"],
            "LoRA / QLoRA": _LORA,
            "Optimisation": ["learning_rate", "weight_decay", "epochs", "max_steps", "batch_size", "mini_batch_size",
                             "gradient_accumulation", "ppo_epochs", "max_length", "warmup_ratio", "max_grad_norm"]
            + _RUNTIME},
}
"""The form of each stage: every config field but data_dir, once (a test checks)."""


def recipes(stage: str | None = None) -> dict[str, Path]:
    """Ready-made configs in assets/recipes (name → file), those of ``stage`` when given (by file-name prefix)."""
    if not RECIPES.is_dir():
        return {}
    return {p.stem: p for p in sorted(RECIPES.glob("*.yaml")) if stage is None or p.stem.startswith(f"{stage}-")}


def base_model_choices(settings: Settings) -> list[tuple[str, str]]:
    """Models a run can train on: everything Compare lists but base + adapter pairs, since a run trains a new adapter
    on a bare base (to start from a run's adapter, pick the run as ``sft_run``)."""
    return model_choices([entry for entry in list_models(settings) if not entry.spec.adapter])


def sft_runs(settings: Settings) -> list[str]:
    """Runs whose adapter a reward or DPO run can start from: SFT (and DPO) runs with a saved LoRA adapter."""
    root = settings.runs_dir
    names = sorted(p.name for p in root.iterdir() if is_language_model_adapter(p / "adapter")) if root.is_dir() else []
    return [""] + names


def reward_run_choices(settings: Settings) -> list[str]:
    """Reward runs PPO can maximise (the start check makes sure the chosen one shares the base model)."""
    return [run.name for run in reward_model.reward_runs(settings)]


def dataset_choices(stage: str, settings: Settings) -> list[str]:
    if stage == "sft":
        return [d.name for d in instructions.list_datasets(settings) if d.purpose == "training"]
    if stage == "ppo":
        return prompt_sets.list_prompt_sets(settings)
    return [s.name for s in preference_pairs.list_sets(settings)]


def field_label(name: str) -> str:
    """A config field's label in the form (``learning_rate`` → ``learning rate``); error messages use it too."""
    return name.replace("_", " ")


def form_error(error: ConfigError) -> str:
    """A refused config as the form shows it, in plain text: Gradio's error pop-up does not render Markdown.

    ``Learning rate must be a number`` / ``Base model: /x is not a model folder`` — the field as it is labelled.
    """
    label = field_label(error.field)
    sentence = f"{label} {error.detail}" if error.detail.startswith("must ") else f"{label}: {error.detail}"
    return sentence[:1].upper() + sentence[1:]


def _component(config_class: type, field: dataclasses.Field, default: Any, settings: Settings,
               render: bool = True) -> gr.components.Component:
    """The input for one config field, chosen by its type; its help text comes from the dataclass."""
    label, info = field_label(field.name), help_text(config_class, field.name)
    if field.name == "base_model":
        return gr.Dropdown(base_model_choices(settings), value=default, label=label, info=info,
                           allow_custom_value=True)
    if field.name == "datasets":
        return gr.Dropdown(dataset_choices(config_class.stage, settings), value=default, multiselect=True,
                           allow_custom_value=True, label=label, info=info)
    if field.name == "sft_run":
        return gr.Dropdown(sft_runs(settings), value=default, allow_custom_value=True, label=label, info=info)
    if field.name == "reward_run":
        choices = reward_run_choices(settings)
        return gr.Dropdown(choices, value=default or (choices[0] if choices else None), allow_custom_value=True,
                           label=label, info=info)
    choices = typing.get_args(typing.get_type_hints(config_class)[field.name])
    if choices:
        return gr.Radio(list(choices), value=default, label=label, info=info)
    if isinstance(default, bool):
        return gr.Checkbox(default, label=label, info=info, render=render)
    if isinstance(default, (int, float)):
        return gr.Number(default, precision=0 if isinstance(default, int) else None, label=label, info=info)
    return gr.Textbox(default, label=label, info=info)


def _values(config_class: type, names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    """Form values as config values: whole numbers from Number boxes back to int where the field is an int."""
    defaults = config_class()
    out = {}
    for name, value in zip(names, values):
        if isinstance(getattr(defaults, name), int) and not isinstance(getattr(defaults, name), bool) and \
                isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out


def commands_by_hand(stage: str, cfg: Any, settings: Settings) -> str:
    """How to run a config from the form yourself, as **Show config and command** prints it: save the YAML shown
    beside it as ``<name>.yaml`` in the project folder, then run the command there.

    The command names that file — the way the recipes' first lines do — and not ``runs/<name>/config.yaml``, which
    only exists once the run is started; ``--run-dir`` makes the run's folder the one the Runs tab lists.
    """
    config_file = Path(f"{cfg.name}.yaml")
    run_dir = shlex.quote(str(settings.runs_dir / cfg.name))
    return (f"# Save the config above as {config_file} in the project folder ({ROOT}), then run there:\n"
            f"{shell_command(stage, config_file)} --run-dir {run_dir}\n"
            f"{several_gpus_text(stage, config_file, f' --run-dir {run_dir}')}")


def run_commands(stage: str, config: Path) -> str:
    """The commands of a started run, whose config.yaml is now in its folder (as the Runs tab shows them)."""
    return f"# The app runs it as:\n{shell_command(stage, config)}\n{several_gpus_text(stage, config)}"


def run_name(stage: str) -> str:
    """A default run name: the stage and the time now (``sft-20260130-142501``)."""
    return time.strftime(f"{stage}-%Y%m%d-%H%M%S")


def name_on_open_js(stage: str) -> str:
    """Browser code run when the Train tab is opened: the run name becomes a default made now (``<stage>-<local
    time>``, as :func:`run_name`), not when the app started, unless the box holds a name the user typed or a recipe
    set, which is kept. It runs in the browser, synchronously on the click, because a round trip to the server
    would answer after the user had started typing a name and overwrite it."""
    return f"""(current) => {{
        const name = (current || "").trim();
        if (name && !/^{re.escape(stage)}-\\d{{8}}-\\d{{6}}$/.test(name)) return current;
        const d = new Date(), two = (n) => String(n).padStart(2, "0");
        return "{stage}-" + d.getFullYear() + two(d.getMonth() + 1) + two(d.getDate()) + "-" + two(d.getHours())
            + two(d.getMinutes()) + two(d.getSeconds());
    }}"""


def build(settings: Settings, jobs: Jobs, tab: gr.Tab, cache: ModelCache | None = None,
          reward_models: RewardModels | None = None) -> None:
    """Lay out the Train tab (a stage picker, then one form per stage) and wire its events. With the app's ``cache``
    (and ``reward_models``), it offers to unload the app's models from the GPU before a run starts."""
    with gr.Row():
        stage = gr.Radio([(label, key) for key, label in STAGE_LABELS.items()], value="sft", label="Stage",
                         info="The lecture's order: SFT, then a reward model, then PPO (or DPO instead of both).")
    with gr.Accordion("What this stage does", open=False):
        intro = gr.Markdown(INTRO["sft"])
    message = gr.Markdown("", elem_id="train-message")
    with gr.Accordion("Config and command", open=False) as details:
        config_text = gr.Code(language="yaml", label="config.yaml", elem_id="train-config")
        command_text = gr.Code(language="shell", label="Command (run it yourself; SFT, reward, DPO also on several GPUs)",
                               elem_id="train-command")
    unload = gr.Checkbox(False, label="Unload the app's models from the GPU before the run starts", visible=False,
                         elem_id="train-unload-gpu")
    room = (cache, reward_models)
    forms = {key: _stage_form(key, settings, jobs, tab, [message, config_text, command_text, details], unload, room)
             for key in STAGE_LABELS}

    def gpu_offer() -> dict[str, Any]:
        """Shown (and ticked) only while the app holds models on the GPU; hidden, it is unticked, so a Start never
        unloads what the tab didn't offer to."""
        text = gpu_room.offer(cache, reward_models) if cache is not None else ""
        return gr.update(visible=bool(text), value=bool(text), info=text)

    tab.select(gpu_offer, None, unload, api_visibility="private")

    def pick(choice: str) -> list[Any]:
        return [INTRO[choice]] + [gr.update(visible=key == choice) for key in forms]

    stage.change(pick, stage, [intro] + list(forms.values()), api_visibility="private")


def _stage_form(stage: str, settings: Settings, jobs: Jobs, tab: gr.Tab, outputs: list[Any], unload: gr.Checkbox,
                room: tuple[ModelCache | None, RewardModels | None]) -> gr.Column:
    """One stage's form with its recipes, Start and Show config buttons; returns its column (shown for its stage).
    ``unload``: the option to unload the app's GPU models (``room``: the cache and reward models) before Start."""
    config_class = CONFIGS[stage]
    defaults = config_class(name=run_name(stage))
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.name != "data_dir"}
    message, config_text, command_text, details = outputs
    with gr.Column(visible=stage == "sft", elem_id=f"train-form-{stage}") as column:
        recipe = gr.Dropdown(list(recipes(stage)), value=None, label="Start from a recipe (optional)")
        inputs: dict[str, Any] = {}
        for group, names in GROUPS[stage].items():
            # Gradio 6 gives a Checkbox no minimum width, so among Number boxes in a Row it shrinks to a sliver
            # with unreadable labels: a group's checkboxes get a row of their own under its other fields. They are
            # made in the group's order (the form's API takes the inputs in that order) and placed afterwards.
            switches = [name for name in names if isinstance(getattr(defaults, name), bool)]
            with gr.Accordion(group, open=group == "Model and data"):
                with gr.Row(equal_height=False):
                    for name in names:
                        inputs[name] = _component(config_class, fields[name], getattr(defaults, name), settings,
                                                  render=name not in switches)
                if switches:
                    with gr.Row(equal_height=False):
                        for name in switches:
                            inputs[name].render()
        with gr.Row():
            start = gr.Button("Start", variant="primary")
            preview = gr.Button("Show config and command")

    # ------------------------------------------------------------------------------------------ events

    names = list(inputs)
    suffix = "" if stage == "sft" else f"_{stage}"

    def make_config(*values: Any, start: bool = False) -> Any:
        """The form's config, or the error pop-up naming the refused field; for Start, its models and data too."""
        try:
            cfg = from_dict(stage, _values(config_class, names, values) | {"data_dir": str(settings.data_dir)})
            if start:
                check_inputs(cfg, settings)
        except ConfigError as error:
            raise gr.Error(form_error(error)) from error
        return cfg

    def show_config(*values: Any) -> list[Any]:
        cfg = make_config(*values)
        return [cfg.to_yaml(), commands_by_hand(stage, cfg, settings), gr.update(open=True)]

    def gate(start: bool) -> dict[str, Any]:
        """In the page the form is checked by a first event with no outputs, so its error pop-up flags nothing (from
        the button's own event it would flag every output: the run name box showed "Error" whatever the field). A
        pop-up rather than a mark on the input, which may be in a closed group. The button's event follows on
        success; API callers reach that one directly and get the same message as its error."""
        return dict(fn=lambda *values: make_config(*values, start=start) and None, inputs=list(inputs.values()),
                    outputs=None, api_visibility="private", show_progress="hidden")

    preview.click(**gate(start=False)).success(show_config, list(inputs.values()), [config_text, command_text, details],
                                               api_visibility="private")

    def start_run(*values: Any) -> list[Any]:
        cfg = make_config(*values, start=True)
        try:
            folder = jobs.create(stage, cfg)
        except JobError as error:
            raise gr.Error(str(error)) from error
        position = next((r.queue_position for r in jobs.runs() if r.name == cfg.name), None)
        where = f"queued (#{position}: another run is using the machine)" if position else "started"
        return [f"Run **{cfg.name}** {where}. Watch it in the **Runs** tab.", run_name(stage), cfg.to_yaml(),
                run_commands(stage, folder.config), gr.update(open=True)]

    def unload_first(wanted: bool) -> None:
        """After the form is checked, before the run is created: free the GPU for it when asked — and only when it
        starts now; a run that queues behind another would find the models loaded again by the time it starts."""
        cache, reward_models = room
        if wanted and cache is not None and jobs.active() is None:
            gpu_room.unload_for_training(cache, reward_models)

    start.click(**gate(start=True)).success(unload_first, unload, None, api_visibility="private",
                                            show_progress="hidden").success(
        start_run, list(inputs.values()), [message, inputs["name"], config_text, command_text, details],
        api_name=f"train{suffix}_start")

    def load_recipe(choice: str | None) -> list[Any]:
        path = recipes(stage).get(choice or "")
        if path is None:
            return [gr.skip()] * len(names)
        data = yaml.safe_load(path.read_text()) or {}
        return [data.get(name, gr.skip()) for name in names]

    recipe.change(load_recipe, recipe, list(inputs.values()), api_visibility="private")
    tab.select(None, inputs["name"], inputs["name"], js=name_on_open_js(stage), api_visibility="private")

    def refresh_lists() -> list[Any]:
        updates = [gr.update(choices=base_model_choices(settings)),
                   gr.update(choices=dataset_choices(stage, settings))]
        updates += [gr.update(choices=sft_runs(settings))] if "sft_run" in inputs else []
        return updates + ([gr.update(choices=reward_run_choices(settings))] if "reward_run" in inputs else [])

    tab.select(refresh_lists, None, [inputs["base_model"], inputs["datasets"]]
               + [inputs[name] for name in ("sft_run", "reward_run") if name in inputs], api_visibility="private")
    return column
