"""Compare tab: one prompt, two models answering at the same time, side by side, with stats and exact prompts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import gradio as gr

from playground.core.settings import Settings
from playground.core.verbatim import verbatim_html
from playground.models.catalog import CatalogEntry, CatalogError, list_models, resolve_choice
from playground.models.generation import GenerationParams, StreamUpdate
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import FORMAT_HELP, PromptError
from playground.ratings import comparison as cmp
from playground.ratings.comparison import load_examples
from playground.ratings.store import Store, StoreError
from playground.ui import endpoints_panel
from playground.ui.rater import bind, rater_name

INTRO = """
A **base** language model was trained only to predict the next token, so it *continues* your text.
An **instruction-tuned** model was then fine-tuned on many (instruction, answer) pairs across many tasks, so it
*answers* — the first step of the lecture (instruction fine-tuning), before RLHF. Send one prompt to both and watch
the difference. Blind mode hides the names and shuffles the sides, so you judge the answers, not the labels.
"""

DEFAULTS = GenerationParams()

BLIND_NOTE = ("**Blind mode**: the models are hidden until you vote or press **Reveal models**. Turn blind mode "
              "off to change them.")
HIDDEN_PROMPT = "(Hidden in blind mode until you vote or press Reveal models: the template tells the models apart.)"


class StopRegistry:
    """One stop flag per browser session, so the Stop button ends that session's answers and nobody else's."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            self._events[session] = event = threading.Event()
            return event

    def stop(self, session: str) -> None:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()


def model_choices(entries: list[CatalogEntry]) -> list[tuple[str, str]]:
    """Dropdown choices: (label with its note, label)."""
    return [(f"{e.label}  ·  {e.note}" if e.note else e.label, e.label) for e in entries]


def relist_models(settings: Settings, value: Any) -> dict[str, Any]:
    """A model box's choices read from the catalog again (an endpoint added under Compare's Endpoints since the
    page was built), keeping its value: Rate's box on page load, the judge's when its tab opens."""
    return gr.update(choices=model_choices(list_models(settings)), value=value)


def _pane_title(name: str, side: str) -> str:
    return f"### {side}: {name}"


Shown = tuple[StreamUpdate, StreamUpdate]
"""The last (left, right) snapshots of a turn, kept in a ``gr.State`` so a revealed blind comparison can be shown in
full (its loading lines, errors and exact prompts) without asking the models again."""


@dataclass
class CompareContext:
    """What every session's Compare callbacks share: the settings, the loaded models, the ratings store, the stop
    flags, and the model catalog as read when the page was built (the preparation lines look models up in it)."""

    settings: Settings
    cache: ModelCache
    store: Store
    entries: list[CatalogEntry]
    stops: StopRegistry = field(default_factory=StopRegistry)


def _names_hidden(comparison: cmp.Comparison | None, blind_on: bool) -> bool:
    """Whether blind mode hides the models now: from turning it on until the comparison's vote or Reveal."""
    return blind_on if comparison is None else comparison.blind and not comparison.revealed


def _blinded(update: StreamUpdate, label: str) -> StreamUpdate:
    """A pane's snapshot as blind mode may show it. Loading lines and errors name the model and the exact prompt
    text shows its template, so until the names are revealed they give way to neutral lines (Reveal shows them)."""
    return replace(update, status=f"preparing {label}…" if update.status else "",
                   stats=replace(update.stats, backend=""),  # "on llama.cpp" would name a packaged model
                   error=f"{label} failed. Press Reveal models to see why (the message names the model)."
                   if update.error else update.error,
                   prompt_text=HIDDEN_PROMPT if update.prompt_text else "")


READY_SHOWN_SECONDS = 5.0


def preparation_line(cache: ModelCache, entries: list[CatalogEntry], choice: str, dtype: str, quant: str,
                     label: str | None = None) -> str:
    """The line a pane shows about its model's preparation: in progress (step, percentage, ETA), failed, or ready
    for a few seconds after; empty when it isn't being prepared. ``label`` stands in for the name (blind mode)."""
    try:
        spec = resolve_choice(choice, entries)
        item = cache.board.get(cache.key(spec, LoadOptions(dtype=dtype, quant=quant)))
    except (CatalogError, ValueError):
        return ""
    if item is None or (item.finished is not None and time.monotonic() - item.finished > READY_SHOWN_SECONDS):
        return ""
    return item.describe(label)


