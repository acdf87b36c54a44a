"""Rate tab: generate every model pair on a prompt set in the background, then vote on them one by one, blind."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from playground.core.settings import Settings
from playground.core.verbatim import verbatim_html
from playground.data.prompt_sets import BUNDLED_PROMPTS, PromptSetError, load_prompt_set
from playground.models.catalog import ModelSpec, list_models
from playground.models.generation import GenerationParams
from playground.models.loading import LoadOptions
from playground.ratings.batch import MAX_REPEAT_SHARE, BatchRunner, BatchSettings
from playground.ratings.claims import PairClaims
from playground.ratings.store import AlreadyVoted, Batch, ComparisonRecord, Store, StoreError, winner_from_screen
from playground.ui.compare_tab import model_choices, relist_models
from playground.ui.rater import bind, rater_name

INTRO = """
This is how the lecture's preference data is made: people see two answers to the same prompt and say which is
better. Pick a prompt set and two or more models; every pair of models answers every prompt in the background, and
you rate the pairs one at a time — blind, sides shuffled. Keys: **1** left better · **2** right better · **3** tie ·
**4** both bad · **S** skip · **U** undo your last vote. Your progress is saved with every vote.

You may also score each answer on its own, 1 (poor) to 5 (excellent): the lecture's point is that such absolute
scores drift while comparisons stay consistent, and the **Reliability** tab measures it on your own votes — with
the help of a share of pairs that the batch asks again later (set it below; 0 = none).
"""

KEYS = (("left", "1 · Left is better"), ("right", "2 · Right is better"), ("tie", "3 · Tie"),
        ("both_bad", "4 · Both are bad"))
SCORES = [("not scored", 0)] + [(str(n), n) for n in range(1, 6)]
"""An answer's optional 1–5 score, as its radio row offers it; 0 is "not scored" (stored as None)."""
BATCH_KEY = "rlhf-playground-batch"

# Keyboard shortcuts for the rating buttons; typing in a text box is left alone. Passed to launch(js=...).
KEYBOARD_JS = """
() => {
  const keys = {"1": "rate-left", "2": "rate-right", "3": "rate-tie", "4": "rate-both_bad", "s": "rate-skip",
                "u": "rate-undo"};
  const typing = (el) => el && (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
    (el.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(el.type)));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const id = keys[event.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    event.preventDefault();
    button.click();
  });
}
"""


def prompt_set_choices() -> list[tuple[str, str]]:
    """(label, value) of the prompt-set picker; the bundled set's size is counted from its file, not written down."""
    return [(f"Bundled prompts ({len(load_prompt_set(BUNDLED_PROMPTS))})", "Bundled prompts"),
            ("Upload a file", "Upload a file")]


def _batch_label(batch: Batch) -> str:
    return f"{batch.name} · {batch.status} · {batch.created_at[:16].replace('T', ' ')}"


GENERATION_STATES = {"generating": "generating", "stopped": "generation stopped",
                     "interrupted": "generation interrupted", "failed": "generation failed"}
"""How the progress line names a batch's generation while pairs are missing, by batch status."""


def _progress_html(store: Store, batch: Batch | None) -> str:
    """The progress line: a rated bar with counts and, while pairs are missing, the generation's state and bar."""
    if batch is None:
        return ""
    progress = store.progress(batch.id)
    rated = f'<progress value="{progress.rated}" max="{max(progress.total, 1)}"></progress>'
    state = GENERATION_STATES.get(batch.status, "not all generated")
    generated = "" if progress.generated >= progress.total else \
        f' · {state} <progress value="{progress.generated}" max="{max(progress.total, 1)}"></progress>'
    return f'<div id="rate-progress">{rated} <b>{html.escape(progress.summary())}</b>{generated}</div>'


def _status(batch: Batch | None, generating: bool) -> str:
    if batch is None:
        return "No batch yet: start one above."
    if batch.status == "failed":
        return f"**Generation failed:** {batch.error}"
    if batch.status in ("stopped", "interrupted") and not generating:
        return f"Generation {batch.status}. Resume it to generate the remaining pairs."
    return ""


