"""Reward tab: probe a trained reward model — score two answers, check it against the votes, look for length bias."""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from playground.core.settings import Settings
from playground.models.prompting import PromptError, validate_messages
from playground.ratings.selection import select
from playground.ratings.store import Store
from playground.runs import reward_model
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModelError, RewardModels
from playground.ui.rater import bind

INTRO = """
A **reward model** learns R(x, y) — one number for an answer y to a prompt x — from your comparisons:
loss = −log σ(r_chosen − r_rejected) (Bradley–Terry), so P(A better than B) = σ(r_A − r_B). Only differences mean
something: the scale and zero point are arbitrary. Train one in **Train** (stage: Reward model). Here you can type a
prompt and two answers to see which it prefers and by how much, and check it before PPO optimizes against it: does it
agree with the human votes (per rater, per model pair)? Does it simply prefer longer answers (*length bias*, a known
failure of reward models)?
"""

EMPTY_SCORES = {"reward_a": None, "reward_b": None, "margin": None, "prefers": None, "p_a_better": None}
NO_RUN = ("**No reward model yet.** Make one in **Train**: stage *Reward model*, datasets `preferences` (bundled) or "
          "`votes` (yours), then **Start**. When the run has finished (watch it in **Runs**), press **Refresh** here "
          "and pick it.")


def describe(settings: Settings, jobs: Jobs, name: str | None) -> tuple[str, bool]:
    """What the picker's reward run is (base, prompt format, length, held-out accuracy), and whether it can score;
    with no run, how to make one."""
    if not name:
        return (NO_RUN if not reward_model.reward_runs(settings) else "Pick a reward model."), False
    try:
        found = reward_model.find_run(name, settings)
    except RewardModelError as error:
        return str(error), False
    # the trained model's figures: step 0's are the untrained score head's (about chance), not the model's
    held = [m["eval_accuracy"] for m in jobs.folder(name).metrics() if "eval_accuracy" in m and m.get("step")] \
        if (settings.runs_dir / name / "config.yaml").is_file() else []
    accuracy = f" · held-out accuracy {held[-1]:.2f} (last eval)" if held else ""
    return (f"Base **{found.base_model}** · prompts in the *{found.prompt_format}* format · sequences up to "
            f"{found.max_length} tokens{accuracy}"), True


def run_view(settings: Settings, jobs: Jobs, name: str | None) -> list[Any]:
    """The picked run's description and both Score buttons, usable only while a reward run is picked."""
    text, usable = describe(settings, jobs, name)
    return [text, gr.update(interactive=usable), gr.update(interactive=usable)]


def comparison_choices(store: Store, limit: int = 200) -> list[tuple[str, str]]:
    """(label, id) of the newest stored comparisons, for "fill from a stored comparison"."""
    records = sorted((r for r in store.comparisons(voted_only=False) if r.judge_of is None and r.repeat_of is None),
                     key=lambda r: r.voted_at or r.created_at, reverse=True)[:limit]  # each pair once
    return [(f"{(r.voted_at or r.created_at)[:16].replace('T', ' ')} · {' '.join(r.prompt.split())[:60]}", r.id)
            for r in records]


def score_text(run: str, reward_a: float, reward_b: float) -> str:
    """Which answer the reward model prefers, its two rewards, the margin and P(A is better) under Bradley–Terry."""
    margin = reward_a - reward_b
    p_a = 1 / (1 + math.exp(-margin))
    prefers = "A" if margin > 0 else "B" if margin < 0 else "neither"
    return (f"**{run}** prefers **{prefers}**: r(A) = {reward_a:+.3f}, r(B) = {reward_b:+.3f}, margin r(A) − r(B) = "
            f"{margin:+.3f} → P(A is better) = σ(margin) = {p_a:.2f} under Bradley–Terry.")


# ---------------------------------------------------------------------------------------------- callbacks
# Each takes what it works with (settings, jobs, store, reward models) first, then the event's inputs, by the names
# the API documents.


