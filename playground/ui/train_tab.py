"""Train tab: SFT, reward model, DPO, PPO, GRPO, RLOO or KTO — a form built from the stage's config dataclass; Start
queues the run as its own process."""

from __future__ import annotations

import dataclasses
import re
import shlex
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import yaml

from playground.core.settings import Settings
from playground.data import instructions, preference_pairs, prompt_sets
from playground.models.catalog import is_language_model_adapter, list_models
from playground.models.loading import ModelCache
from playground.runs import gpu_room, reward_model
from playground.runs.jobs import (
    ROOT,
    SINGLE_PROCESS_STAGES,
    JobError,
    Jobs,
    launch_text,
    several_gpus_text,
    shell_command,
)
from playground.runs.reward_model import RewardModels
from playground.train.checks import check_inputs
from playground.train.config import CONFIGS, ConfigError, TrainConfig, from_dict, help_text
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
    "grpo": """
**GRPO** (critic-free RL): like PPO the policy writes answers and a reward scores them, but there is no value model.
Each prompt gets a *group* of answers, and the group's own answers are the baseline: an answer's advantage is its
reward less the group's mean, over the group's spread. The reward is a **reward run** trained on the same base (as
PPO's), the held-out tasks' **checks** — 1 when the program says the answer is right, 0 otherwise (verifiable
rewards, no reward model: what DeepSeek-R1 trained on) — or an **AI judge** comparing the group's answers with each
other (RL from AI feedback: no human votes at all). A KL term to the starting model keeps it near where it began.
In **Runs** watch the reward, KL and answer length, and read the answers; the result is a model for **Compare**.
""",
    "rloo": """
**RLOO** (REINFORCE leave-one-out, critic-free RL): the policy answers each prompt several times, and each answer is
judged against the mean reward of the *other* answers to the same prompt — the group is the baseline, no value model
is trained. KL to the starting model is taken off the reward, as in PPO. The reward is a **reward run** on the same
base, the held-out tasks' **checks** (1 right, 0 wrong) or an **AI judge** (the share of the group it beats).
Compare it with PPO and GRPO in **Runs** (overlay the curves); the result is a model for **Compare**.
""",
    "kto": """
**KTO** (Kahneman–Tversky Optimization): learn from *single* thumbs-up / thumbs-down ratings — no pairs needed. Each
answer's implicit reward β·log(π/π_ref) is pushed above a reference point (the policy's KL from the reference) when
it was rated good, below it when rated bad. Your votes give a thumbs-up to the better answer and a thumbs-down to the
worse (as History → Export writes KTO rows); bundled and uploaded pairs split the same way. The reference is the
starting model (the base, or an SFT run); the result is a model you can pick in **Compare**.
""",
}

STAGE_LABELS = {"sft": "SFT (instruction tuning)", "reward": "Reward model", "dpo": "DPO", "ppo": "PPO (RLHF)",
                "grpo": "GRPO", "rloo": "RLOO", "kto": "KTO (thumbs up/down)"}
HELDOUT_TASKS = "heldout"
"""GRPO's and RLOO's prompts for reward_source checks: the bundled held-out task examples (their answers checked)."""
RECIPES = Path(__file__).resolve().parents[2] / "assets" / "recipes"
_LORA = ["lora_r", "lora_alpha", "lora_dropout", "target_modules", "quantization"]
_OPTIMISATION = ["learning_rate", "weight_decay", "epochs", "max_steps", "batch_size", "gradient_accumulation", "max_length",
                 "warmup_ratio"]