def _prompt_html(record: ComparisonRecord) -> str:
    """The pair's system prompt and prompt, verbatim (see playground.core.verbatim)."""
    system = f"<b>System:</b>{verbatim_html(record.system_prompt)}" if record.system_prompt else ""
    return f"{system}<b>Prompt:</b>{verbatim_html(record.prompt)}"


def _reveal(record: ComparisonRecord) -> str:
    sides = {"a": record.a, "b": record.b}
    left, right = (ModelSpec(s.model or "?", s.adapter).name
                   for s in (sides[record.left_side], sides["b" if record.left_side == "a" else "a"]))
    verdict = {"tie": "a tie", "both_bad": "both bad", record.left_side: "left better"}.get(record.winner,
                                                                                          "right better")
    return f"Last vote: **{verdict}** — left was `{left}`, right was `{right}`."


@dataclass
class RateContext:
    """What every session's Rate callbacks share: the ratings store (batches, pairs, votes), the background
    runner that generates the pairs, and which pairs are on some rater's screen (so raters sharing a batch are
    shown different pairs)."""

    store: Store
    runner: BatchRunner
    claims: PairClaims = field(default_factory=PairClaims)


def build(settings: Settings, store: Store, runner: BatchRunner, rater: gr.Textbox, app: gr.Blocks) -> None:
    """Lay out the Rate tab and wire its events (layout first, events at the end)."""
    ctx = RateContext(store, runner)
    entries = list_models(settings)
    current = gr.State(None)  # id of the pair on screen
    mine = gr.State([])  # this session's votes, oldest first, as (batch id, pair id, voted_at): what Undo takes back
    remembered = gr.BrowserState("", storage_key=BATCH_KEY)

    with gr.Accordion("What this tab does", open=False):
        gr.Markdown(INTRO)
    with gr.Accordion("New batch", open=not store.batches()) as new_batch:
        with gr.Row():
            source = gr.Radio(prompt_set_choices(), value="Bundled prompts", label="Prompt set")
            upload = gr.File(label="Prompt file (.jsonl with a 'prompt' field, .csv with a 'prompt' column, .txt)",
                             file_types=[".jsonl", ".csv", ".txt"], visible=False)
        models = gr.Dropdown(model_choices(entries), value=[settings.model_a, settings.model_b], multiselect=True,
                             allow_custom_value=True, label="Models (two or more; every pair is compared)")
        with gr.Row():
            limit = gr.Number(0, precision=0, minimum=0, label="Use the first N prompts (0 = all)")
            max_new = gr.Slider(1, 1024, 128, step=1, label="Max new tokens")
            temperature = gr.Slider(0, 2, 0.7, step=0.05, label="Temperature")
            seed = gr.Number(42, precision=0, minimum=0, label="Seed")
            repeats = gr.Slider(0, round(100 * MAX_REPEAT_SHARE), 10, step=1,
                                label="Ask this % of pairs again later, sides swapped (0 = off)",
                                info="Unannounced, to measure how consistent the votes are (Reliability tab)")
        start = gr.Button("Generate pairs", variant="primary")
    with gr.Row(equal_height=True):
        batch = gr.Dropdown([], label="Batch", scale=3, allow_custom_value=True)
        stop_gen = gr.Button("Stop generating", size="sm")
        resume = gr.Button("Resume generating", size="sm")
        rate_skipped = gr.Button("Rate skipped pairs", size="sm")
    progress = gr.HTML("")
    status = gr.Markdown("")
    prompt = gr.HTML("", elem_id="rate-prompt")  # model text (and prompts) as HTML: see playground.core.verbatim
    with gr.Row(equal_height=True):
        with gr.Column(variant="panel"):
            gr.Markdown("#### Left answer")
            left = gr.HTML("", elem_id="rate-left-answer")
        with gr.Column(variant="panel"):
            gr.Markdown("#### Right answer")
            right = gr.HTML("", elem_id="rate-right-answer")
    with gr.Row(equal_height=True):
        left_score = gr.Radio(SCORES, value=0, label="Left answer on its own, 1 (poor) – 5 (excellent): optional",
                              elem_id="rate-left-score")
        right_score = gr.Radio(SCORES, value=0, label="Right answer on its own, 1 (poor) – 5 (excellent): optional",
                               elem_id="rate-right-score")
    with gr.Row():
        buttons = [gr.Button(label, elem_id=f"rate-{side}", interactive=False) for side, label in KEYS]
        skip = gr.Button("S · Skip", elem_id="rate-skip", interactive=False)
        undo = gr.Button("U · Undo my last vote", elem_id="rate-undo")
    with gr.Row():
        strength = gr.Slider(0, 5, 0, step=1, label="How much better? (optional; 0 = not said)")
        rationale = gr.Textbox(label="Why? (optional, one line)", max_length=300, scale=2)
    last = gr.Markdown("")
    timer = gr.Timer(1.0)

    # ------------------------------------------------------------------------------------------ events

    view = [current, progress, status, prompt, left, right] + buttons + [skip, left_score, right_score]
    vote_outputs = view + [last, strength, rationale, mine]
    app.load(bind(batch_choices, ctx), remembered, batch, api_visibility="private")
    app.load(bind(relist_models, settings), models, models, api_visibility="private")  # endpoints added since
    batch.change(bind(open_batch, ctx), [batch, current], [remembered] + view, api_name="rate_open",
                 concurrency_limit=None)
    # Callable (bench/raters.py calls it as a browser's timer would) but not documented: it only refreshes the screen.
    timer.tick(bind(tick, ctx), [batch, current], view, api_name="rate_tick", api_visibility="undocumented",
               show_progress="hidden", concurrency_limit=None)
    start.click(bind(start_batch, ctx), [source, upload, models, limit, max_new, temperature, seed, repeats],
                [batch, new_batch], api_name="rate_start")
    source.change(upload_visible, source, upload, api_visibility="private")
    for button, (choice, _) in zip(buttons, KEYS):
        # Votes are short writes that SQLite serializes itself: no need to queue them one at a time.
        button.click(bind(rate_button, ctx, choice), [batch, current, strength, rationale, rater, left_score,
                                                      right_score, mine], vote_outputs,
                     api_name=f"rate_{choice}", concurrency_limit=None)
    skip.click(bind(skip_pair, ctx), [batch, current], view, api_name="rate_skip", concurrency_limit=None)
    undo.click(bind(undo_last, ctx), [batch, mine], vote_outputs, api_name="rate_undo", concurrency_limit=None)
    stop_gen.click(bind(stop_generating, ctx), batch, None, api_visibility="private")
    resume.click(bind(resume_generating, ctx), batch, None, api_visibility="private")
    rate_skipped.click(bind(requeue_skipped, ctx), batch, view, api_visibility="private")


