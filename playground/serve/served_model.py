"""The served model: one loaded model answering one request at a time, through the app's own prompt rendering and
generation stream, with OpenAI's stop strings and finish reasons on top.

Nothing here knows HTTP: :mod:`playground.serve.openai_api` turns requests into these calls and the pieces into
OpenAI's JSON.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from os.path import commonprefix
from typing import Iterator, Literal

from playground.models.generation import GenerationParams, StreamUpdate, stream
from playground.models.loading import LoadedModel
from playground.models.prompting import Message, PromptFormat, RenderedPrompt, model_format, render

FinishReason = Literal["stop", "length"]

MAX_STOPS = 4
"""OpenAI's limit on stop strings per request."""

REWRITTEN = (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're")
"""What transformers' ``clean_up_tokenization`` rewrites when a tokenizer decodes with
``clean_up_tokenization_spaces`` (the space goes: "Hello ." becomes "Hello."). A text ending in the start of one
("Hello ", "do n") may still change once the next token is decoded, so that tail waits like a stop string's start:
what was sent can't be taken back."""

log = logging.getLogger(__name__)


class GenerationFailed(RuntimeError):
    """The model failed while answering (the message is generation's own: out of memory, an exception…)."""


class Cancelled(Exception):
    """The request was cancelled (its client went away) while it waited for the model: nothing was generated."""


class ContextTooLong(ValueError):
    """The prompt and the answer asked for don't fit the model's context window (the message says by how much)."""


@dataclass
class Piece:
    """A piece of an answer: the text added since the previous piece; the last piece has ``finish_reason``."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answer: str = ""
    """The last piece only: the whole answer as the model wrote it (its final decoded text, cut at the stop string).
    The pieces add up to it unless decoding rewrote text already sent (see :func:`next_piece`)."""


def stop_hit(text: str, stops: list[str]) -> int:
    """Where the earliest stop string starts in ``text``, or -1."""
    found = [at for at in (text.find(s) for s in stops) if at >= 0]
    return min(found) if found else -1


def safe_length(text: str, stops: list[str]) -> int:
    """How much of ``text`` can be sent now: all but an unfinished character at the end (a byte token decodes to
    U+FFFD until its character's other bytes arrive) and, before it, a tail that may still become a stop string or
    be rewritten by the tokenizer's clean-up (the longest tail that is the beginning of one, :data:`REWRITTEN`)."""
    text = text.rstrip("\ufffd")
    held = 0
    for stop in (*stops, *REWRITTEN):
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if stop.startswith(text[-size:]):
                held = size
                break
    return len(text) - held


def next_piece(sent: str, ready: str) -> str:
    """The text to send after ``sent`` (what the client has) now that ``ready`` can be: what ``ready`` adds to it.

    Decoding the whole answer again after each token can rewrite text already sent in ways :func:`safe_length`
    doesn't foresee (another tokenizer's clean-up). The client can't un-send it, so the text after the common
    prefix is sent again with what's new: nothing the model wrote is dropped, at the cost of a repeated stretch."""
    if ready.startswith(sent):
        return ready[len(sent):]
    return ready[len(commonprefix([sent, ready])):]


def answer_pieces(updates: Iterator[StreamUpdate], stops: list[str], cancel: threading.Event,
                  name: str = "") -> Iterator[Piece]:
    """The pieces to send for generation's snapshots (the whole answer decoded again after each token).

    A snapshot's text is sent once it can't change (:func:`safe_length`); the answer ends at the first stop string
    (left out; ``cancel`` is set to end the generation, which is waited for) or at the last snapshot. The last
    piece carries the whole answer and the token counts; a generation error raises GenerationFailed.
    """
    sent = ""
    for update in updates:
        if update.error:
            raise GenerationFailed(update.error)
        text, stats = update.text, update.stats
        # An unfinished character at the end may still become another one: no stop is looked for in it.
        at = stop_hit(text if update.done else text.rstrip("\ufffd"), stops)
        if at >= 0:
            written = stats.new_tokens  # the stats object goes on counting while the stream winds down
            cancel.set()
            for _ in updates:  # the stream ends after its current token; the model is busy until it has
                pass
            yield Piece(next_piece(sent, text[:at]), "stop", stats.prompt_tokens, written, text[:at])
            return
        if update.done:
            if stats.finish_reason == "stopped":
                log.info("%s: the request was cancelled (its client went away); stopped after %d tokens",
                         name, stats.new_tokens)
            yield Piece(next_piece(sent, text), "length" if stats.finish_reason == "length" else "stop",
                        stats.prompt_tokens, stats.new_tokens, text)
            return
        ready = text[:safe_length(text, stops)]
        piece = next_piece(sent, ready)
        if piece:
            yield Piece(piece)
            sent = ready


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
        fmt = model_format(self.prompt_format, self.loaded.spec.trained_format)
        return render(messages, fmt, self.loaded.kind, self.loaded.tokenizer, system)

    @staticmethod
    def text_prompt(text: str) -> RenderedPrompt:
        """A completion prompt: the text exactly as given, after the tokenizer's BOS (as the app's plain format)."""
        return RenderedPrompt(text, "plain", add_special_tokens=True)

    def fit(self, prompt: RenderedPrompt, params: GenerationParams, max_tokens_given: bool) -> GenerationParams:
        """``params`` with an answer that fits the context window after ``prompt``, or ContextTooLong.

        The app's generation cuts a prompt's oldest tokens to make room; an API client must hear it instead, as
        OpenAI answers: a prompt and ``max_tokens`` over the context are refused. Without ``max_tokens`` the answer
        may use what the prompt leaves (up to the default), as OpenAI's does."""
        tokens = len(self.loaded.tokenizer(prompt.text, add_special_tokens=prompt.add_special_tokens)["input_ids"])
        context = self.loaded.context_length
        room = context - tokens
        if room >= params.max_new_tokens:
            return params
        if room >= 1 and not max_tokens_given:
            return replace(params, max_new_tokens=room)
        if max_tokens_given:
            asked = (f"{tokens + params.max_new_tokens} tokens ({tokens} in the prompt, {params.max_new_tokens} "
                     f"for the answer). Please shorten the prompt or lower max_tokens.")
        else:
            asked = f"{tokens} tokens in the prompt, which leaves no room for an answer. Please shorten the prompt."
        raise ContextTooLong(f"This model's maximum context length is {context} tokens. However, you requested "
                             f"{asked}")

    def generate(self, prompt: RenderedPrompt, params: GenerationParams, stops: list[str],
                 cancel: threading.Event) -> Iterator[Piece]:
        """Stream the answer to ``prompt`` as pieces, holding back text that may still become a stop string.

        Waits for the model while another request has it (raising Cancelled if ``cancel`` is set meanwhile).
        The prompt is expected to fit (:meth:`fit`): generation would cut its oldest tokens.
        Setting ``cancel`` ends the answer after the current token. The answer ends at the model's end token
        ("stop"), at a stop string, which is left out ("stop"), or at ``params.max_new_tokens`` ("length").

        OpenAI's stop strings are applied here because the app's generation has none: its stream is stopped (the
        same event as a cancel) as soon as the decoded text contains one.
        """
        while not self.lock.acquire(timeout=0.2):
            if cancel.is_set():
                log.info("%s: the request was cancelled (its client went away) while it waited for the model",
                         self.name)
                raise Cancelled("the request was cancelled while it waited for the model")
        try:
            updates = stream(self.loaded, prompt, params, cancel)
            yield from answer_pieces(updates, [s for s in stops if s], cancel, self.name)
        finally:
            self.lock.release()