_RUNTIME = ["gradient_checkpointing", "seed", "save_steps", "processes"]
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
    "grpo": {"Model and data": ["name", "base_model", "sft_run", "reward_source", "reward_run", "judge_model",
                                "judge_rubric", "datasets",
                                "max_examples", "prompt_format", "eval_fraction"],
             "Sampling": ["answers_per_prompt", "response_length", "temperature", "samples_per_step"],
             "GRPO": ["kl_coef", "cliprange", "iterations", "scale_rewards", "loss_type"],
             "LoRA / QLoRA": _LORA,
             "Optimisation": _OPTIMISATION + _RUNTIME},
    "rloo": {"Model and data": ["name", "base_model", "sft_run", "reward_source", "reward_run", "judge_model",
                                "judge_rubric", "datasets",
                                "max_examples", "prompt_format", "eval_fraction"],
             "Sampling": ["answers_per_prompt", "response_length", "temperature", "samples_per_step"],
             "RLOO": ["kl_coef", "cliprange", "iterations", "normalize_advantages"],
             "LoRA / QLoRA": _LORA,
             "Optimisation": _OPTIMISATION + _RUNTIME},
    "kto": {"Model and data": ["name", "base_model", "sft_run", "datasets", "max_examples", "prompt_format",
                               "eval_fraction"],
            "LoRA / QLoRA": _LORA,
            "KTO loss": ["beta", "desirable_weight", "undesirable_weight"],
            "Optimisation": _OPTIMISATION + _RUNTIME},
}
"""The form of each stage: every config field but data_dir, once (a test checks)."""


def form_fields(stage: str) -> list[str]:
    """A stage's form fields in the order it lays them out: the order of its inputs, hence of its Start endpoint's
    arguments (``param_0`` is ``name``, ``param_1`` ``base_model``…) and of :func:`load_recipe`'s outputs."""
    return [name for names in GROUPS[stage].values() for name in names]


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
    """Runs whose adapter a later stage can start from: runs with a saved language-model LoRA adapter."""
    root = settings.runs_dir
    names = sorted(p.name for p in root.iterdir() if is_language_model_adapter(p / "adapter")) if root.is_dir() else []
    return [""] + names


def reward_run_choices(settings: Settings) -> list[str]:
    """Reward runs PPO, GRPO and RLOO can maximise (the start check makes sure the chosen one shares the base
    model)."""
    return [run.name for run in reward_model.reward_runs(settings)]


def dataset_choices(stage: str, settings: Settings) -> list[str]:
    """The data a stage's form offers: training datasets for SFT, prompt sets for PPO, GRPO and RLOO (and for their
    checks the held-out task examples), preference sets for reward, DPO and KTO (bundled and uploaded; a typed name
    or path is allowed too)."""
    if stage == "sft":
        return [d.name for d in instructions.list_datasets(settings) if d.purpose == "training"]
    if stage == "ppo":
        return prompt_sets.list_prompt_sets(settings)
    if stage in ("grpo", "rloo"):
        return prompt_sets.list_prompt_sets(settings) + [HELDOUT_TASKS]
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
    if field.name == "judge_model":
        return gr.Dropdown(model_choices(list_models(settings)), value=default or None, allow_custom_value=True,
                           label=label, info=info)
    if field.name == "judge_rubric":
        return gr.Textbox(default, lines=3, label=label, info=info)
    if field.name == "reward_run":
        choices = reward_run_choices(settings)
        return gr.Dropdown(choices, value=default or (choices[0] if choices else None), allow_custom_value=True,
                           label=label, info=info)
    choices = typing.get_args(typing.get_type_hints(config_class)[field.name])
    if choices:
        return gr.Radio(list(choices), value=default, label=label, info=info)
    if isinstance(default, bool):
        return gr.Checkbox(default, label=label, info=info, render=render)
    if field.name == "processes" and config_class.stage in SINGLE_PROCESS_STAGES:
        return gr.Number(1, precision=0, label=label, interactive=False,
                         info=f"{config_class.stage.upper()} runs on one process: its loop has no multi-GPU code.")
    if isinstance(default, (int, float)):
        return gr.Number(default, precision=0 if isinstance(default, int) else None, label=label, info=info)
    return gr.Textbox(default, label=label, info=info)