# ---------------------------------------------------------------------------------------------- callbacks
# Module-level, over explicit state (the batch id picked, the id of the pair on screen, the shared RateContext), so a
# test can call them without a server. build() fixes the context with ``bind``; the parameters left are the event's
# inputs in order, and their names are the API's argument names.


def batch_choices(ctx: RateContext, selected: str | None) -> dict[str, Any]:
    """The Batch picker: every batch, newest first, with ``selected`` picked when it still exists (else the
    newest). On page load ``selected`` is the batch this browser had open."""
    batches = ctx.store.batches()
    ids = [b.id for b in batches]
    value = selected if selected in ids else (ids[0] if ids else None)
    return gr.update(choices=[(_batch_label(b), b.id) for b in batches], value=value)


def record_side(record: ComparisonRecord | None, side: str) -> str:
    """The answer shown on ``side`` ("left" or "right") of the pair, verbatim; empty when there is no pair."""
    if record is None:
        return ""
    on_left = record.a if record.left_side == "a" else record.b
    on_right = record.b if record.left_side == "a" else record.a
    return verbatim_html((on_left if side == "left" else on_right).response, empty="(empty answer)")


def show_pair(ctx: RateContext, batch_id: str | None, current_id: str | None, redraw: bool = False) -> list[Any]:
    """Progress, status and the pair to rate: ``current_id`` while it is unrated, else the next one that no other
    rater has on screen (:mod:`playground.ratings.claims`).

    Outputs: the pair's id, the progress line, the status note, the prompt, both answers, the rating and skip
    buttons (usable when there is a pair), and both answers' score rows ("not scored" for each new pair). The pair
    already on screen isn't sent again, nor are its scores touched, unless ``redraw``; nor is its id (the outputs
    never change the pair id without the texts that go with it)."""
    chosen = ctx.store.batch(batch_id) if batch_id else None
    record = ctx.store.get(current_id) if current_id else None
    if record is None or record.winner is not None or record.batch_id != batch_id or record.deleted_at:
        record = ctx.claims.next_pair(ctx.store, batch_id) if chosen else None  # one no other rater is reading
    else:
        ctx.claims.hold(record.id)  # still on this screen (the timer asks every second): other raters get others
    generating = chosen is not None and ctx.runner.running() == chosen.id
    note = _status(chosen, generating)
    if record is None and chosen is not None and not note:
        p = ctx.store.progress(chosen.id)
        note = ("The next pair is being generated…" if generating else
                f"All done: {p.rated} rated." + (f" {p.skipped} skipped: press *Rate skipped pairs*."
                                                 if p.skipped else ""))
    ready = gr.update(interactive=record is not None)
    if record is not None and record.id == current_id and not redraw:
        pair, texts, scores = gr.skip(), [gr.skip()] * 3, [gr.skip()] * 2
    else:
        pair = record.id if record else None
        texts = [_prompt_html(record) if record else "", record_side(record, "left"), record_side(record, "right")]
        scores = [0, 0]
    return [pair, _progress_html(ctx.store, chosen), note] + texts + [ready] * (len(KEYS) + 1) + scores


