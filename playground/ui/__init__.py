"""The web UI: ``build_app(settings)`` assembles one ``gr.Tab`` per ``*_tab.py`` module."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground import __version__
from playground.core.settings import Settings
from playground.models.catalog import CatalogError, list_models, resolve_choice
from playground.models.loading import ModelCache
from playground.ratings.batch import BatchRunner
from playground.ratings.judge_runs import JudgeRunner, runs_dir
from playground.ratings.store import Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModels
from playground.ui import (
    compare_tab,
    data_tab,
    history_tab,
    judge_tab,
    leaderboard_tab,
    lecture_tab,
    rate_tab,
    rater,
    reliability_tab,
    reward_tab,
    runs_tab,
    train_tab,
)

THEME = gr.themes.Soft()
CSS = """
.pane-title h3 { margin: 0; }
.pane-stats { font-size: 0.85em; opacity: 0.8; min-height: 1.5em; }
.verbatim { white-space: pre-wrap; overflow-wrap: anywhere; }
.lecture-status, .lecture-blocked { padding: 0 0.75em; }
"""


def build_app(settings: Settings, cache: ModelCache | None = None, store: Store | None = None,
              jobs: Jobs | None = None) -> gr.Blocks:
    """Build the whole app. Nothing heavy happens here: models load on first use, so the page answers at once."""
    cache = cache or ModelCache(settings)
    store = store or Store(settings.ratings_db)
    jobs = jobs or Jobs(settings)  # re-attaches to runs still going from before a restart
    with gr.Blocks(title="RLHF Playground") as app:
        with gr.Row(equal_height=True):
            gr.Markdown(
                f"# RLHF Playground\n"
                f"Instruction tuning and RLHF, by hand: compare a base model with an instruction-tuned one, rate "
                f"their answers, rank them. <small>v{__version__} · data in `{settings.data_dir}`</small>"
            )
            rater_box = rater.build(app, auth=settings.auth is not None)
        runner = BatchRunner(store, cache, lambda: list_models(settings))
        judges = JudgeRunner(store, cache, lambda: list_models(settings), runs_dir(settings))
        reward_models = RewardModels(settings, cache)
        with gr.Tabs() as tabs:
            with gr.Tab("Lecture", id="lecture") as lecture:
                lecture_links = lecture_tab.build(settings, cache, store, jobs, reward_models, tabs, lecture)
            with gr.Tab("Compare", id="compare"):
                compare_tab.build(settings, cache, store, rater_box)
            with gr.Tab("Rate", id="rate"):
                rate_tab.build(settings, store, runner, rater_box, app)
            with gr.Tab("Judge", id="judge") as judging:
                judge_tab.build(settings, store, judges, judging)
            with gr.Tab("Leaderboard", id="leaderboard") as board:
                leaderboard_tab.build(store, board)
            with gr.Tab("Reliability", id="reliability") as consistency:
                reliability_tab.build(store, consistency)
            with gr.Tab("History", id="history") as past:
                history_tab.build(settings, store, rater_box, past)
            with gr.Tab("Train", id="train") as train:
                train_tab.build(settings, jobs, train, cache, reward_models)
            with gr.Tab("Runs", id="runs") as runs:
                run_choice = runs_tab.build(settings, jobs, cache, runs)
            with gr.Tab("Reward", id="reward") as reward:
                reward_tab.build(jobs, store, reward_models, reward)
            with gr.Tab("Data", id="data") as data:
                data_tab.build(settings, data)
        lecture_tab.link_runs(lecture_links, settings, store, tabs, run_choice)  # Runs is built after the Lecture
    return app


def serve(settings: Settings) -> None:
    """Build the app, start listening, then import the ML libraries in the background while the page is served."""
    cache = ModelCache(settings)
    app = build_app(settings, cache)
    app.launch(prevent_thread_lock=True, **launch_kwargs(settings))
    prepare_defaults(settings, cache)
    app.block_thread()


def prepare_defaults(settings: Settings, cache: ModelCache) -> None:
    """Start making the panes' default models ready in the background (the one-time GGUF work included), so the
    first Send finds them loaded; a default that can't be resolved is left to that pane's Send to explain."""
    entries = list_models(settings)
    specs = []
    for choice in (settings.model_a, settings.model_b) if settings.prepare_models else ():
        try:
            spec = resolve_choice(choice, entries)
            if spec.source_type != "endpoint":  # a server: nothing to load here
                specs.append(spec)
        except CatalogError:
            pass
    if specs and settings.prepare_models:
        cache.prepare(specs)
    else:
        cache.warm_up()


def launch_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for ``Blocks.launch``: listen where the settings say, log in if asked, keep no run history.

    Gradio's per-browser run history would store model names next to answers and spoil blind comparisons.
    """
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "auth": settings.auth,
        "share": settings.share,
        "run_history": False,
        "theme": THEME,
        "css": CSS,
        "js": rate_tab.KEYBOARD_JS,
        "allowed_paths": [str(settings.exports_dir)],  # the export zip is offered for download from here
    }