def commands_by_hand(stage: str, cfg: Any, settings: Settings) -> str:
    """How to run a config from the form yourself, as **Show config and command** prints it: save the YAML shown
    beside it as ``<name>.yaml`` in the project folder, then run the command there.

    The command names that file — the way the recipes' first lines do — and not ``runs/<name>/config.yaml``, which
    only exists once the run is started; ``--run-dir`` makes the run's folder the one the Runs tab lists.
    """
    config_file = Path(f"{cfg.name}.yaml")
    run_dir = shlex.quote(str(settings.runs_dir / cfg.name))
    processes = getattr(cfg, "processes", 1)
    if processes > 1:
        return (f"# Save the config above as {config_file} in the project folder ({ROOT}), then run there "
                f"({processes} processes, one per GPU):\n"
                f"{shell_command(stage, config_file, launcher='accelerate', processes=processes)} --run-dir {run_dir}")
    return (f"# Save the config above as {config_file} in the project folder ({ROOT}), then run there:\n"
            f"{shell_command(stage, config_file)} --run-dir {run_dir}\n"
            f"{several_gpus_text(stage, config_file, f' --run-dir {run_dir}')}")


def run_commands(stage: str, config: Path, processes: int = 1) -> str:
    """The commands of a started run, whose config.yaml is now in its folder (as the Runs tab shows them): on
    ``processes`` > 1 the ``accelerate launch`` the app starts it with."""
    return f"# The app runs it as:\n{launch_text(stage, config, processes)}"


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


# ---------------------------------------------------------------------------------------------- callbacks


@dataclass(frozen=True)
class TrainContext:
    """What the Train tab's callbacks work with: the app's settings and run manager, and — in the app only — the
    models it may hold on the GPU (Compare's cache, the Reward tab's reward models), which Start can unload first."""

    settings: Settings
    jobs: Jobs
    cache: ModelCache | None = None
    reward_models: RewardModels | None = None


FormValues = Mapping[str, Any]
"""A stage form's values by config field name (:func:`form_fields`), as the callbacks take them."""


def _values(config_class: type, values: FormValues) -> dict[str, Any]:
    """Form values as config values: whole numbers from Number boxes back to int where the field is an int."""
    defaults = config_class()
    out = {}
    for name, value in values.items():
        if isinstance(getattr(defaults, name), int) and not isinstance(getattr(defaults, name), bool) and \
                isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out


def form_config(context: TrainContext, stage: str, values: FormValues, start: bool = False) -> TrainConfig:
    """The form's config, or the error pop-up (:class:`gradio.Error`) naming the refused field as the form labels it
    (:func:`form_error`). For Start (``start``), its models and data are checked too, so that a run that can't work
    is refused here rather than failing minutes later in the Runs tab."""
    try:
        cfg = from_dict(stage, _values(CONFIGS[stage], values) | {"data_dir": str(context.settings.data_dir)})
        if start:
            check_inputs(cfg, context.settings)
    except ConfigError as error:
        raise gr.Error(form_error(error)) from error
    return cfg


def check_form(context: TrainContext, stage: str, values: FormValues, start: bool = False) -> None:
    """The form's check, as the first event of Show config (and, with ``start``, of Start): it raises the error
    pop-up or returns nothing.

    In the page the form is checked by a first event with no outputs, so its error pop-up flags nothing (from the
    button's own event it would flag every output: the run name box showed "Error" whatever the field). A pop-up
    rather than a mark on the input, which may be in a closed group. The button's event follows on success; API
    callers reach that one directly and get the same message as its error."""
    form_config(context, stage, values, start=start)


def show_config(context: TrainContext, stage: str, values: FormValues) -> list[Any]:
    """Show config and command: the config as YAML, the commands to run it by hand, the accordion opened."""
    cfg = form_config(context, stage, values)
    return [cfg.to_yaml(), commands_by_hand(stage, cfg, context.settings), gr.update(open=True)]