def tick(ctx: RateContext, batch_id: str | None, current_id: str | None) -> list[Any]:
    """The Rate tab's timer, every second (``show_pair``'s outputs): the progress line and status note refreshed,
    the claim on the pair on screen renewed, and a pair shown when none is (the next one generated, say).

    A pair on screen is never replaced, and the pair id never changed, from here: a tick that started before a vote
    or an Undo of this session can land after it with the old pair id, and whatever it drew would then replace what
    that vote or Undo showed, under the rater's eyes (or, drawing nothing, point the next vote at a pair that isn't
    on screen). A pair that was voted meanwhile, from another tab, stays until the rater presses a key, which
    ``cast`` answers with "that pair already has a vote" and the next pair."""
    if not current_id:
        return show_pair(ctx, batch_id, None)
    ctx.claims.hold(current_id)  # still on this screen: other raters get other pairs
    chosen = ctx.store.batch(batch_id) if batch_id else None
    note = _status(chosen, chosen is not None and ctx.runner.running() == chosen.id)
    return [gr.skip(), _progress_html(ctx.store, chosen), note] + [gr.skip()] * (3 + len(KEYS) + 1 + 2)


def known(ctx: RateContext, batch_id: str | None) -> str | None:
    """``batch_id`` if it is empty (no batch picked yet) or a batch that exists; a made-up id is refused."""
    if batch_id and ctx.store.batch(batch_id) is None:
        raise gr.Error(f"There is no batch with id {batch_id!r}: pick one from the Batch list, or start one.")
    return batch_id


def open_batch(ctx: RateContext, batch_id: str | None, current_id: str | None) -> list[Any]:
    """A batch picked (the /rate_open endpoint): this browser remembers it, and its next pair is shown."""
    return [known(ctx, batch_id) or ""] + show_pair(ctx, batch_id, current_id)