def _pickers(hidden: bool) -> list[Any]:
    """The model pickers' row and the blind-mode note that stands in for it while the models are hidden."""
    return [gr.update(visible=not hidden), gr.update(visible=hidden)]


def _pane_stats(update: StreamUpdate) -> str:
    if update.error:
        return f"**Error:** {update.error}"
    if update.status:
        return update.status
    return update.stats.summary()


def _chat(history: list[dict[str, str]], update: StreamUpdate) -> list[dict[str, str]]:
    """The conversation to show, every message verbatim (playground.core.verbatim); errors appear as the answer, so
    the user sees them where they looked. An answer not started yet stays empty (the chat shows it pending)."""
    shown = [dict(m) for m in history]
    if update.error and shown and not shown[-1]["content"]:
        shown[-1]["content"] = f"Error: {update.error}"
    for message in shown:
        message["content"] = verbatim_html(message["content"]) if message["content"] else ""
    return shown


def _pane(side: str, model: str) -> tuple[gr.Markdown, gr.Markdown, gr.Chatbot, gr.Markdown, gr.Code]:
    """One answer pane: title, what its model's preparation is doing, conversation, stats line, and (folded) the
    exact text the model received."""
    with gr.Column():
        title = gr.Markdown(_pane_title(model, side), elem_classes="pane-title")
        preparing = gr.Markdown("", elem_classes="pane-stats", elem_id=f"prep-{side.lower()}")
        # Messages arrive as escaped HTML (_chat): no Markdown, no LaTeX. No copy button: it would copy that HTML.
        chat = gr.Chatbot(label=f"{side} answer", height=420, buttons=[], render_markdown=False,
                          latex_delimiters=[])
        stats = gr.Markdown("", elem_classes="pane-stats", elem_id=f"stats-{side.lower()}")
        with gr.Accordion(f"Exact text the {side.lower()} model received", open=False):
            sent = gr.Code(language=None, label="Prompt text (after template and truncation)")
    return title, preparing, chat, stats, sent


# Plain labels: emoji need an emoji font, and render as empty boxes where the browser has none.
VOTES = (("left", "Left is better"), ("right", "Right is better"), ("tie", "Tie"), ("both_bad", "Both are bad"))


def _vote_note(record: Any, names: tuple[str, str]) -> str:
    what = {"tie": "a tie", "both_bad": "both bad"}.get(record.winner)
    if what is None:
        left_won = record.winner == record.left_side
        what = f"{'Left' if left_won else 'Right'} ({names[0] if left_won else names[1]}) is better"
    strength = f" · strength {record.strength}" if record.strength else ""
    return (f"Saved as **{what}**{strength} (rater: {record.rater}). Click another button to change it; the next "
            f"prompt starts a new comparison.")


