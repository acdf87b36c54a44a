"""Judge tab: an AI judge votes on pairs in the background (RLAIF), and how far it agrees with people and itself."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from playground.core.settings import Settings
from playground.models.catalog import list_models
from playground.models.generation import GenerationParams
from playground.ratings import judge_agreement
from playground.ratings.judge import DEFAULT_RUBRIC, JUDGE_PARAMS
from playground.ratings.judge_runs import ALL, JudgeRun, JudgeRunner
from playground.ratings.selection import is_judge
from playground.ratings.store import Store
from playground.ui.compare_tab import model_choices, relist_models
from playground.ui.rater import bind

INTRO = """
**RL from AI feedback (RLAIF).** Votes from people are slow and costly; RLAIF asks a language model instead. Pick
any model as the judge — a packaged one, a hub id, a folder, a base + adapter — and a rubric (what makes an answer
better; `{question}`, `{first}` and `{second}` mark where the request and the two answers go). The judge reads each
pair **twice, in both orders**: models tend to prefer the answer they read first, so only a verdict both orders give
counts, and a pair where they disagree (or where an answer has no readable verdict) is a tie. Decoding is greedy:
the same judge gives the same verdict every time.

Its votes are stored beside people's under the rater `judge:<model>`, with its own words and the rubric; after you
change the rubric, a new run of the same model judges every pair again (the agreement panel reads its latest vote
on each pair).
The Leaderboard, History, Export and the reward / DPO training data keep them apart from people's unless you ask for
both. Before trusting a judge, read the agreement panel below: where it disagrees with people, and whether it agrees
with itself.
"""

STATES = {"judging": "judging", "done": "done", "stopped": "stopped: Resume continues where it stopped",
          "interrupted": "interrupted (the app stopped): Resume continues where it stopped",
          "failed": "failed"}
"""How the status line words a run's state."""


@dataclass
class JudgeContext:
    """What every session's Judge callbacks share: the ratings store (pairs, votes) and the background runner."""

    store: Store
    runner: JudgeRunner


def target_choices(store: Store) -> list[tuple[str, str]]:
    """(label, value) of "What to judge": every comparison not judged yet (by this model with this rubric), or one
    Rate batch (newest first)."""
    return [("Every comparison this judge hasn't judged with this rubric", ALL)] + \
        [(f"Rate batch: {b.name} · {b.created_at[:16].replace('T', ' ')}", b.id) for b in store.batches()]


def build(settings: Settings, store: Store, runner: JudgeRunner, tab: gr.Tab) -> None:
    """Lay out the Judge tab and wire its events (layout first, events at the end)."""
    ctx = JudgeContext(store, runner)
    runs = runner.runs()

    with gr.Accordion("What this tab does", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        model = gr.Dropdown(model_choices(list_models(settings)), value=settings.model_b, allow_custom_value=True,
                            label="Judge model", scale=2)
        target = gr.Dropdown(target_choices(store), value=ALL, allow_custom_value=True, label="What to judge",
                             scale=2)
        max_new = gr.Slider(1, 1024, JUDGE_PARAMS.max_new_tokens, step=1, label="Max new tokens per answer")
    rubric = gr.Textbox(DEFAULT_RUBRIC, lines=10, max_lines=30, max_length=20_000, label="Rubric",
                        info="{question}, {first} and {second} mark where the request and the two answers go; the "
                             "judge reads each pair twice, once in each order")
    with gr.Row():
        start = gr.Button("Start judging", variant="primary")
        default = gr.Button("Restore the default rubric", size="sm", scale=0, min_width=220)
    with gr.Row(equal_height=True):
        run = gr.Dropdown([(r.label, r.id) for r in runs], value=runs[0].id if runs else None,
                          allow_custom_value=True, label="Judge run", scale=3)
        stop = gr.Button("Stop", size="sm", scale=0, min_width=120)
        resume = gr.Button("Resume", size="sm", scale=0, min_width=120)
    progress = gr.HTML("")
    status = gr.Markdown("")
    gr.Markdown("### Agreement with people")
    with gr.Row(equal_height=True):
        judges = judge_agreement.judges(store.comparisons())
        judge = gr.Dropdown(judges, value=judges[0] if judges else None, allow_custom_value=True, label="AI judge",
                            scale=3)
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=120)
    summary = gr.Markdown("")
    table = gr.Dataframe(pd.DataFrame(columns=judge_agreement.TABLE_COLUMNS), interactive=False,
                         label="Agreement with people per model pair")
    disagreements = gr.HTML("", elem_id="judge-disagreement-list")  # model text verbatim: playground.core.verbatim
    timer = gr.Timer(1.0)
    shown = gr.State("")  # the run and state the progress line last showed, so an idle run isn't read every second

    # ------------------------------------------------------------------------------------------ events

    view = [progress, status]
    agreement_view = [summary, table, disagreements]
    tab.select(bind(refresh_choices, ctx), [target, run, judge], [target, run, judge], api_visibility="private")
    tab.select(bind(relist_models, settings), model, model, api_visibility="private")  # endpoints added since
    start.click(bind(start_judging, ctx), [model, target, rubric, max_new], [run] + view, api_name="judge_start")
    default.click(lambda: DEFAULT_RUBRIC, None, rubric, api_visibility="private")
    stop.click(bind(stop_judging, ctx), run, status, api_name="judge_stop")
    resume.click(bind(resume_judging, ctx), run, view, api_name="judge_resume")
    run.change(bind(show_progress, ctx), run, view, api_name="judge_progress")
    timer.tick(bind(poll, ctx), [run, shown], view + [shown], api_visibility="private", show_progress="hidden",
               concurrency_limit=None)
    refresh.click(bind(show_agreement, ctx), judge, agreement_view, api_name="judge_agreement")
    judge.input(bind(show_agreement, ctx), judge, agreement_view, api_visibility="private")