def run_choices(settings: Settings, store: Store, current: str | None) -> list[Any]:
    """The reward runs to pick from (keeping the picked one, else the newest) and the stored comparisons to fill
    from, as they are now (the tab opened or Refresh pressed: a run may have finished meanwhile)."""
    names = [r.name for r in reward_model.reward_runs(settings)]
    value = current if current in names else (names[-1] if names else None)
    return [gr.update(choices=names, value=value), gr.update(choices=comparison_choices(store))]


def switch_run(settings: Settings, jobs: Jobs, name: str | None) -> list[Any]:
    """Another run picked: its description and Score buttons, and the agreement shown (the previous run's) cleared
    and hidden."""
    return run_view(settings, jobs, name) + ["", gr.update(visible=False)]


def fill(store: Store, comparison_id: str | None) -> list[Any]:
    """Prompt, system prompt, both answers and the earlier turns of a stored comparison (nothing changes for an id
    that isn't one)."""
    record = store.get(comparison_id) if comparison_id else None
    if record is None:
        return [gr.skip()] * 5
    return [record.messages[-1]["content"], record.system_prompt, record.a.response, record.b.response,
            [dict(m) for m in record.messages[:-1]]]


def new_conversation() -> list[dict[str, str]]:
    """No earlier turns: a prompt typed by hand starts a new conversation (it isn't the stored one's last turn)."""
    return []


def score_pair(models: RewardModels, name: str | None, text: str, system_prompt: str, a: str, b: str,
               history: list[dict[str, str]] | None = None) -> list[Any]:
    """Score answers A and B to the prompt with reward run ``name`` (the /reward_score endpoint): [the sentence saying
    which it prefers and by how much, the numbers]. No run, a bad prompt or a missing answer is refused with a message
    saying so."""
    if not name:
        raise gr.Error("Pick a reward model first (train one in the Train tab: stage Reward model).")
    messages = list(history or []) + [{"role": "user", "content": (text or "").strip()}]
    try:
        validate_messages(messages)
    except PromptError as error:
        raise gr.Error(str(error)) from error
    if not (a or "").strip() or not (b or "").strip():
        raise gr.Error("Type both answers (A and B) to compare them.")
    try:
        model = models.get(name)
        reward_a, reward_b = model.score([(messages, system_prompt or "", a), (messages, system_prompt or "", b)])
    except (RewardModelError, RuntimeError, OSError, ValueError) as error:
        raise gr.Error(f"Couldn't score with {name}: {error}") from error
    margin = reward_a - reward_b
    data = {"reward_a": reward_a, "reward_b": reward_b, "margin": margin,
            "prefers": "a" if margin > 0 else "b" if margin < 0 else "neither",
            "p_a_better": 1 / (1 + math.exp(-margin))}
    return [score_text(name, reward_a, reward_b), data]


def check_votes(settings: Settings, store: Store, models: RewardModels, name: str | None,
                newest: float | None) -> list[Any]:
    """Score both answers of the ``newest`` decisive votes (0: all) with reward run ``name`` and count how often it
    ranks them as the human did (the /reward_agreement endpoint): [summary with any length bias, agreement per rater,
    per model pair, reward vs length plot]. The summary is saved in the run folder (the Lecture's step 4 shows it)."""
    if not name:
        raise gr.Error("Pick a reward model first.")
    records = [r for r in select(store.comparisons()) if r.winner in ("a", "b")]  # people's, each pair once
    if int(newest or 0) > 0:
        records = records[-int(newest):]
    if not records:
        raise gr.Error("No comparison is voted Left or Right is better yet: vote in Compare or Rate first.")
    try:
        checked = reward_model.agreement(models.get(name), records)
    except (RewardModelError, RuntimeError, OSError, ValueError) as error:
        raise gr.Error(f"Couldn't score with {name}: {error}") from error
    lengths = checked.lengths()
    summary = reward_model.save_check(settings.runs_dir / name, checked)  # the Lecture tab shows it too
    bias = reward_model.length_bias_text(*reward_model.length_correlation(lengths))
    text = (f"**{name}** agrees with **{summary['agreement']:.0%}** of {len(checked.rows)} human votes "
            f"(50 % = chance).{' ' + bias if bias else ''}")
    return [text, checked.by("rater"), checked.by("pair"), reward_model.length_plot(lengths, name)]