def build(settings: Settings, cache: ModelCache, store: Store, rater: gr.Textbox) -> None:
    """Lay out the Compare tab and wire its events (layout first, events at the end)."""
    ctx = CompareContext(settings, cache, store, list_models(settings))
    examples = load_examples()
    state = gr.State(None)  # the session's Comparison
    shown = gr.State(None)  # the last Shown snapshots, to show in full once a blind comparison is revealed

    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    choices = model_choices(ctx.entries)
    with gr.Row() as pickers:
        with gr.Column():
            model_a = gr.Dropdown(choices, value=settings.model_a, label="Model A", allow_custom_value=True,
                                  info="Pick, or type a hub id, a model folder or a LoRA adapter folder.")
            format_a = gr.Dropdown(list(FORMAT_HELP), value="auto", label="Prompt format (A)",
                                   info="; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
        with gr.Column():
            model_b = gr.Dropdown(choices, value=settings.model_b, label="Model B", allow_custom_value=True,
                                  info="Pick, or type a hub id, a model folder or a LoRA adapter folder.")
            format_b = gr.Dropdown(list(FORMAT_HELP), value="auto", label="Prompt format (B)")
    with gr.Row(visible=False) as blind_note:  # a Row: its visibility is no API output, unlike a Markdown's value
        gr.Markdown(BLIND_NOTE)
    with gr.Row():
        blind = gr.Checkbox(False, label="Blind mode (hide names, shuffle sides)")
        reveal = gr.Button("Reveal models", size="sm", visible=False)
        refresh = gr.Button("Refresh model list", size="sm")
    with gr.Row(equal_height=True):
        title_left, prep_left, chat_left, stats_left, sent_left = _pane("Left", settings.model_a)
        title_right, prep_right, chat_right, stats_right, sent_right = _pane("Right", settings.model_b)
    ticker = gr.Timer(1.0)  # runs while models are being prepared; its first tick stops it when none are
    with gr.Group():
        with gr.Row(equal_height=True):
            vote_buttons = [gr.Button(label, interactive=False, elem_id=f"vote-{side}") for side, label in VOTES]
        with gr.Row():
            strength = gr.Slider(0, 5, 0, step=1, label="How much better? (optional)",
                                 info="0 = not said, 1 = slightly … 5 = far better")
            rationale = gr.Textbox(label="Why? (optional, one line)", max_length=300, scale=2)
    vote_note = gr.Markdown(LOCKED_NOTE, elem_id="vote-note")
    vote_side = gr.Radio([side for side, _ in VOTES], visible=False, label="Vote")  # the /vote API's argument
    vote_api = gr.Button(visible=False)
    # One line that grows to 8: Gradio sends a one-line Textbox on Enter and leaves Shift+Enter a new line (with
    # lines > 1 it is the other way round).
    prompt = gr.Textbox(label="Prompt", lines=1, max_lines=8, autofocus=True,
                        placeholder="Ask both models something… (Enter sends, Shift+Enter starts a new line)")
    with gr.Row():
        send = gr.Button("Send", variant="primary")
        stop = gr.Button("Stop", variant="stop")
        regenerate = gr.Button("Regenerate")
        clear = gr.Button("Clear")
    gr.Examples([[e["prompt"]] for e in examples], inputs=[prompt], example_labels=[e["task"] for e in examples],
                label="Example prompts (click to fill)")
    with gr.Accordion("System prompt", open=False):
        system = gr.Textbox(label="System prompt", lines=2, placeholder="Optional; sent to both models.")
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            temperature = gr.Slider(0, 2, DEFAULTS.temperature, step=0.05, label="Temperature",
                                    info="0 = greedy (always the most likely token)")
            top_p = gr.Slider(0.05, 1, DEFAULTS.top_p, step=0.05, label="Top-p")
            top_k = gr.Slider(0, 200, DEFAULTS.top_k, step=1, label="Top-k", info="0 = off")
        with gr.Row():
            max_new = gr.Slider(1, 1024, DEFAULTS.max_new_tokens, step=1, label="Max new tokens")
            repetition = gr.Slider(1, 2, DEFAULTS.repetition_penalty, step=0.05, label="Repetition penalty")
            seed = gr.Number(DEFAULTS.seed, precision=0, minimum=0, label="Seed",
                             info="Same seed + settings = same answer")
    with gr.Accordion("Loading", open=False):
        with gr.Row():
            dtype = gr.Dropdown(["auto", "float32", "bfloat16", "float16"], value="auto", label="Data type",
                                info="auto: a packaged model's own GGUF weights on llama.cpp (when installed); "
                                     "otherwise bfloat16 on a GPU, float32 on a CPU (transformers)")
            quant = gr.Radio(["none", "4bit"], value="none", label="Quantization",
                             info="4bit = NF4 via bitsandbytes (QLoRA's format); slower on a CPU")
            unload = gr.Button("Unload all models")
        loaded = gr.Markdown(cache.describe())
    endpoints_panel.build(settings, [model_a, model_b], lambda: model_choices(list_models(settings)))

    # ------------------------------------------------------------------------------------------ events

    panes = [title_left, title_right, chat_left, chat_right, stats_left, stats_right, sent_left, sent_right]
    generation = [model_a, model_b, format_a, format_b, system, temperature, top_p, top_k, max_new, repetition, seed,
                  blind, dtype, quant]
    outputs = [state, prompt] + panes + [loaded] + vote_buttons + [vote_note, shown, pickers, blind_note]
    # In the page an empty prompt is refused by a check of the Prompt box alone, which shows the message on the box
    # and leaves the panes as they were (an error raised by ``respond`` would flag every pane it updates). API
    # callers reach ``respond`` directly and get that message as an error.
    gate = dict(fn=accept_prompt, inputs=prompt, outputs=None, validator=prompt_given, api_visibility="private",
                show_progress="hidden", concurrency_limit=None)
    send.click(**gate).success(bind(respond, ctx), [state, prompt] + generation, outputs, api_name="compare")
    prompt.submit(**gate).success(bind(respond, ctx), [state, prompt] + generation, outputs,
                                  api_visibility="private")
    regenerate.click(bind(regenerate_last, ctx), [state] + generation, outputs, api_visibility="private").then(
        next_seed, seed, seed, api_visibility="private")

    vote_outputs = [state, title_left, title_right, vote_note]
    revealed_outputs = panes + [pickers, blind_note]
    for button, (side, _) in zip(vote_buttons, VOTES):
        button.click(bind(vote_button, ctx, side), [state, strength, rationale, rater], vote_outputs,
                     api_visibility="private", concurrency_limit=None) \
            .success(revealed_view, [state, shown, blind], revealed_outputs, api_visibility="private")
    vote_api.click(bind(cast_vote, ctx), [state, vote_side, strength, rationale, rater], vote_outputs, api_name="vote",
                   concurrency_limit=None)
    stop.click(bind(stop_answers, ctx), None, None, api_name="stop", queue=False)

    blank_outputs = panes + vote_buttons + [vote_note]
    clear.click(clear_all, [model_a, model_b, blind], [state, shown] + blank_outputs + [pickers, blind_note],
                api_name="clear",
                api_description="A new conversation; in blind mode it stays blind (the next prompt shuffles the sides "
                                "anew).")
    blind.change(toggle_blind, [blind, model_a, model_b], [reveal, state, shown] + blank_outputs
                 + [pickers, blind_note], api_visibility="private")
    reveal.click(reveal_names, [state, shown, blind], [state] + revealed_outputs, api_visibility="private")
    refresh.click(bind(rescan, ctx), [model_a, model_b], [model_a, model_b], api_visibility="private")
    ticker.tick(bind(preparing, ctx), [model_a, model_b, blind, dtype, quant], [prep_left, prep_right, ticker],
                api_visibility="private", show_progress="hidden", concurrency_limit=None)
    unload.click(bind(unload_all, ctx), None, loaded, api_name="unload")


# ---------------------------------------------------------------------------------------------- callbacks
# Module-level, over explicit state (the session's Comparison and Shown snapshots, the shared CompareContext), so a
# test can call them without a server. build() fixes the context with ``bind``; the parameters left are the event's
# inputs in order, and their names are the API's argument names.

PANE_COUNT = 8
"""Outputs of one view of the panes: two titles, two chats, two stats lines, two exact prompt texts."""
LOCKED_NOTE = "Vote once both answers are complete."


def show(comparison: cmp.Comparison, left: StreamUpdate, right: StreamUpdate) -> list[Any]:
    """The panes' PANE_COUNT outputs for one snapshot of both answers; while blind mode hides the names, the parts
    that would tell the models apart are replaced by neutral lines (``_blinded``)."""
    names = comparison.labels()
    if _names_hidden(comparison, comparison.blind):
        left, right = _blinded(left, names[0]), _blinded(right, names[1])
    return [
        _pane_title(names[0], "Left"), _pane_title(names[1], "Right"),
        _chat(comparison.left, left), _chat(comparison.right, right),
        _pane_stats(left), _pane_stats(right),
        left.prompt_text, right.prompt_text,
    ]


def prompt_given(text: str | None) -> dict[str, Any]:
    """Send's check in the page: an empty prompt is refused on the Prompt box, before anything runs."""
    return gr.validate(bool((text or "").strip()), "Type a prompt first; nothing was sent.")


def accept_prompt(text: str | None) -> None:
    """The step Send's check guards: nothing to do; ``respond`` follows only when the check passed."""


def respond(ctx: CompareContext, current: cmp.Comparison | None, text: str, a: str, b: str, fmt_a: str, fmt_b: str,
            system_text: str, temp: float, p: float, k: float, n: float, rep: float, seed_value: float | None,
            blind_on: bool, dtype_value: str, quant_value: str, request: gr.Request) -> Iterator[list[Any]]:
    """Send ``text`` to models ``a`` and ``b`` at once and stream both answers (the /compare endpoint).

    Each snapshot updates the session's Comparison, clears the prompt box and fills the panes, the loaded-models
    line, the locked vote buttons, the Shown state and the pickers' visibility; the last one again with the vote
    buttons unlocked when both answers are complete. Stop (``stop_answers``) ends this session's answers only."""
    if not (text or "").strip():
        raise gr.Error("Type a prompt first; nothing was sent.")
    try:
        params = GenerationParams(temperature=float(temp), top_p=float(p), top_k=int(k), max_new_tokens=int(n),
                                  repetition_penalty=float(rep), seed=int(seed_value or 0))
        options = LoadOptions(dtype=dtype_value, quant=quant_value)
    except (TypeError, ValueError) as error:
        raise gr.Error(str(error)) from error
    comparison = cmp.continue_or_start(current, a, b, blind_on)
    comparison.record = None
    event = ctx.stops.fresh(request.session_hash or "")
    entries = list_models(ctx.settings)
    formats, system = (fmt_a, fmt_b), system_text or ""
    turns = cmp.run_turn(comparison, text, ctx.cache, entries, formats, system, params, options, event)
    left = right = None
    try:
        for left, right in turns:
            yield turn_view(ctx, comparison, (left, right), blind_on, votable=False, note=LOCKED_NOTE)
    except PromptError as error:
        raise gr.Error(str(error)) from error
    if left is None or right is None:
        return
    complete = cmp.finish_turn(comparison, left, right, entries, formats, system, params)
    note = "Which answer is better?" if complete else \
        "Only complete answers can be voted on (one was stopped or failed)."
    yield turn_view(ctx, comparison, (left, right), blind_on, votable=complete, note=note)  # API callers get it whole


def turn_view(ctx: CompareContext, comparison: cmp.Comparison, snapshot: Shown, blind_on: bool, votable: bool,
              note: str) -> list[Any]:
    """``respond``'s outputs for one snapshot: the Comparison, an emptied prompt box, the panes, the loaded-models
    line, the vote buttons (unlocked when ``votable``) and their note, the snapshot (Shown) and the pickers."""
    return [comparison, ""] + show(comparison, *snapshot) + [ctx.cache.describe()] + \
        [gr.update(interactive=votable)] * len(VOTES) + [note, snapshot] + \
        _pickers(_names_hidden(comparison, blind_on))


def regenerate_last(ctx: CompareContext, current: cmp.Comparison | None, a: str, b: str, fmt_a: str, fmt_b: str,
                    system_text: str, temp: float, p: float, k: float, n: float, rep: float,
                    seed_value: float | None, blind_on: bool, dtype_value: str, quant_value: str,
                    request: gr.Request) -> Iterator[list[Any]]:
    """Ask the last prompt again with the next seed (so the answers differ, and stay reproducible), replacing the
    last turn; ``respond``'s outputs. The Seed box then shows that seed (``next_seed``)."""
    if current is None or current.last_prompt() is None:
        gr.Warning("Nothing to regenerate yet.")
        return
    last = cmp.drop_last_turn(current) or ""
    yield from respond(ctx, current, last, a, b, fmt_a, fmt_b, system_text, temp, p, k, n, rep,
                       next_seed(seed_value), blind_on, dtype_value, quant_value, request)


def next_seed(seed_value: float | None) -> int:
    """The seed Regenerate uses after ``seed_value`` (an empty box counts as 0), and then shows in the Seed box."""
    return int(seed_value or 0) + 1


def cast_vote(ctx: CompareContext, current: cmp.Comparison | None, side: str, strength_value: float | None,
              why: str | None, typed_rater: str | None, request: gr.Request) -> list[Any]:
    """Save the verdict on the last complete turn (the /vote endpoint); voting again changes it. Returns the
    Comparison, the pane titles (revealed if it was blind) and a note saying what was saved and under whose name."""
    try:
        record = cmp.vote(ctx.store, current, side, int(strength_value or 0) or None, why or "",
                          rater_name(typed_rater, request)) if current is not None else None
    except (ValueError, StoreError) as error:
        raise gr.Error(f"The vote was not saved: {error}") from error
    if current is None or record is None:
        raise gr.Error("Nothing to vote on yet: send a prompt and wait for both answers.")
    names = current.labels()
    return [current, _pane_title(names[0], "Left"), _pane_title(names[1], "Right"), _vote_note(record, names)]


def vote_button(ctx: CompareContext, side: str, current: cmp.Comparison | None, strength_value: float | None,
                why: str | None, typed_rater: str | None, request: gr.Request) -> list[Any]:
    """A vote button: ``cast_vote`` for its own ``side``."""
    return cast_vote(ctx, current, side, strength_value, why, typed_rater, request)


def revealed_view(current: cmp.Comparison | None, last: Shown | None, blind_on: bool) -> list[Any]:
    """A blind comparison once revealed (by Reveal or a vote): pane titles, the loading lines, errors and exact
    prompts blind mode hid, and the model pickers. Nothing changes for a comparison that wasn't blind."""
    if current is None or not current.blind:
        return [gr.skip()] * (PANE_COUNT + 2)
    names = current.labels()
    view = show(current, *last) if last else [_pane_title(names[0], "Left"), _pane_title(names[1], "Right")] \
        + [gr.skip()] * (PANE_COUNT - 2)
    return view + _pickers(_names_hidden(current, blind_on))


def stop_answers(ctx: CompareContext, request: gr.Request) -> None:
    """Stop this browser session's answers (the /stop endpoint); other sessions' answers go on."""
    ctx.stops.stop(request.session_hash or "")


def blank_panes(left: str, right: str) -> list[Any]:
    """Empty panes (titles, chats, stats, sent texts) under these titles, and locked vote buttons."""
    return [_pane_title(left, "Left"), _pane_title(right, "Right"), [], [], "", "", "", ""] + \
        [gr.update(interactive=False)] * len(VOTES) + [LOCKED_NOTE]


def clear_all(a: str, b: str, blind_on: bool = False) -> list[Any]:
    """A new conversation (the /clear endpoint); in blind mode it stays blind (the next prompt shuffles the sides
    anew). Outputs: no Comparison, no Shown, blank panes, and the pickers hidden while blind."""
    left, right = ("Model 1", "Model 2") if blind_on else (a, b)
    return [None, None] + blank_panes(left, right) + _pickers(blind_on)


def toggle_blind(blind_on: bool, a: str, b: str) -> list[Any]:
    """Blind mode turned on or off: the Reveal button shows with it, and a new conversation starts."""
    return [gr.update(visible=blind_on)] + clear_all(a, b, blind_on)


def reveal_names(current: cmp.Comparison | None, last: Shown | None, blind_on: bool) -> list[Any]:
    """Reveal: mark the comparison revealed and show what blind mode hid (``revealed_view``)."""
    if current is None:
        gr.Info("Nothing to reveal yet: send a prompt first.")
        return [current] + [gr.skip()] * (PANE_COUNT + 2)
    current.revealed = True
    return [current] + revealed_view(current, last, blind_on)


def rescan(ctx: CompareContext, a: str, b: str) -> list[Any]:
    """Read the model catalog again (new folders, downloads, adapters) and keep both picks."""
    choices = model_choices(list_models(ctx.settings))
    return [gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)]


def preparing(ctx: CompareContext, a: str, b: str, blind_on: bool, dtype_value: str, quant_value: str) -> list[Any]:
    """Each pane's line while its model is prepared (at start-up, before any Send): what it is doing, the
    percentage and the ETA; a few seconds of "ready" after; nothing once no preparation is running. The last output
    keeps the ticker running only while that is so."""
    lines = [preparation_line(ctx.cache, ctx.entries, choice, dtype_value, quant_value,
                              "one of the models" if blind_on else None) for choice in (a, b)]
    if blind_on:  # the sides are shuffled at each Send: a line per side would tell which model is where
        lines = [" / ".join(line for line in lines if line)] * 2
    busy = bool(ctx.cache.board.active()) or ctx.cache.board.finished_within(READY_SHOWN_SECONDS)
    return lines + [gr.Timer(active=busy)]


def unload_all(ctx: CompareContext) -> str:
    """Free every loaded model (the /unload endpoint); returns the loaded-models line."""
    dropped = ctx.cache.unload()
    gr.Info(f"Unloaded {dropped} model(s).")
    return ctx.cache.describe()
