"""Runs tab: every training run with live progress, loss curves and log; stop, resume, delete, evaluate, merge and
export."""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from playground import serve
from playground.core.settings import Settings
from playground.data import bigbench, evaluation
from playground.models.catalog import is_language_model_adapter
from playground.models.loading import ModelCache
from playground.runs.export_model import ExportError, GgufType, export_run
from playground.runs.jobs import JobError, Jobs, RunInfo, launch_text
from playground.runs.run_evaluation import RunEvaluationError, evaluate_run, run_models
from playground.runs.run_folder import ACTIVE, RunFolder
from playground.ui.rater import bind

INTRO = """
Each run is its own process writing into its own folder (`config.yaml`, `metrics.jsonl`, `train.log`, checkpoints,
the adapter), so closing the page or restarting the app loses nothing. **Stop** finishes the current step and saves
a checkpoint; **Resume** continues from it. A finished or stopped run's adapter is a model you can pick in Compare.
**Evaluate** measures base vs tuned on held-out task families the training data never contained — does instruction
tuning generalize to unseen tasks?
"""

LIST_COLUMNS = ["name", "stage", "base", "status", "started", "duration", "step", "last loss"]

_GROUP_RL_CHARTS = [
    ("Reward (mean over the step's answers) and held-out", "reward", ("rewards/score/mean", "eval_rewards/score/mean")),
    ("Reward spread within the batch", "standard deviation", ("rewards/score/std", "reward_std")),
    ("KL(π ‖ π_ref)", "nats per token", ("kl", "eval_kl")),
    ("Entropy of the policy", "nats per token", ("entropy",)),
    ("Answer length", "tokens", ("completions/mean_length", "completions/mean_terminated_length")),
    ("Answers cut at response_length; groups all alike", "share", ("completions/clipped_ratio",
                                                                   "frac_reward_zero_std")),
    ("Loss", "loss", ("loss",)),
    ("Learning rate", "learning rate", ("learning_rate",))]
"""GRPO's and RLOO's charts, from the metrics TRL logs (``rewards/score/…`` after the reward function's name). A
group whose answers all score alike teaches nothing (zero advantages): ``frac_reward_zero_std`` counts them."""