def start_batch(ctx: RateContext, kind: str, file: str | None, picked: list[str] | None, n: float | None,
                tokens: float, temp: float, seed_value: float | None, repeat_percent: float | None) -> list[Any]:
    """Start generating every pair of the ``picked`` models on the prompt set (the /rate_start endpoint): the
    bundled prompts, or the uploaded ``file`` when ``kind`` says so; its first ``n`` prompts when ``n`` > 0.
    ``repeat_percent`` of the pairs are asked again later in the batch, sides swapped (0 = none; stored with the
    batch, so a resumed batch keeps doing it).

    A bad prompt file, model choice or share of repeats is refused before anything starts. Outputs: the Batch
    picker with the new batch picked, and the New batch section folded."""
    try:
        path = Path(file) if kind == "Upload a file" and file else BUNDLED_PROMPTS
        if kind == "Upload a file" and not file:
            raise PromptSetError("Upload a prompt file first, or choose the bundled prompts.")
        prompts = load_prompt_set(path)[: int(n)] if int(n or 0) > 0 else load_prompt_set(path)
        params = GenerationParams(max_new_tokens=int(tokens), temperature=float(temp), seed=int(seed_value or 0))
        name = f"{path.stem} · {len(prompts)} prompts · {len(picked or [])} models"
        share = float(repeat_percent or 0) / 100
        created = ctx.runner.start(name, prompts, picked or [], BatchSettings(params, LoadOptions(),
                                                                              repeat_share=share))
    except (ValueError, StoreError) as error:
        raise gr.Error(str(error)) from error
    gr.Info(f"Generating {created.total} pairs in the background; rate them as they arrive.")
    return [batch_choices(ctx, created.id), gr.update(open=False)]


def upload_visible(kind: str) -> dict[str, Any]:
    """The file box shows only when the prompt set is an uploaded file."""
    return gr.update(visible=kind == "Upload a file")


def screen_score(value: float | None) -> int | None:
    """A score row's value as stored: None for "not scored" (0 or nothing), else the whole number 1–5; anything
    else is a ValueError that says what a score may be."""
    if value is None or (not isinstance(value, bool) and value == 0):
        return None
    # The range first: infinity and NaN fail it before int() could raise on them.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 5 or \
            value != int(value):
        raise ValueError(f"an answer's score must be a whole number from 1 to 5 (0: not scored), got {value!r}")
    return int(value)


def scores_from_screen(left_side: str, left: float | None, right: float | None) -> tuple[int | None, int | None]:
    """The scores given to the answers on the left and right of the screen as the stored ``(score_a, score_b)``:
    the left answer is side ``left_side``. A bad score is a ValueError (see :func:`screen_score`)."""
    on_left, on_right = screen_score(left), screen_score(right)
    return (on_left, on_right) if left_side == "a" else (on_right, on_left)


def scores_on_screen(record: ComparisonRecord) -> list[int]:
    """A pair's stored scores as its score rows show them, [left, right] (0: not scored)."""
    left, right = (record.score_a, record.score_b) if record.left_side == "a" else (record.score_b, record.score_a)
    return [left or 0, right or 0]


Vote = tuple[str, str, str]
"""One vote this session cast, for its Undo: (batch id, pair id, the vote's ``voted_at`` as stored)."""


def cast(ctx: RateContext, batch_id: str | None, current_id: str | None, choice: str, strength_value: float | None,
         why: str | None, typed_rater: str | None, left_score: float | None, right_score: float | None,
         mine: list[Vote] | None, request: gr.Request) -> list[Any]:
    """Save the vote ``choice`` (as seen on screen) on the pair ``current_id``, with the optional 1–5 scores of the
    answers on the left and right, and show the next pair. ``mine``: the votes this session cast before (its state).

    Outputs: ``show_pair``'s (the score rows back to "not scored"), then the last vote revealed (which model was on
    which side), the strength and reason boxes emptied, and ``mine`` with this vote added (for Undo). A pair that
    already has a vote (from another tab, or another rater a moment before) is not voted twice; a bad score is refused
    with a message and nothing is saved."""
    known(ctx, batch_id)
    record = ctx.store.get(current_id) if current_id else None
    if record is None or record.winner is not None:  # e.g. voted from another tab: move on, don't vote twice
        gr.Info("That pair already has a vote; here is the next one.")
        return show_pair(ctx, batch_id, None) + [gr.skip()] * 4
    try:
        score_a, score_b = scores_from_screen(record.left_side, left_score, right_score)
        saved = ctx.store.vote(record, winner_from_screen(record.left_side, choice),
                               int(strength_value or 0) or None, why or "", rater_name(typed_rater, request),
                               score_a=score_a, score_b=score_b, unrated_only=True)
    except AlreadyVoted:  # another rater's vote on this pair landed between the read above and this write
        gr.Info("That pair already has a vote; here is the next one.")
        return show_pair(ctx, batch_id, None) + [gr.skip()] * 4
    except (ValueError, StoreError) as error:
        raise gr.Error(f"The vote was not saved: {error}") from error
    return show_pair(ctx, batch_id, None) + [_reveal(saved), 0, "", [*(mine or []), (batch_id, saved.id,
                                                                                      saved.voted_at)]]