# ---------------------------------------------------------------------------------------------- callbacks
# Module-level over the shared JudgeContext (fixed with ``bind``), so a test calls them without a server; the
# parameters left are the event's inputs in order, and their names are the API's argument names.


def refresh_choices(ctx: JudgeContext, target_value: str | None, run_id: str | None,
                    judge_value: str | None) -> list[Any]:
    """When the tab opens: the batches, runs and judges as they are now, keeping what was picked while it exists."""
    targets = target_choices(ctx.store)
    runs = ctx.runner.runs()
    judges = judge_agreement.judges(ctx.store.comparisons())
    pick = [value for _, value in targets]
    return [gr.update(choices=targets, value=target_value if target_value in pick else ALL),
            gr.update(choices=[(r.label, r.id) for r in runs],
                      value=run_id if run_id in {r.id for r in runs} else (runs[0].id if runs else None)),
            gr.update(choices=judges, value=judge_value if judge_value in judges else (judges[0] if judges else None))]


def _known(ctx: JudgeContext, run_id: str | None) -> JudgeRun:
    """The run ``run_id``; a missing or made-up id is refused with a message."""
    if not run_id:
        raise gr.Error("Pick a judge run first (start one above).")
    run = ctx.runner.run(run_id)
    if run is None:
        raise gr.Error(f"There is no judge run with id {run_id!r}: pick one from the Judge run list.")
    return run


def _view(ctx: JudgeContext, run: JudgeRun) -> list[str]:
    """The progress bar with its counts, and the run's state in words."""
    found = ctx.runner.progress(run)
    # A record saying "judging" whose thread is gone was cut short (an app restart marks it so as well).
    state = "judging" if ctx.runner.running() == run.id else "interrupted" if run.status == "judging" else run.status
    bar = f'<progress value="{found.judged}" max="{max(found.total, 1)}"></progress>'
    words = STATES.get(state, state) + (f": {run.error}" if state == "failed" and run.error else "")
    return [f'<div id="judge-progress">{bar} <b>{html.escape(found.summary())}</b></div>',
            f"**{html.escape(run.target_name)}** with `{run.rater}` — {words}."]


def show_progress(ctx: JudgeContext, run_id: str | None) -> list[str]:
    """A run's progress and state (the /judge_progress endpoint); no run picked shows nothing, a made-up id is
    refused."""
    if not run_id:
        return ["", "No judge run picked: start one above."]
    return _view(ctx, _known(ctx, run_id))


def poll(ctx: JudgeContext, run_id: str | None, shown: str) -> list[Any]:
    """The timer's refresh of the progress (``show_progress``'s outputs, then what it showed): while the run is
    judging, and once more when it has ended; silent about an id that is no run. ``shown`` is the run and state the
    line showed last: a run that is not judging is counted again only when that changes."""
    run = ctx.runner.run(run_id) if run_id else None
    if run is None:
        return [gr.skip(), gr.skip(), ""]
    state = f"{run.id} {'judging' if ctx.runner.running() == run.id else run.status}"
    if state == shown and not state.endswith(" judging"):
        return [gr.skip(), gr.skip(), shown]
    return _view(ctx, run) + [state]


def start_judging(ctx: JudgeContext, model_value: str | None, target_value: str | None, rubric_text: str | None,
                  tokens: float) -> list[Any]:
    """Start the judge ``model_value`` on ``target_value`` (``all``, or a Rate batch's id) with ``rubric_text`` and
    at most ``tokens`` new tokens per answer (the /judge_start endpoint). A bad model, rubric or target, or a run
    already going, is refused before anything starts. Outputs: the run picker with the new run picked, its progress
    and state."""
    try:
        params = GenerationParams(temperature=0.0, max_new_tokens=int(tokens), repetition_penalty=1.0)
        run = ctx.runner.start(model_value or "", rubric_text or "", target_value or ALL, params)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    gr.Info("Judging in the background: each pair in both orders.")
    runs = ctx.runner.runs()
    return [gr.update(choices=[(r.label, r.id) for r in runs], value=run.id)] + _view(ctx, run)


def stop_judging(ctx: JudgeContext, run_id: str | None) -> str:
    """Stop the run after the pair it is judging (the /judge_stop endpoint; its votes so far stay). Says so when the
    run isn't judging; a made-up id is refused."""
    run = _known(ctx, run_id)
    if not ctx.runner.stop(run.id):
        return f"This run is not judging (it is {run.status}): nothing to stop."
    return "Stopping after the pair being judged; Resume continues from there."


def resume_judging(ctx: JudgeContext, run_id: str | None) -> list[str]:
    """Judge the run's pairs its judge hasn't voted on yet with its rubric (the /judge_resume endpoint). Outputs:
    progress, state."""
    try:
        run = ctx.runner.resume(_known(ctx, run_id).id)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return _view(ctx, run)


def show_agreement(ctx: JudgeContext, judge_value: str | None) -> list[Any]:
    """The AI judge ``judge_value`` (``judge:<model>``) against people (the /judge_agreement endpoint): the summary
    with κ and position consistency, agreement per model pair, and the disagreeing pairs to read. A name that is no
    AI judge's is refused."""
    empty = pd.DataFrame(columns=judge_agreement.TABLE_COLUMNS)
    if not judge_value:
        return ["Pick an AI judge: one is listed here once it has judged a pair.", empty, ""]
    if not is_judge(judge_value):
        raise gr.Error(f"{judge_value!r} is not an AI judge: pick one from the list (their names start with "
                       f"'judge:').")
    found = judge_agreement.report(ctx.store.comparisons(), judge_value)
    return [found.summary(), found.per_pair, judge_agreement.disagreements_html(found)]