def show_results() -> dict[str, Any]:
    """Show the agreement tables and plot (hidden until a check has filled them: no empty tables before)."""
    return gr.update(visible=True)


def build(jobs: Jobs, store: Store, models: RewardModels, tab: gr.Tab) -> None:
    """Lay out the Reward tab and wire its events (layout first, events at the end)."""
    settings = jobs.settings
    earlier = gr.State([])  # turns before the prompt, when filled from a multi-turn comparison
    with gr.Accordion("What this tab does", open=False):
        gr.Markdown(INTRO)
    names = [r.name for r in reward_model.reward_runs(settings)]
    first, usable = describe(settings, jobs, names[-1] if names else None)
    with gr.Row():
        run = gr.Dropdown(names, value=names[-1] if names else None, label="Reward model (a reward run)", scale=3,
                          allow_custom_value=True)
        refresh = gr.Button("Refresh", size="sm", scale=0)
    about = gr.Markdown(first, elem_id="reward-about")
    with gr.Accordion("Score two answers", open=True):
        stored = gr.Dropdown([], label="Fill from a stored comparison (optional)", allow_custom_value=True)
        prompt = gr.Textbox(label="Prompt", lines=2)
        system = gr.Textbox(label="System prompt (optional)", lines=1)
        with gr.Row():
            answer_a = gr.Textbox(label="Answer A", lines=5)
            answer_b = gr.Textbox(label="Answer B", lines=5)
        score = gr.Button("Score both", variant="primary", interactive=usable)
        result = gr.Markdown("", elem_id="reward-result")
        scores = gr.JSON(EMPTY_SCORES, label="Scores", visible=False)
    with gr.Accordion("Check against the votes", open=True):
        gr.Markdown("Scores both answers of every stored comparison voted *Left/Right is better* (ties and both-bad "
                    "say nothing about order) and counts how often the reward model ranks them as the human did.")
        with gr.Row():
            limit = gr.Number(0, precision=0, minimum=0, label="Newest comparisons to score (0 = all)")
            check = gr.Button("Score stored comparisons", variant="primary", interactive=usable)
        summary = gr.Markdown("")
        with gr.Column(visible=False) as results:  # shown once there are results: no empty tables before
            with gr.Row():
                by_rater = gr.Dataframe(label="Agreement per rater", interactive=False)
                by_pair = gr.Dataframe(label="Agreement per model pair", interactive=False)
            scatter = gr.Plot(label="Reward vs answer length")

    # ------------------------------------------------------------------------------------------ events

    for event in (tab.select, refresh.click):
        event(bind(run_choices, settings, store), run, [run, stored], api_visibility="private").then(
            bind(run_view, settings, jobs), run, [about, score, check], api_visibility="private")
    run.change(bind(switch_run, settings, jobs), run, [about, score, check, summary, results],
               api_visibility="private")
    stored.change(bind(fill, store), stored, [prompt, system, answer_a, answer_b, earlier], api_visibility="private")
    prompt.input(new_conversation, None, earlier, api_visibility="private")  # a typed prompt starts a new one
    score.click(bind(score_pair, models), [run, prompt, system, answer_a, answer_b, earlier], [result, scores],
                api_name="reward_score")
    check.click(bind(check_votes, settings, store, models), [run, limit], [summary, by_rater, by_pair, scatter],
                api_name="reward_agreement").success(show_results, None, results, api_visibility="private")