def unload_first(context: TrainContext, wanted: bool) -> None:
    """After the form is checked, before the run is created: free the GPU for it when asked — and only when it
    starts now; a run that queues behind another would find the models loaded again by the time it starts."""
    if wanted and context.cache is not None and context.jobs.active() is None:
        gpu_room.unload_for_training(context.cache, context.reward_models)


def start_run(context: TrainContext, stage: str, values: FormValues) -> list[Any]:
    """Start: check the form (models and data too), create and queue the run. Returns the message (started, or
    queued with its place), a fresh default run name for the next run, the config and the app's command for it, and
    the accordion opened. The ``train*_start`` endpoints."""
    cfg = form_config(context, stage, values, start=True)
    try:
        folder = context.jobs.create(stage, cfg)
    except JobError as error:
        raise gr.Error(str(error)) from error
    position = next((r.queue_position for r in context.jobs.runs() if r.name == cfg.name), None)
    where = f"queued (#{position}: another run is using the machine)" if position else "started"
    return [f"Run **{cfg.name}** {where}. Watch it in the **Runs** tab.", run_name(stage), cfg.to_yaml(),
            run_commands(stage, folder.config, cfg.processes), gr.update(open=True)]


def load_recipe(stage: str, choice: str | None) -> list[Any]:
    """A recipe picked: its settings into the form, one output per field in :func:`form_fields` order; a field the
    recipe doesn't set (or no recipe) is left as it is (:func:`gradio.skip`)."""
    names = form_fields(stage)
    path = recipes(stage).get(choice or "")
    if path is None:
        return [gr.skip()] * len(names)
    data = yaml.safe_load(path.read_text()) or {}
    return [data.get(name, gr.skip()) for name in names]


def list_inputs(stage: str) -> list[str]:
    """The fields whose choices :func:`refresh_lists` renews when the tab is opened, in its outputs' order."""
    return [name for name in ("base_model", "datasets", "sft_run", "reward_run") if name in form_fields(stage)]


def refresh_lists(context: TrainContext, stage: str) -> list[Any]:
    """The tab opened: renewed choices for the models, data and runs a stage's form offers (:func:`list_inputs`),
    since runs finish and data are uploaded while the page is open."""
    choices = {"base_model": base_model_choices, "datasets": partial(dataset_choices, stage), "sft_run": sft_runs,
               "reward_run": reward_run_choices}
    return [gr.update(choices=choices[name](context.settings)) for name in list_inputs(stage)]


def gpu_offer(context: TrainContext) -> dict[str, Any]:
    """The unload option, when the tab is opened: shown (and ticked) only while the app holds models on the GPU;
    hidden, it is unticked, so a Start never unloads what the tab didn't offer to."""
    text = gpu_room.offer(context.cache, context.reward_models) if context.cache is not None else ""
    return gr.update(visible=bool(text), value=bool(text), info=text)


def pick_stage(choice: str) -> list[Any]:
    """A stage picked: its introduction, and its form shown and the others hidden (in :data:`STAGE_LABELS` order)."""
    return [INTRO[choice]] + [gr.update(visible=key == choice) for key in STAGE_LABELS]


_Result = TypeVar("_Result")


def _by_name(callback: Callable[[TrainContext, str, FormValues], _Result], context: TrainContext, stage: str,
             *values: Any) -> _Result:
    """Gradio hands an event a form's values by position, in its inputs' order (:func:`form_fields`); the callbacks
    take them by name. Wired as ``partial(_by_name, callback, context, stage)``, a bare ``*values`` signature, so the
    Start endpoints document their arguments as before (``param_0``, ``param_1``…)."""
    return callback(context, stage, dict(zip(form_fields(stage), values, strict=True)))


# ---------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Shown:
    """Where every stage's form writes: the message line, the config and command boxes and their accordion."""

    message: gr.Markdown
    config_text: gr.Code
    command_text: gr.Code
    details: gr.Accordion


