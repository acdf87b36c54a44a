"""Compare tab: one prompt, two models answering at the same time, side by side, with stats and exact prompts."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from playground import comparison as cmp
from playground.catalog import CatalogEntry, list_models
from playground.generation import GenerationParams, StreamUpdate
from playground.loading import LoadOptions, ModelCache
from playground.prompting import FORMAT_HELP, PromptError
from playground.settings import Settings

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "assets" / "datasets" / "example_prompts.jsonl"

INTRO = """
A **base** language model was trained only to predict the next token, so it *continues* your text.
An **instruction-tuned** model was then fine-tuned on many (instruction, answer) pairs across many tasks, so it
*answers* — the first step of the lecture (instruction fine-tuning), before RLHF. Send one prompt to both and watch
the difference. Blind mode hides the names and shuffles the sides, so you judge the answers, not the labels.
"""

DEFAULTS = GenerationParams()


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


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict[str, str]]:
    """Example prompts (task label + prompt), one JSON object per line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _choices(entries: list[CatalogEntry]) -> list[tuple[str, str]]:
    return [(f"{e.label}  ·  {e.note}" if e.note else e.label, e.label) for e in entries]


def _pane_title(name: str, side: str) -> str:
    return f"### {side}: {name}"


def _pane_stats(update: StreamUpdate) -> str:
    if update.error:
        return f"⚠️ {update.error}"
    if update.status:
        return f"⏳ {update.status}"
    return update.stats.summary()


def _chat(history: list[dict[str, str]], update: StreamUpdate) -> list[dict[str, str]]:
    """The conversation to show: errors appear as the answer, so the user sees them where they looked."""
    shown = [dict(m) for m in history]
    if update.error and shown and not shown[-1]["content"]:
        shown[-1]["content"] = f"⚠️ {update.error}"
    return shown


def _pane(side: str, model: str) -> tuple[gr.Markdown, gr.Chatbot, gr.Markdown, gr.Code]:
    """One answer pane: title, conversation, stats line, and (folded) the exact text the model received."""
    with gr.Column():
        title = gr.Markdown(_pane_title(model, side), elem_classes="pane-title")
        chat = gr.Chatbot(label=f"{side} answer", height=420, buttons=["copy"])
        stats = gr.Markdown("", elem_classes="pane-stats", elem_id=f"stats-{side.lower()}")
        with gr.Accordion(f"Exact text the {side.lower()} model received", open=False):
            sent = gr.Code(language=None, label="Prompt text (after template and truncation)")
    return title, chat, stats, sent


