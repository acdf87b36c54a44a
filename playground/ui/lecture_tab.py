"""Lecture tab: the lecture's five steps as a guided path — each step's point, one button that does it with the
shipped recipe, its status and result (from :func:`playground.lecture.lecture_state`) and a way into the tab with the
details. A thin view: the state and the actions live in :mod:`playground.lecture`."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr
import pandas as pd

from playground import lecture
from playground.core.settings import Settings
from playground.core.verbatim import verbatim_html
from playground.lecture import DONE, FAILED, NEXT, RUNNING, LectureError, StepState
from playground.models.loading import ModelCache
from playground.ratings.store import Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModelError, RewardModels
from playground.runs.run_evaluation import RunEvaluationError, evaluate_run
from playground.runs.run_folder import RunFolder
from playground.ui.rater import bind
from playground.ui.runs_tab import CHARTS, SAMPLE_COLUMNS, curves, samples_table

INTRO = """
The lecture on instruction tuning and RLHF, as five things to do here, in order. Each step says what it shows, has
**one button** that does it with the shipped CPU recipe, shows how far it is and its result, and links to the tab with
the details. On a CPU with the default models each run takes minutes (SFT about 5, PPO's 12 steps 15–40 s each),
and evaluating on every held-out example one to two more: fewer examples per family is quicker and rougher.
Everything is read back from the data folder, so you can leave, restart the app and carry on; work done in the other
tabs counts too.
"""

TAB_NAMES = {"compare": "Compare", "runs": "Runs", "rate": "Rate", "history": "History", "reward": "Reward"}
DETAILS = {1: "compare", 2: "runs", 3: "history", 4: "reward", 5: "runs"}
"""Per step, the tab its details button opens (step 3's action button already opens Rate)."""
BADGES = {DONE: "done", RUNNING: "running", NEXT: "trained, next part", FAILED: "failed"}
"""The status as shown (words, not emoji: a browser without an emoji font shows boxes)."""
PPO_CHARTS = CHARTS["ppo"][:2]
"""Step 5's charts: the reward model's score and the KL from the start (the Runs tab's first two PPO charts)."""


def status_html(state: StepState) -> str:
    """The step's status line: a badge, the detail, a progress bar while its run goes, and any missing
    prerequisite."""
    badge = BADGES.get(state.status, "not started")
    bar = ""
    if state.progress and state.progress[1]:
        bar = f' <progress value="{state.progress[0]}" max="{state.progress[1]}"></progress>'
    blocked = f'<div class="lecture-blocked"><em>Needs first:</em> {html.escape(state.blocked)}</div>' \
        if state.blocked else ""
    return (f'<div id="lecture-status-{state.number}" class="lecture-status"><b>{html.escape(badge)}</b> · '
            f'{html.escape(state.detail)}{bar}</div>{blocked}')


def answers_view(state: StepState, settings: Settings) -> tuple[str, str]:
    """Step 1's two answers as stored, verbatim, each under its model's name (base first)."""
    record = state.comparison
    if record is None:
        return "", ""
    sides = sorted((record.a, record.b), key=lambda side: side.model != lecture.model_source(settings.model_a))
    return tuple(f"<h4>{html.escape(side.model or '?')}</h4>{verbatim_html(side.response)}"  # type: ignore[return-value]
                 for side in sides)


def pane(name: str, update: Any) -> str:
    """One answer as it streams in step 1: the model's name, the text verbatim (or its loading line), any error."""
    error = f"<p><b>Error:</b> {html.escape(update.error)}</p>" if update.error else ""
    return f"<h4>{html.escape(name)}</h4>{verbatim_html(update.text, empty=update.status or '…')}{error}"


def ppo_view(state: StepState, settings: Settings) -> list[Any]:
    """Step 5's score and KL curves and the latest answers, from the PPO run's folder (empty before it logs)."""
    folder = RunFolder(settings.runs_dir / state.run) if state.run else None
    if folder is None or not folder.metrics_file.exists():
        return [gr.update(visible=False)] * len(PPO_CHARTS) + [gr.update(visible=False)]
    metrics = {folder.name: folder.metrics()}
    plots = [gr.update(value=curves(metrics, keys), label=title, y_title=y_title, visible=True)
             for title, y_title, keys in PPO_CHARTS]
    _, _, table = samples_table(folder.samples(), None)
    return plots + [gr.update(value=table, visible=True)]


# ---------------------------------------------------------------------------------------------- callbacks


@dataclass(frozen=True)
class LectureContext:
    """What the Lecture's callbacks work with: the data dir's settings and store, the models, the runs and the
    reward models (the same objects the other tabs use, so work done there counts here)."""

    settings: Settings
    cache: ModelCache
    store: Store
    jobs: Jobs
    models: RewardModels


STEPS = 5
VIEW_SIZE = 3 * STEPS + 4 + len(PPO_CHARTS) + 1
"""What :func:`lecture_view` fills: per step its status, result and button; step 1's two answers, step 2's and
step 3's tables; step 5's charts and answers."""


def lecture_view(context: LectureContext) -> list[Any]:
    """Every step's status, result and button, and the steps' own views, derived again from the data dir."""
    settings = context.settings
    now = lecture.lecture_state(settings, context.store)
    return ([status_html(s) for s in now] + [s.result for s in now]
            + [gr.update(value=s.label, interactive=s.action is not None) for s in now]
            + list(answers_view(now[0], settings))
            + [gr.update(value=now[1].table, visible=now[1].table is not None),
               gr.update(value=now[2].table, visible=now[2].table is not None)]
            + ppo_view(now[4], settings))


def opened(context: LectureContext) -> list[Any]:
    """The tab opened: the whole view and the fingerprint it was derived at (for :func:`tick`)."""
    return lecture_view(context) + [lecture.fingerprint(context.settings)]


def tick(context: LectureContext, last: tuple) -> list[Any]:
    """Redraw only when a file the steps are derived from changed since the last tick (no flicker, little work: the
    state is derived again only then): the view and the new fingerprint, else skip every output."""
    now = lecture.fingerprint(context.settings)
    if now == last:
        return [gr.skip()] * (VIEW_SIZE + 1)
    return lecture_view(context) + [now]


def ask(context: LectureContext) -> Iterator[list[Any]]:
    """Step 1: both default models answer the lecture's prompt, streamed into the two panes ([left, right, message]
    each time), then stored; the last message says whether it was."""
    comparison = None
    try:
        for comparison, left_update, right_update in lecture.ask_both(context.settings, context.cache, context.store,
                                                                      threading.Event()):
            texts = [pane(name, update) for name, update in zip(comparison.side_models, (left_update, right_update))]
            yield texts + [gr.skip()]
    except (ValueError, RuntimeError) as error:
        raise gr.Error(f"The comparison failed: {error}") from error
    stored = comparison is not None and comparison.record is not None
    yield [gr.skip(), gr.skip(), "The answers are stored: they are the comparison step 1 shows." if stored else
           "An answer did not finish (its pane says why), so nothing was stored."]


def run_step(context: LectureContext, stage: str, per_family_value: float,
             progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 - Gradio's idiom
    """Do what the step of ``stage`` (sft, reward, ppo: the /lecture_sft, /lecture_reward and /lecture_ppo endpoints)
    needs next: start or resume its run, evaluate the SFT run
    (``per_family_value`` examples per family, 0: all), or check the reward model against the votes; the message
    says what was done. A step with nothing to do now is refused with what it needs first."""
    settings, store = context.settings, context.store
    state = lecture.step(settings, stage, store)
    try:
        if state.action in ("train", "resume"):
            return lecture.start_run(stage, settings, context.jobs, store)
        if state.action == "evaluate":
            folder = lecture.evaluation_folder(settings, store)
            evaluate_run(settings, context.cache, folder, int(per_family_value or 0),
                         lambda fraction, text: progress(fraction, desc=text))
            return f"{folder.name} evaluated: the table shows base vs tuned per held-out family."
        if state.action == "check":
            summary = lecture.check_reward(settings, context.models, store)
            return f"{state.run} checked against {summary['votes']} votes."
    except (LectureError, RunEvaluationError, RewardModelError, RuntimeError, OSError) as error:
        raise gr.Error(str(error)) from error
    raise gr.Error(state.blocked or f"Step {state.number} is {state.status}: nothing to do now.")


def open_tab(where: str) -> gr.Tabs:
    """Switch to the tab ``where`` (its id), for the steps' buttons into the tabs with the details."""
    return gr.Tabs(selected=where)


def open_step_run(settings: Settings, store: Store, number: int) -> list[Any]:
    """Open Runs with step ``number``'s run chosen — the run the step shows now, read from the data dir at the click
    (no run of it yet: Runs opens as it was)."""
    run = lecture.lecture_state(settings, store)[number - 1].run
    exists = bool(run) and (settings.runs_dir / run).is_dir()
    return [gr.Tabs(selected="runs"), gr.update(value=run) if exists else gr.skip()]


def build(settings: Settings, cache: ModelCache, store: Store, jobs: Jobs, models: RewardModels,
          tabs: gr.Tabs, tab: gr.Tab) -> list[gr.Button]:
    """Lay out the Lecture tab (the five steps, top to bottom) and wire its events. Returns the steps' "Details in"
    buttons: those that open Runs are wired by :func:`link_runs` once the Runs tab exists."""
    states = lecture.lecture_state(settings, store)
    gr.Markdown("## The lecture, step by step")
    with gr.Accordion("How this tab works", open=False):
        gr.Markdown(INTRO)
    message = gr.Markdown("", elem_id="lecture-message")
    statuses, results, buttons, links = [], [], [], []
    for state in states:
        with gr.Column(elem_id=f"lecture-step-{state.number}"), gr.Group():
            gr.Markdown(f"### {state.number}. {state.title}\n{state.point}")
            statuses.append(gr.HTML(status_html(state)))
            results.append(gr.Markdown(state.result, elem_id=f"lecture-result-{state.number}"))
            if state.key == "compare":
                with gr.Row(equal_height=False):
                    left_view, right_view = answers_view(state, settings)
                    left = gr.HTML(left_view, elem_id="lecture-answer-base")
                    right = gr.HTML(right_view, elem_id="lecture-answer-instruct")
            elif state.key == "sft":
                eval_table = gr.Dataframe(state.table, interactive=False, visible=state.table is not None,
                                          label="Held-out accuracy per task family (base vs tuned)",
                                          elem_id="lecture-eval")
                per_family = gr.Number(0, precision=0, minimum=0, label="Examples per family to evaluate (0 = all)")
            elif state.key == "rate":
                votes_table = gr.Dataframe(state.table, interactive=False, visible=state.table is not None,
                                           label="Votes per model pair", elem_id="lecture-votes")
            elif state.key == "ppo":
                with gr.Row():
                    plots = [gr.LinePlot(x="step", y="value", color="series", label=title, x_title="PPO step",
                                         y_title=y_title, height=260, visible=False)
                             for title, y_title, _ in PPO_CHARTS]
                answers = gr.Dataframe(pd.DataFrame(columns=SAMPLE_COLUMNS), interactive=False, wrap=True,
                                       visible=False, label="The policy's latest answers, their score and KL",
                                       elem_id="lecture-ppo-answers")
            with gr.Row():
                buttons.append(gr.Button(state.label, variant="primary", interactive=state.action is not None,
                                         elem_id=f"lecture-do-{state.number}"))
                links.append(gr.Button(f"Details in {TAB_NAMES[DETAILS[state.number]]}", size="sm",
                                       elem_id=f"lecture-open-{state.number}"))
    timer = gr.Timer(2.0)

    # ------------------------------------------------------------------------------------------ events

    views = statuses + results + buttons + [left, right, eval_table, votes_table, *plots, answers]
    assert len(views) == VIEW_SIZE
    context = LectureContext(settings, cache, store, jobs, models)
    show = bind(lecture_view, context)
    seen = gr.State(())
    timer.tick(bind(tick, context), seen, views + [seen], api_visibility="private", show_progress="hidden",
               concurrency_limit=None)
    tab.select(bind(opened, context), None, views + [seen], api_visibility="private")
    # Step 1: both default models answer. Private: it takes nothing (Compare's /compare is the API for that).
    buttons[0].click(bind(ask, context), None, [left, right, message], api_visibility="private").then(
        show, None, views, api_visibility="private")
    for index, stage in ((1, "sft"), (3, "reward"), (4, "ppo")):
        buttons[index].click(bind(run_step, context, stage), per_family, message, api_name=f"lecture_{stage}").then(
            show, None, views, api_visibility="private")
    buttons[2].click(bind(open_tab, "rate"), None, tabs, api_visibility="private")
    for number, link in enumerate(links, start=1):
        if DETAILS[number] != "runs":
            link.click(bind(open_tab, DETAILS[number]), None, tabs, api_visibility="private")
    return links


def link_runs(links: list[gr.Button], settings: Settings, store: Store, tabs: gr.Tabs, run_choice: gr.Dropdown) -> None:
    """Wire the steps whose details are a run (SFT, PPO): open Runs with that step's run chosen (see
    :func:`open_step_run`)."""
    for number, link in enumerate(links, start=1):
        if DETAILS[number] == "runs":
            link.click(bind(open_step_run, settings, store, number), None, [tabs, run_choice],
                       api_visibility="private")