@dataclass(frozen=True)
class _StageForm:
    """One stage's laid-out form: its column (shown for its stage), recipe picker, inputs by field name (in
    :func:`form_fields` order) and buttons."""

    column: gr.Column
    recipe: gr.Dropdown
    inputs: dict[str, gr.components.Component]
    start: gr.Button
    preview: gr.Button


def build(settings: Settings, jobs: Jobs, tab: gr.Tab, cache: ModelCache | None = None,
          reward_models: RewardModels | None = None) -> None:
    """Lay out the Train tab (a stage picker, then one form per stage) and wire its events. With the app's ``cache``
    (and ``reward_models``), it offers to unload the app's models from the GPU before a run starts."""
    with gr.Row():
        stage = gr.Radio([(label, key) for key, label in STAGE_LABELS.items()], value="sft", label="Stage",
                         info="The lecture's order: SFT, then a reward model, then PPO (or DPO instead of both); "
                              "GRPO and RLOO are critic-free RL, KTO learns from single ratings.")
    with gr.Accordion("What this stage does", open=False):
        intro = gr.Markdown(INTRO["sft"])
    message = gr.Markdown("", elem_id="train-message")
    with gr.Accordion("Config and command", open=False) as details:
        config_text = gr.Code(language="yaml", label="config.yaml", elem_id="train-config")
        command_text = gr.Code(language="shell", label="Command (run it yourself; every stage but PPO also on several GPUs)",
                               elem_id="train-command")
    unload = gr.Checkbox(False, label="Unload the app's models from the GPU before the run starts", visible=False,
                         elem_id="train-unload-gpu")
    forms = {key: _stage_form(key, settings) for key in STAGE_LABELS}

    # ------------------------------------------------------------------------------------------ events

    context = TrainContext(settings, jobs, cache, reward_models)
    shown = _Shown(message, config_text, command_text, details)
    for key, form in forms.items():
        _wire_form(context, key, form, shown, unload, tab)
    tab.select(partial(gpu_offer, context), None, unload, api_visibility="private")
    stage.change(pick_stage, stage, [intro] + [form.column for form in forms.values()], api_visibility="private")


def _stage_form(stage: str, settings: Settings) -> _StageForm:
    """Lay out one stage's form: its recipes, inputs by group, Start and Show config buttons."""
    config_class = CONFIGS[stage]
    defaults = config_class(name=run_name(stage))
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.name != "data_dir"}
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
    return _StageForm(column, recipe, inputs, start, preview)


def _wire_form(context: TrainContext, stage: str, form: _StageForm, shown: _Shown, unload: gr.Checkbox,
               tab: gr.Tab) -> None:
    """Wire one stage's form (part of :func:`build`'s events). Show config and Start first run :func:`check_form`
    with no outputs, then their own event on success; Start unloads the app's GPU models in between when
    ``unload`` is ticked."""
    inputs = list(form.inputs.values())
    gate = dict(inputs=inputs, outputs=None, api_visibility="private", show_progress="hidden")
    suffix = "" if stage == "sft" else f"_{stage}"
    form.preview.click(partial(_by_name, check_form, context, stage), **gate).success(
        partial(_by_name, show_config, context, stage), inputs,
        [shown.config_text, shown.command_text, shown.details], api_visibility="private")
    form.start.click(partial(_by_name, partial(check_form, start=True), context, stage), **gate).success(
        partial(unload_first, context), unload, None, api_visibility="private", show_progress="hidden").success(
        partial(_by_name, start_run, context, stage), inputs,
        [shown.message, form.inputs["name"], shown.config_text, shown.command_text, shown.details],
        api_name=f"train{suffix}_start", api_description=False)  # not partial's docstring: no description, as ever
    form.recipe.change(partial(load_recipe, stage), form.recipe, inputs, api_visibility="private")
    tab.select(None, form.inputs["name"], form.inputs["name"], js=name_on_open_js(stage), api_visibility="private")
    tab.select(partial(refresh_lists, context, stage), None, [form.inputs[name] for name in list_inputs(stage)],
               api_visibility="private")
