"""A side-by-side comparison: which model sits on which side (blind mode), both conversations, and one turn.

The Compare tab holds one :class:`Comparison` per browser session; this module owns its rules so the UI callbacks
stay thin. Models are named A and B as the user picked them; *left* and *right* are what the screen shows. In blind
mode a coin flip decides whether B is shown on the left, and the choice is recorded (``swapped``) so a vote can
later be attributed to the right model.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Iterator

from playground.catalog import CatalogEntry, resolve_choice
from playground.generation import GenerationParams, StreamUpdate, answer, stream_pair
from playground.loading import LoadOptions, ModelCache
from playground.prompting import Message, PromptFormat, PromptError


@dataclass
class Comparison:
    """Two models and their conversations, as shown on screen (left / right)."""

    model_a: str
    model_b: str
    blind: bool = False
    swapped: bool = False
    """True when model B is shown on the left."""
    left: list[Message] = field(default_factory=list)
    right: list[Message] = field(default_factory=list)
    revealed: bool = False
    """Blind mode only: the user asked to see which model is which."""

    @property
    def side_models(self) -> tuple[str, str]:
        """(left model, right model) as chosen in the dropdowns."""
        return (self.model_b, self.model_a) if self.swapped else (self.model_a, self.model_b)

    def labels(self) -> tuple[str, str]:
        """Pane titles: the model names, or "Model 1" / "Model 2" while blind and not revealed."""
        if self.blind and not self.revealed:
            return "Model 1", "Model 2"
        return self.side_models

    def last_prompt(self) -> str | None:
        """The user's last message, for Regenerate."""
        return self.left[-2]["content"] if len(self.left) >= 2 else None


def start(model_a: str, model_b: str, blind: bool, rng: random.Random | None = None) -> Comparison:
    """A fresh comparison; in blind mode the sides are shuffled."""
    swapped = blind and (rng or random.Random()).random() < 0.5
    return Comparison(model_a=model_a, model_b=model_b, blind=blind, swapped=swapped)


def continue_or_start(current: Comparison | None, model_a: str, model_b: str, blind: bool) -> Comparison:
    """Keep the conversation when the models and mode are unchanged; otherwise start over (a new comparison)."""
    if current is not None and (current.model_a, current.model_b, current.blind) == (model_a, model_b, blind):
        return current
    return start(model_a, model_b, blind)


def drop_last_turn(comparison: Comparison) -> str | None:
    """Remove the last question and both answers (for Regenerate); return that question."""
    prompt = comparison.last_prompt()
    if prompt is not None:
        del comparison.left[-2:]
        del comparison.right[-2:]
    return prompt


def run_turn(
    comparison: Comparison,
    prompt: str,
    cache: ModelCache,
    entries: list[CatalogEntry],
    formats: tuple[PromptFormat, PromptFormat],
    system: str,
    params: GenerationParams,
    options: LoadOptions,
    stop: threading.Event,
) -> Iterator[tuple[StreamUpdate, StreamUpdate]]:
    """Send ``prompt`` to both models at once; keep each side's partial answer in its conversation as it streams.

    ``formats`` are per model (A, B), whatever side each model is shown on.
    """
    if not prompt.strip():
        raise PromptError("The prompt is empty: type something to send.")
    jobs = []
    for index, (choice, history) in enumerate(zip(comparison.side_models, (comparison.left, comparison.right))):
        fmt = formats[index ^ comparison.swapped]  # side 0 shows model B (index 1) when swapped
        messages = history + [{"role": "user", "content": prompt}]
        history.extend([{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}])

        def job(stop: threading.Event, choice: str = choice, messages: list[Message] = messages,
                fmt: PromptFormat = fmt) -> Iterator[StreamUpdate]:
            spec = resolve_choice(choice, entries)
            return answer(cache, spec, options, messages, fmt, system, params, stop)

        jobs.append(job)
    for left, right in stream_pair(jobs[0], jobs[1], stop):
        comparison.left[-1]["content"] = left.text
        comparison.right[-1]["content"] = right.text
        yield left, right