CHARTS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "sft": [("Loss (train and eval)", "loss (cross-entropy, nats/token)", ("loss", "eval_loss")),
            ("Learning rate", "learning rate", ("learning_rate",))],
    "reward": [("Loss (train and eval)", "−log σ(r_chosen − r_rejected)", ("loss", "eval_loss")),
               ("Accuracy: r_chosen > r_rejected", "share of pairs", ("accuracy", "eval_accuracy")),
               ("Margin: mean r_chosen − r_rejected", "reward difference", ("margin", "eval_margin")),
               ("Learning rate", "learning rate", ("learning_rate",))],
    "dpo": [("Implicit rewards β·log(π/π_ref)", "reward", ("rewards/chosen", "rewards/rejected",
                                                          "eval_rewards/chosen", "eval_rewards/rejected")),
            ("Margin: reward chosen − rejected", "reward difference", ("rewards/margins", "eval_rewards/margins")),
            ("Accuracy: chosen reward > rejected", "share of pairs", ("rewards/accuracies",
                                                                      "eval_rewards/accuracies")),
            ("Loss (train and eval)", "DPO loss", ("loss", "eval_loss"))],
    "ppo": [("Reward model score (mean, ± std) and total reward", "score",
             ("score", "score_low", "score_high", "reward", "eval_score")),
            ("KL(π ‖ π_ref) per answer", "nats", ("kl", "eval_kl")),
            ("Entropy of the policy", "nats per token", ("entropy",)),
            ("Answer length", "tokens (up to and including EOS)", ("response_length",)),
            ("Policy and value loss", "loss", ("policy_loss", "value_loss")),
            ("Clip fraction", "share of tokens clipped", ("clipfrac", "value_clipfrac")),
            ("Approx. KL(π_old ‖ π) per update", "nats per token", ("approx_kl",)),
            ("Time per step", "seconds", ("time_generate", "time_score", "time_optimize"))],
    "grpo": _GROUP_RL_CHARTS,
    "rloo": _GROUP_RL_CHARTS,
    "kto": [("Implicit rewards β·log(π/π_ref)", "reward", ("rewards/chosen", "rewards/rejected",
                                                          "eval_rewards/chosen", "eval_rewards/rejected")),
            ("Margin: thumbs-up − thumbs-down reward", "reward difference", ("rewards/margins",
                                                                            "eval_rewards/margins")),
            ("KL(π ‖ π_ref): the reference point", "nats", ("kl", "eval_kl")),
            ("Log-probability of the rated answers", "log π(y|x)", ("logps/chosen", "logps/rejected")),
            ("Loss (train and eval)", "KTO loss", ("loss", "eval_loss")),
            ("Learning rate", "learning rate", ("learning_rate",))],
}
"""Per stage, the charts the Runs tab draws: (title, y axis, metrics.jsonl keys). Eight chart slots at most."""
SLOTS = 8
X_TITLES = {"ppo": "PPO step"}
"""The x axis: optimizer steps, except for PPO, whose step is a whole sample-score-update round."""
SAMPLE_STAGES = ("ppo", "grpo", "rloo")
"""The stages that write answers per step (``samples.jsonl``) for the answer viewer."""
SAMPLE_COLUMNS = ["step", "prompt", "answer", "score", "kl", "tokens", "eos"]
LATEST = "latest"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_table(runs: list[RunInfo]) -> pd.DataFrame:
    """The runs as the list shows them: status (or queue place), start, duration so far, step, last loss."""
    now = time.time()
    rows = []
    for r in runs:
        end = r.finished if r.state not in ACTIVE else now
        status = f"queued #{r.queue_position}" if r.queue_position else r.state
        rows.append([r.name, r.stage, r.base_model, status,
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "",
                     _clock(end - r.started) if r.started and end else "", f"{r.step} / {r.max_steps}",
                     f"{r.last_loss:.4f}" if r.last_loss is not None else ""])
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def progress_html(status: dict[str, Any]) -> str:
    """A run's progress bar, state, step and ETA (while running), and its error when it failed."""
    step, total = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    state = status.get("state", "unknown")
    eta = f" · ETA {_clock(status.get('eta_s'))}" if state == "running" and status.get("eta_s") else ""
    bar = f'<progress value="{step}" max="{max(total, 1)}"></progress>' if total else ""
    error = f'<pre class="run-error">{html.escape(status.get("error", ""))}</pre>' if status.get("error") else ""
    return f'<div id="run-progress">{bar} <b>{html.escape(state)}</b> · step {step} / {total or "?"}{eta}</div>{error}'


