"""The served model: one loaded model answering one request at a time, through the app's own prompt rendering and
generation stream, with OpenAI's stop strings and finish reasons on top.

Nothing here knows HTTP: :mod:`playground.serve.openai_api` turns requests into these calls and the pieces into
OpenAI's JSON.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterator, Literal

from playground.models.generation import GenerationParams, stream
from playground.models.loading import LoadedModel
from playground.models.prompting import Message, PromptFormat, RenderedPrompt, render

FinishReason = Literal["stop", "length"]

MAX_STOPS = 4
"""OpenAI's limit on stop strings per request."""

log = logging.getLogger(__name__)


class GenerationFailed(RuntimeError):
    """The model failed while answering (the message is generation's own: out of memory, an exception…)."""


class Cancelled(Exception):
    """The request was cancelled (its client went away) while it waited for the model."""


@dataclass
class Piece:
    """A piece of an answer: the text added since the previous piece; the last piece has ``finish_reason``."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def stop_hit(text: str, stops: list[str]) -> int:
    """Where the earliest stop string starts in ``text``, or -1."""
    found = [at for at in (text.find(s) for s in stops) if at >= 0]
    return min(found) if found else -1


def safe_length(text: str, stops: list[str]) -> int:
    """How much of ``text`` can be sent now: all but a tail that may still become a stop string (the longest tail
    that is a stop string's beginning) or an unfinished character (a byte token decodes to U+FFFD until its
    character's other bytes arrive)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if stop.startswith(text[-size:]):
                held = size
                break
    end = len(text) - held
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    return end


class ServedModel:
    """A loaded model behind the server. Answers one request at a time (a lock): two generations on one model
    would share its llama.cpp context or halve each other's speed, and OpenAI clients retry or queue anyway."""

    def __init__(self, loaded: LoadedModel, name: str, prompt_format: PromptFormat = "auto") -> None:
        self.loaded = loaded
        self.name = name
        """The model's id in the API (``/v1/models``, and what a request names)."""
        self.prompt_format = prompt_format
        self.lock = threading.Lock()

    def chat_prompt(self, messages: list[Message], system: str = "") -> RenderedPrompt:
        """A conversation rendered as the app's panes render it: the "auto" format is the chat template for an
        instruction-tuned model, plain text for a base one, and a tuned adapter's training format when its run
        recorded one. Raises PromptError with the app's message for a conversation that can't be rendered."""
        fmt = self.prompt_format
        if fmt == "auto" and self.loaded.spec.trained_format:
            fmt = self.loaded.spec.trained_format
        return render(messages, fmt, self.loaded.kind, self.loaded.tokenizer, system)

    @staticmethod
    def text_prompt(text: str) -> RenderedPrompt:
        """A completion prompt: the text exactly as given, after the tokenizer's BOS (as the app's plain format)."""
        return RenderedPrompt(text, "plain", add_special_tokens=True)

    def generate(self, prompt: RenderedPrompt, params: GenerationParams, stops: list[str],
                 cancel: threading.Event) -> Iterator[Piece]:
        """Stream the answer to ``prompt`` as pieces, holding back text that may still become a stop string.

        Waits for the model while another request has it (raising Cancelled if ``cancel`` is set meanwhile).
        Setting ``cancel`` ends the answer after the current token. The answer ends at the model's end token
        ("stop"), at a stop string, which is left out ("stop"), or at ``params.max_new_tokens`` ("length").

        OpenAI's stop strings are applied here because the app's generation has none: its stream is stopped (the
        same event as a cancel) as soon as the decoded text contains one.
        """
        while not self.lock.acquire(timeout=0.2):
            if cancel.is_set():
                raise Cancelled()
        try:
            yield from self._generate(prompt, params, [s for s in stops if s], cancel)
        finally:
            self.lock.release()

    def _generate(self, prompt: RenderedPrompt, params: GenerationParams, stops: list[str],
                  cancel: threading.Event) -> Iterator[Piece]:
        sent = ""
        updates = stream(self.loaded, prompt, params, cancel)
        for update in updates:
            if update.error:
                raise GenerationFailed(update.error)
            text, stats = update.text, update.stats
            # An unfinished character at the end may still become another one: no stop is looked for in it.
            at = stop_hit(text if update.done else text.rstrip("\ufffd"), stops)
            if at >= 0:
                written = stats.new_tokens  # the stats object goes on counting while the stream winds down
                cancel.set()
                for _ in updates:  # the stream ends after its current token; the lock is held until it has
                    pass
                yield Piece(text[len(sent):at] if text.startswith(sent) else "", "stop", stats.prompt_tokens, written)
                return
            if update.done:
                if stats.finish_reason == "stopped":
                    log.info("%s: the request was cancelled (its client went away); stopped after %d tokens",
                             self.name, stats.new_tokens)
                yield Piece(text[len(sent):] if text.startswith(sent) else "",
                            "length" if stats.finish_reason == "length" else "stop", stats.prompt_tokens,
                            stats.new_tokens)
                return
            ready = text[:safe_length(text, stops)]
            if len(ready) > len(sent) and ready.startswith(sent):
                yield Piece(ready[len(sent):])
                sent = ready