def build(settings: Settings, cache: ModelCache) -> None:
    """Lay out the Compare tab and wire its events (layout first, events at the end)."""
    stops = StopRegistry()
    entries = list_models(settings)
    examples = load_examples()
    state = gr.State(None)  # the session's Comparison

    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            model_a = gr.Dropdown(_choices(entries), value=settings.model_a, label="Model A", allow_custom_value=True,
                                  info="Pick, or type a hub id, a model folder or a LoRA adapter folder.")
            format_a = gr.Dropdown(list(FORMAT_HELP), value="auto", label="Prompt format (A)",
                                   info="; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
        with gr.Column():
            model_b = gr.Dropdown(_choices(entries), value=settings.model_b, label="Model B", allow_custom_value=True,
                                  info="Pick, or type a hub id, a model folder or a LoRA adapter folder.")
            format_b = gr.Dropdown(list(FORMAT_HELP), value="auto", label="Prompt format (B)")
    with gr.Row():
        blind = gr.Checkbox(False, label="Blind mode (hide names, shuffle sides)")
        reveal = gr.Button("Reveal models", size="sm", visible=False)
        refresh = gr.Button("Refresh model list", size="sm")
    with gr.Row(equal_height=True):
        title_left, chat_left, stats_left, sent_left = _pane("Left", settings.model_a)
        title_right, chat_right, stats_right, sent_right = _pane("Right", settings.model_b)
    prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Ask both models something… (Enter sends)",
                        autofocus=True)
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
                                info="auto: bfloat16 on a GPU, float32 on a CPU")
            quant = gr.Radio(["none", "4bit"], value="none", label="Quantization",
                             info="4bit = NF4 via bitsandbytes (QLoRA's format); slower on a CPU")
            unload = gr.Button("Unload all models")
        loaded = gr.Markdown(cache.describe())

    # ------------------------------------------------------------------------------------------ events

    panes = [title_left, title_right, chat_left, chat_right, stats_left, stats_right, sent_left, sent_right]

    def show(comparison: cmp.Comparison, left: StreamUpdate, right: StreamUpdate) -> list[Any]:
        names = comparison.labels()
        return [
            _pane_title(names[0], "Left"), _pane_title(names[1], "Right"),
            _chat(comparison.left, left), _chat(comparison.right, right),
            _pane_stats(left), _pane_stats(right),
            left.prompt_text, right.prompt_text,
        ]

    def respond(current, text, a, b, fmt_a, fmt_b, system_text, temp, p, k, n, rep, seed_value, blind_on,
                dtype_value, quant_value, request: gr.Request) -> Iterator[list[Any]]:
        if not (text or "").strip():
            gr.Warning("Type a prompt first; nothing was sent.")
            return
        try:
            params = GenerationParams(temperature=float(temp), top_p=float(p), top_k=int(k), max_new_tokens=int(n),
                                      repetition_penalty=float(rep), seed=int(seed_value or 0))
            options = LoadOptions(dtype=dtype_value, quant=quant_value)
        except (TypeError, ValueError) as error:
            raise gr.Error(str(error)) from error
        comparison = cmp.continue_or_start(current, a, b, blind_on)
        event = stops.fresh(request.session_hash or "")
        turns = cmp.run_turn(comparison, text, cache, list_models(settings), (fmt_a, fmt_b), system_text or "",
                             params, options, event)
        try:
            for left, right in turns:
                yield [comparison, ""] + show(comparison, left, right) + [cache.describe()]
        except PromptError as error:
            raise gr.Error(str(error)) from error

    inputs = [state, prompt, model_a, model_b, format_a, format_b, system, temperature, top_p, top_k, max_new,
              repetition, seed, blind, dtype, quant]
    outputs = [state, prompt] + panes + [loaded]
    send.click(respond, inputs, outputs, api_name="compare")
    prompt.submit(respond, inputs, outputs, api_visibility="private")

    def regenerate_last(current, *rest: Any, request: gr.Request) -> Iterator[list[Any]]:
        if current is None or current.last_prompt() is None:
            gr.Warning("Nothing to regenerate yet.")
            return
        last = cmp.drop_last_turn(current)
        args = list(rest)
        args[10] = int(args[10] or 0) + 1  # a new seed, so the new answers differ (and stay reproducible)
        yield from respond(current, last, *args, request=request)

    regenerate.click(regenerate_last, [state] + inputs[2:], outputs, api_visibility="private").then(
        lambda s: s + 1 if s is not None else 0, seed, seed, api_visibility="private")

    def stop_answers(request: gr.Request) -> None:
        stops.stop(request.session_hash or "")

    stop.click(stop_answers, None, None, api_name="stop", queue=False)

    def blank_panes(left: str, right: str) -> list[Any]:
        """Empty panes (titles, chats, stats, sent texts) under these titles."""
        return [_pane_title(left, "Left"), _pane_title(right, "Right"), [], [], "", "", "", ""]

    def clear_all(a: str, b: str) -> list[Any]:
        return [None] + blank_panes(a, b)

    clear.click(clear_all, [model_a, model_b], [state] + panes, api_name="clear")

    def toggle_blind(blind_on: bool, a: str, b: str) -> list[Any]:
        left, right = ("Model 1", "Model 2") if blind_on else (a, b)
        return [None, gr.update(visible=blind_on)] + blank_panes(left, right)

    blind.change(toggle_blind, [blind, model_a, model_b], [state, reveal] + panes, api_visibility="private")

    def reveal_names(current: cmp.Comparison | None) -> list[Any]:
        if current is None:
            gr.Info("Nothing to reveal yet: send a prompt first.")
            return [current, gr.skip(), gr.skip()]
        current.revealed = True
        names = current.labels()
        return [current, _pane_title(names[0], "Left"), _pane_title(names[1], "Right")]

    reveal.click(reveal_names, state, [state, title_left, title_right], api_visibility="private")

    def rescan(a: str, b: str) -> list[Any]:
        choices = _choices(list_models(settings))
        return [gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)]

    refresh.click(rescan, [model_a, model_b], [model_a, model_b], api_visibility="private")

    def unload_all() -> str:
        dropped = cache.unload()
        gr.Info(f"Unloaded {dropped} model(s).")
        return cache.describe()

    unload.click(unload_all, None, loaded, api_name="unload")