def curves(frames: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> pd.DataFrame:
    """Long table (step, value, series) of ``keys`` for each run, for a line plot with one line per series."""
    rows = [{"step": int(m["step"]), "value": float(m[key]),
             "series": f"{run} · {key}" if len(frames) > 1 else key}
            for run, metrics in frames.items() for m in metrics for key in keys if m.get(key) is not None]
    # Typed even when empty: a chart first drawn from an object-dtype frame keeps a category x axis and no line.
    return pd.DataFrame(rows, columns=["step", "value", "series"]).astype(
        {"step": "int64", "value": "float64", "series": "object"})


def samples_table(samples: list[dict[str, Any]], step: str | None) -> tuple[list[str], str, pd.DataFrame]:
    """PPO's answers at one step: (step choices, the choice shown, table). ``step`` is a step number as text or
    "latest"; a step that has no answers (yet) falls back to the latest."""
    steps = sorted({int(s["step"]) for s in samples}, reverse=True)
    choice = step if step in [str(n) for n in steps] else LATEST
    shown = steps[0] if choice == LATEST and steps else int(choice) if steps else None
    rows = [[s.get(column) for column in SAMPLE_COLUMNS] for s in samples if shown is not None and s["step"] == shown]
    return [LATEST] + [str(n) for n in steps], choice, pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def memory_text(metrics: list[dict[str, Any]]) -> str:
    """GPU memory of a run (nothing on a CPU): the peaks of the last logging interval and of the whole run, allocated
    (the tensors) and reserved (what PyTorch holds from the driver); nvidia-smi shows the CUDA context on top."""
    rows = [m for m in metrics if m.get("gpu_allocated_gb") is not None and m.get("gpu_reserved_gb") is not None]
    if rows:
        last = rows[-1]
        allocated, reserved = max(m["gpu_allocated_gb"] for m in rows), max(m["gpu_reserved_gb"] for m in rows)
        return (f"GPU memory at step {last['step']}: peak {last['gpu_allocated_gb']:.2f} GiB allocated, "
                f"{last['gpu_reserved_gb']:.2f} GiB reserved (whole run: {allocated:.2f} / {reserved:.2f}); the CUDA "
                f"context adds about 0.3–1 GiB to what nvidia-smi shows")
    older = [m["gpu_memory_gb"] for m in metrics if m.get("gpu_memory_gb")]  # runs logged before per-interval peaks
    return f"peak GPU memory {max(older):.2f} GiB allocated" if older else ""


def speed_text(metrics: list[dict[str, Any]]) -> str:
    """The speed line: the latest training tokens per second and the GPU memory (see :func:`memory_text`)."""
    last = next((m for m in reversed(metrics) if m.get("tokens_per_s")), None)
    parts = [f"{last['tokens_per_s']:.0f} tokens/s (training tokens, no padding)"] if last is not None else []
    return " · ".join(parts + [text for text in [memory_text(metrics)] if text])


# ---------------------------------------------------------------------------------------------- callbacks
# Each takes the runs (``Jobs``) or the evaluator first, then the event's inputs, by the names the API documents.

VIEW_SIZE = 4 + SLOTS
"""A run's view: progress, speed line, the chart slots, log tail, command."""
LISTING_SIZE = 3
"""The list part: the runs table, the run picker, the overlay picker."""
SAMPLES_SIZE = 3
"""The PPO answer viewer: its box, the step picker, the table."""


def listing(jobs: Jobs, selected: str | None, other: str | None) -> list[Any]:
    """The runs table and both pickers, keeping the picked run (else the newest) and overlay (else none)."""
    infos = jobs.runs()
    names = [r.name for r in infos]
    value = selected if selected in names else (names[0] if names else None)
    return [run_table(infos), gr.update(choices=names, value=value),
            gr.update(choices=[""] + names, value=other if other in names else "")]


def view_of(jobs: Jobs, folder: RunFolder | None, other: str | None) -> list[Any]:
    """A run's view (``VIEW_SIZE`` values): progress, speed, its stage's charts (with ``other``'s curves overlaid
    when it is another run), the log tail and the command that reruns it. No folder: a blank view."""
    if folder is None:
        return ["", ""] + [gr.update(visible=False)] * SLOTS + ["", ""]
    name = folder.name
    frames = {name: folder.metrics()}
    if other and other != name:
        try:
            frames[other] = jobs.folder(other).metrics()
        except JobError:
            pass
    status = folder.status()
    stage = status.get("stage", "sft")
    cmd = launch_text(stage, folder.config, int(status.get("processes") or 1), status)
    if status.get("state") in ("finished", "stopped") and is_language_model_adapter(folder.adapter):
        cmd += (f"\n# serve the tuned model as an OpenAI-compatible API at http://127.0.0.1:{serve.DEFAULT_PORT}/v1:"
                f"\n{serve.shell_command(folder.adapter, jobs.settings.data_dir)}")
    charts = CHARTS.get(stage, CHARTS["sft"])
    x_title = X_TITLES.get(stage, "optimizer step")
    plots = [gr.update(value=curves(frames, keys), label=title, x_title=x_title, y_title=y_title, visible=True)
             for title, y_title, keys in charts] + [gr.update(visible=False)] * (SLOTS - len(charts))
    return [progress_html(status), speed_text(frames[name])] + plots + [folder.log_tail(40), cmd]


def details(jobs: Jobs, name: str | None, other: str | None) -> list[Any]:
    """The chosen run's view (the /run_details endpoint); a name that is no run is refused (blank view for no name at
    all)."""
    try:
        folder = jobs.folder(name) if name else None
    except JobError as error:
        raise gr.Error(str(error)) from error
    return view_of(jobs, folder, other)


def refresh(jobs: Jobs, name: str | None, other: str | None) -> list[Any]:
    """The list and the picked run's view, as they are now."""
    top = listing(jobs, name, other)
    try:  # a run deleted between listing and here just shows a blank view
        folder = jobs.folder(top[1]["value"]) if top[1]["value"] else None
    except JobError:
        folder = None
    return top + view_of(jobs, folder, other)


def answers(jobs: Jobs, name: str | None, step: str | None) -> list[Any]:
    """The sample viewer for a run at ``step`` (shown for the stages that sample answers, :data:`SAMPLE_STAGES`):
    box, step choices, table. A name that is no run is refused."""
    try:
        folder = jobs.folder(name) if name else None
    except JobError as error:
        raise gr.Error(str(error)) from error
    if folder is None:
        return [gr.update(visible=False), gr.update(choices=[LATEST], value=LATEST),
                pd.DataFrame(columns=SAMPLE_COLUMNS)]
    choices, choice, table = samples_table(folder.samples(), step)
    return [gr.update(visible=folder.status().get("stage") in SAMPLE_STAGES), gr.update(choices=choices, value=choice),
            table]


def answers_now(jobs: Jobs, name: str | None, step: str | None) -> list[Any]:
    """The sample viewer as :func:`answers`, empty (not refused) for a run deleted meanwhile."""
    try:
        return answers(jobs, name, step)
    except gr.Error:
        return answers(jobs, None, None)


def step_answers(jobs: Jobs, name: str | None, step: str | None) -> list[Any]:
    """Another step picked in the sample viewer (the /run_samples endpoint): the step choices and that step's
    answers."""
    return answers(jobs, name, step)[1:]


def tick(jobs: Jobs, name: str | None, other: str | None, seen: tuple, step: str | None) -> list[Any]:
    """Redraw only when some run's status file changed since the last tick (no flicker, little work): the list and
    view, the new ``seen`` fingerprint, the sample viewer; else skip every output."""
    now_seen = tuple((f.name, f.status_file.stat().st_mtime_ns if f.status_file.exists() else 0)
                     for f in jobs.folders())
    if now_seen == tuple(seen or ()):
        return [gr.skip()] * (LISTING_SIZE + VIEW_SIZE + 1 + SAMPLES_SIZE)
    top = refresh(jobs, name, other)
    return top + [now_seen] + answers_now(jobs, top[1]["value"], step)


ACTION_MESSAGES = {"stop": "{name}: {result}.", "resume": "{name} queued to resume.", "delete": "{name} deleted."}
"""What the Stop, Resume and Delete buttons say once done."""


def run_action(jobs: Jobs, action: str, name: str | None, other: str | None) -> list[Any]:
    """Stop, resume or delete (``action``; the /run_stop, /run_resume and /run_delete endpoints) the picked run, say so,
    and show the list and view as they are after it (a deleted run's view is blank). No run picked, or one the action
    can't apply to, is refused with why."""
    if not name:
        raise gr.Error("Pick a run first.")
    try:
        result = getattr(jobs, action)(name)
    except JobError as error:
        raise gr.Error(str(error)) from error
    gr.Info(ACTION_MESSAGES[action].format(name=name, result=result))
    return refresh(jobs, None if action == "delete" else name, other)


def finished_run(jobs: Jobs, name: str | None) -> RunFolder:
    """The picked run's folder, or the message saying to pick one."""
    if not name:
        raise gr.Error("Pick a finished or stopped run first.")
    try:
        return jobs.folder(name)
    except JobError as error:
        raise gr.Error(str(error)) from error


@dataclass
class Evaluator:
    """What the evaluation buttons work with: the runs, the models they load, and the event Cancel sets to stop the
    evaluation under way (one per built tab)."""

    settings: Settings
    jobs: Jobs
    cache: ModelCache
    stop: threading.Event = field(default_factory=threading.Event)


def run_evaluation(evaluator: Evaluator, name: str | None, per_family: float,
                   progress_bar: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008 - Gradio's idiom
    """Base vs tuned on the held-out task families (the /run_evaluate endpoint; ``per_family`` examples each, 0: all):
    the table and chart.
    No run picked, or one that can't be evaluated, is refused with why."""
    folder = finished_run(evaluator.jobs, name)
    evaluator.stop.clear()

    def report(fraction: float, text: str) -> None:
        progress_bar(fraction, desc=text)

    try:
        results = evaluate_run(evaluator.settings, evaluator.cache, folder, int(per_family or 0), report,
                               evaluator.stop)
    except (RunEvaluationError, RuntimeError) as error:
        raise gr.Error(str(error)) from error
    table = evaluation.compare(*results)
    return [table, evaluation.bar_chart(table, results[0].model, results[1].model)]


def run_bigbench(evaluator: Evaluator, name: str | None, path: str, task_name: str, examples: float,
                 progress_bar: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008 - Gradio's idiom
    """Base vs tuned on one BIG-Bench task (the /run_bigbench endpoint; a task.json, or a task in the bigbench
    archive): the table and chart.
    No run, or a task that can't be read, is refused with why."""
    try:
        base, tuned = run_models(evaluator.settings, finished_run(evaluator.jobs, name))
        task = bigbench.load_task_from(Path((path or "").strip()), (task_name or "").strip())
    except (RunEvaluationError, bigbench.BigBenchError) as error:
        raise gr.Error(str(error)) from error
    try:
        _, _, table = bigbench.compare_on_task(
            evaluator.cache, base, tuned, task, int(examples or 0), tuned.trained_format or "instruction",
            progress=lambda fraction, text: progress_bar(fraction, desc=text))
    except RuntimeError as error:
        raise gr.Error(str(error)) from error
    return [table, evaluation.bar_chart(table, base.name, tuned.name)]


def cancel_evaluation(evaluator: Evaluator) -> None:
    """Ask the evaluation under way to stop (it stops between examples)."""
    evaluator.stop.set()


EXPORT_FORMATS: dict[str, GgufType] = {"Hugging Face folder": "none", "folder + GGUF F16": "f16", "folder + GGUF Q8_0": "q8_0"}
"""The Merge and export choices: the merged folder alone, or with a GGUF file for llama.cpp in it."""


def run_export(evaluator: Evaluator, name: str | None, export_format: str,
               progress_bar: gr.Progress = gr.Progress()) -> str:  # noqa: B008 - Gradio's idiom
    """Merge the picked run's adapter into its base and write it as a model (the /run_export endpoint): a Hugging
    Face folder in DATA_DIR/models, with a GGUF in it for ``export_format`` F16 or Q8_0; returns where and what.
    The float32 merge is counted in the app's memory budget (least recently used models unloaded for it).
    No run picked, a run still going, a reward run, an existing export, a short disk or a memory budget too small
    for the float32 model is refused with why."""
    folder = finished_run(evaluator.jobs, name)
    if export_format not in EXPORT_FORMATS:
        raise gr.Error(f"Pick an export format: {', '.join(EXPORT_FORMATS)}.")
    if folder.status().get("state") in ACTIVE:
        raise gr.Error(f"{folder.name} is still {folder.status().get('state')}: export it once it has finished or "
                       f"been stopped.")
    try:
        result = export_run(evaluator.settings, str(folder.path), gguf=EXPORT_FORMATS[export_format],
                            progress=lambda fraction, text: progress_bar(fraction, desc=text),
                            cache=evaluator.cache)  # room in the app's memory budget for the float32 merge
    except ExportError as error:
        raise gr.Error(str(error)) from error
    listed = f"{result.folder.name}" + (f" and {result.gguf.name}" if result.gguf else "")
    return f"{result.describe()}\nIn the model lists (after a page reload) as {listed}."


def saved_evaluation(jobs: Jobs, name: str | None) -> list[Any]:
    """The picked run's last saved evaluation (table and chart), or nothing when it has none."""
    try:
        results = evaluation.load_saved(jobs.folder(name).path) if name else None
    except (JobError, ValueError):
        results = None
    if not results or len(results) != 2:
        return [None, None]
    table = evaluation.compare(*results)
    return [table, evaluation.bar_chart(table, results[0].model, results[1].model)]


def build(settings: Settings, jobs: Jobs, cache: ModelCache, tab: gr.Tab) -> gr.Dropdown:
    """Lay out the Runs tab and wire its events (layout first, events at the end). Returns the run chooser, which
    other tabs set to open a run here (the Lecture's details buttons)."""
    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    runs = gr.Dataframe(run_table([]), interactive=False, label="Runs (newest first)")
    with gr.Row():
        chosen = gr.Dropdown([], label="Run", scale=2, allow_custom_value=True, elem_id="runs-run")
        overlay = gr.Dropdown([], label="Overlay another run's curves", scale=2, allow_custom_value=True)
        stop = gr.Button("Stop", variant="stop", size="sm")
        resume = gr.Button("Resume", size="sm")
        delete = gr.Button("Delete", size="sm")
    progress = gr.HTML("")
    speed = gr.Markdown("")
    plots = []
    for row in range(SLOTS // 2):
        with gr.Row(elem_id="runs-charts" if row == 0 else None):
            for column in range(2):
                title, y_title, _ = CHARTS["sft"][row * 2 + column] if row * 2 + column < 2 else ("", "", ())
                plots.append(gr.LinePlot(x="step", y="value", color="series", label=title or "chart",
                                         x_title="optimizer step", y_title=y_title or "value", height=300,
                                         visible=bool(title)))
    with gr.Accordion("Answers per step (PPO, GRPO, RLOO)", open=True, visible=False) as samples_box:
        gr.Markdown("A few of each step's prompts with the policy's answer, its reward (the reward model's score, or "
                    "1 / 0 when a task's check passed or failed) and, for PPO, the KL from the reference (nats, the "
                    "whole answer). If the score climbs while the answers get worse, the policy is exploiting the "
                    "reward model — reward hacking.")
        sample_step = gr.Dropdown([LATEST], value=LATEST, label="Step", allow_custom_value=True)
        samples = gr.Dataframe(pd.DataFrame(columns=SAMPLE_COLUMNS), interactive=False, wrap=True,
                               label="Answers", elem_id="run-samples")
    log = gr.Code(label="train.log (last lines)", language=None, lines=12, max_lines=12)
    command = gr.Code(label="Command", language="shell", lines=3)
    with gr.Accordion("Evaluate on held-out tasks (base vs tuned)", open=False):
        gr.Markdown("Greedy answers to held-out tasks the training data never contained, checked by program on "
                    "the answer's first line (exact, or contains for answers that can't be closed). Both models are "
                    "prompted the way the run trained. Low / high: the 95% bootstrap interval of each accuracy; "
                    "change low / high: the paired bootstrap interval of tuned − base (percentage points).")
        with gr.Row():
            limit = gr.Number(0, precision=0, minimum=0, label="Examples per family (0 = all)")
            evaluate = gr.Button("Evaluate", variant="primary")
            cancel = gr.Button("Cancel evaluation", size="sm")
        with gr.Accordion("Or a BIG-Bench task (optional download)", open=False):
            gr.Markdown("Any BIG-Bench JSON task, base vs tuned: generative tasks by exact match with a target, "
                        "multiple-choice tasks by the log-likelihood of each choice. Give a `task.json` path, or "
                        "the `bigbench-1.0.0.tar.gz` source archive (`pip download --no-deps --no-binary :all: "
                        "bigbench==1.0.0`) and a task name such as `object_counting` or "
                        "`logical_deduction/three_objects`.")
            with gr.Row():
                bb_path = gr.Textbox(label="task.json or bigbench archive path", scale=3)
                bb_task = gr.Textbox(label="Task name (archive only)", scale=2)
                bb_limit = gr.Number(50, precision=0, minimum=0, label="Examples (0 = all)", scale=1)
                bb_run = gr.Button("Evaluate BIG-Bench task", scale=1)
        eval_table = gr.Dataframe(label="Accuracy per task family (%, with 95% intervals)", interactive=False,
                                  elem_id="eval-table")
        eval_chart = gr.Plot(label="Accuracy, base vs tuned")
    with gr.Accordion("Merge and export (one model, no adapter)", open=False):
        gr.Markdown("Merges the run's LoRA into its base (float32; a 4-bit QLoRA run merges into the unquantized "
                    "base) and writes a Hugging Face folder — safetensors, tokenizer, the run's prompt format — to "
                    "`DATA_DIR/models/<run>-merged`, where the model lists find it; optionally a GGUF file (F16, or "
                    "Q8_0 at about half the size) in it that llama.cpp runs. Refused when the disk is short.")
        with gr.Row():
            export_format = gr.Radio(list(EXPORT_FORMATS), value="Hugging Face folder", label="Format", scale=3)
            export = gr.Button("Merge and export", scale=1)
        export_result = gr.Textbox(label="Export", lines=4, interactive=False, elem_id="run-export")
    timer = gr.Timer(2.0)

    # ------------------------------------------------------------------------------------------ events

    view = [progress, speed, *plots, log, command]
    assert len(view) == VIEW_SIZE
    everything = [runs, chosen, overlay] + view
    sample_view = [samples_box, sample_step, samples]
    show = bind(details, jobs)
    tab.select(bind(refresh, jobs), [chosen, overlay], everything, api_visibility="private")
    seen = gr.State(())
    timer.tick(bind(tick, jobs), [chosen, overlay, seen, sample_step], everything + [seen] + sample_view,
               api_visibility="private", show_progress="hidden", concurrency_limit=None)
    chosen.change(show, [chosen, overlay], view, api_name="run_details",
                  api_description="The chosen run's view; a name that is no run is refused (blank view for no name at "
                                  "all).")
    chosen.change(bind(answers_now, jobs), [chosen, sample_step], sample_view, api_visibility="private")
    sample_step.input(bind(step_answers, jobs), [chosen, sample_step], [sample_step, samples],
                      api_name="run_samples")
    overlay.change(show, [chosen, overlay], view, api_visibility="private")
    for button, action in ((stop, "stop"), (resume, "resume"), (delete, "delete")):
        button.click(bind(run_action, jobs, action), [chosen, overlay], everything, api_name=f"run_{action}")
    evaluator = Evaluator(settings, jobs, cache)
    evaluate.click(bind(run_evaluation, evaluator), [chosen, limit], [eval_table, eval_chart],
                   api_name="run_evaluate")
    bb_run.click(bind(run_bigbench, evaluator), [chosen, bb_path, bb_task, bb_limit], [eval_table, eval_chart],
                 api_name="run_bigbench")
    cancel.click(bind(cancel_evaluation, evaluator), None, None, api_visibility="private", queue=False)
    chosen.change(bind(saved_evaluation, jobs), chosen, [eval_table, eval_chart], api_visibility="private")
    export.click(bind(run_export, evaluator), [chosen, export_format], export_result, api_name="run_export")
    return chosen