def rate_button(ctx: RateContext, choice: str, batch_id: str | None, current_id: str | None,
                strength_value: float | None, why: str | None, typed_rater: str | None, left_score: float | None,
                right_score: float | None, mine: list[Vote] | None, request: gr.Request) -> list[Any]:
    """A rating button (the /rate_left, /rate_right, /rate_tie and /rate_both_bad endpoints): ``cast`` for its own
    ``choice``; the two scores are optional (0: not scored)."""
    return cast(ctx, batch_id, current_id, choice, strength_value, why, typed_rater, left_score, right_score,
                mine, request)


def skip_pair(ctx: RateContext, batch_id: str | None, current_id: str | None) -> list[Any]:
    """Skip the pair on screen (the /rate_skip endpoint; *Rate skipped pairs* brings it back) and show the next."""
    known(ctx, batch_id)
    if current_id:
        ctx.store.skip(current_id)
    return show_pair(ctx, batch_id, None)


def undo_last(ctx: RateContext, batch_id: str | None, mine: list[Vote] | None) -> list[Any]:
    """Take back this session's last vote in the batch and show that pair again, with its strength, reason and answer
    scores (/rate_undo; pressed again, the vote before it). ``mine``: the votes this session cast (its state).

    Only a vote this session cast, and only while it is stored as it was cast: never another rater's (with twenty
    raters on a batch, the batch's latest vote is usually someone else's, and with ``--auth`` they all share one
    name, so neither the batch's order nor the rater name can tell whose a vote is). A vote of yours that was deleted
    or undone elsewhere since is left alone, and said so. Outputs: as ``cast``'s, ``mine`` without the vote."""
    known(ctx, batch_id)
    votes = list(mine or [])
    index = next((i for i in range(len(votes) - 1, -1, -1) if votes[i][0] == batch_id), None) if batch_id else None
    if index is None:
        gr.Info("You have no vote to undo in this batch.")
        return show_pair(ctx, batch_id, None) + ["", gr.skip(), gr.skip(), gr.skip()]
    _, pair_id, voted_at = votes.pop(index)
    previous = ctx.store.get(pair_id)
    if previous is None or not ctx.store.clear_vote(pair_id, voted_at):
        gr.Info("Your last vote here was deleted or undone elsewhere since; nothing was undone.")
        return show_pair(ctx, batch_id, None) + ["", gr.skip(), gr.skip(), votes]
    view = show_pair(ctx, batch_id, previous.id, redraw=True)
    view[-2:] = scores_on_screen(previous)  # the score rows as they were when the vote was cast
    return view + ["Vote undone: rate this pair again.", previous.strength or 0, previous.rationale, votes]


def stop_generating(ctx: RateContext, batch_id: str | None) -> None:
    """Stop the batch's generation (the pairs made so far stay, and can be rated); says so if it wasn't running."""
    if not batch_id or not ctx.runner.stop(batch_id):
        gr.Info("This batch is not generating.")


def resume_generating(ctx: RateContext, batch_id: str | None) -> None:
    """Generate the batch's missing pairs in the background; a batch that can't resume says why."""
    try:
        ctx.runner.resume(batch_id) if batch_id else None
    except ValueError as error:
        raise gr.Error(str(error)) from error


def requeue_skipped(ctx: RateContext, batch_id: str | None) -> list[Any]:
    """Put the batch's skipped pairs back in the queue and show the next pair (``show_pair``'s outputs)."""
    if batch_id:
        gr.Info(f"{ctx.store.unskip(batch_id)} skipped pair(s) are back in the queue.")
    return show_pair(ctx, batch_id, None)
