"""A side-by-side comparison: which model sits on which side (blind mode), both conversations, and one turn.

The Compare tab holds one :class:`Comparison` per browser session; this module owns its rules so the UI callbacks
stay thin. Models are named A and B as the user picked them; *left* and *right* are what the screen shows. In blind
mode a coin flip decides whether B is shown on the left, and the choice is recorded (``swapped``) so a vote can
later be attributed to the right model.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from playground.models.catalog import PACKAGED, CatalogEntry, CatalogError, ModelSpec, resolve_choice
from playground.models.generation import GenerationParams, StreamUpdate, answer, stream_pair
from playground.models.loading import LoadOptions, ModelCache, shared_backend
from playground.models.prompting import Message, PromptError, PromptFormat
from playground.ratings.store import ComparisonRecord, Side, Store, winner_from_screen

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "assets" / "datasets" / "example_prompts.jsonl"
VoteChoice = Literal["left", "right", "tie", "both_bad"]
COMPLETE = ("eos", "length")
"""Finish reasons of a complete answer; a stopped or failed answer can't be voted on."""


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict[str, str]]:
    """Example prompts (task label + prompt), one JSON object per line: Compare's examples, the Lecture's first."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
    """Blind mode only: the user asked to see which model is which (or voted, which reveals them)."""
    record: ComparisonRecord | None = None
    """The last turn, once both answers are complete: what a vote saves (voted again, the same record updates)."""

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
    resolved = []
    for choice in comparison.side_models:
        try:
            resolved.append(resolve_choice(choice, entries))
        except CatalogError:  # that pane says so when its job resolves it
            pass
    options = shared_backend(resolved, options)  # a base and its adapter run on the same backend
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


def side_from_answer(spec: ModelSpec, fmt: str, params: GenerationParams, update: StreamUpdate,
                     history: list[Message] | None = None) -> Side:
    """One side of a comparison record: the model, how it was prompted (the backend that ran it with the generation
    parameters), and how its answer went."""
    revision = PACKAGED[spec.source].version() if spec.source in PACKAGED else None
    settings = asdict(params) | ({"backend": update.stats.backend} if update.stats.backend else {})
    return Side(model=spec.source, adapter=spec.adapter, revision=revision, prompt_format=fmt, params=settings,
                response=update.text, prompt_tokens=update.stats.prompt_tokens,
                completion_tokens=update.stats.new_tokens, time_to_first_token=update.stats.time_to_first_token,
                tokens_per_second=update.stats.tokens_per_second, finish_reason=update.stats.finish_reason,
                history=history)


def finish_turn(comparison: Comparison, left: StreamUpdate, right: StreamUpdate, entries: list[CatalogEntry],
                formats: tuple[PromptFormat, PromptFormat], system: str, params: GenerationParams) -> bool:
    """After a turn: keep the record a vote would save when both answers are complete; say whether they are.

    The record's ``messages`` are model A's conversation up to the new question; model B's earlier turns are kept
    on its side only when they differ (a multi-turn chat where the two models answered differently).
    """
    comparison.record = None
    if not (left.done and right.done and left.stats.finish_reason in COMPLETE
            and right.stats.finish_reason in COMPLETE):
        return False
    by_side = {"left": (comparison.left, left), "right": (comparison.right, right)}
    a_side, b_side = ("right", "left") if comparison.swapped else ("left", "right")
    (a_history, a_update), (b_history, b_update) = by_side[a_side], by_side[b_side]
    messages = [dict(m) for m in a_history[:-1]]
    b_messages = [dict(m) for m in b_history[:-1]]
    comparison.record = ComparisonRecord(
        messages=messages, system_prompt=system, blind=comparison.blind, left_side="b" if comparison.swapped else "a",
        a=side_from_answer(resolve_choice(comparison.model_a, entries), formats[0], params, a_update, None),
        b=side_from_answer(resolve_choice(comparison.model_b, entries), formats[1], params, b_update,
                None if b_messages == messages else b_messages),
    )
    return True


def vote(store: Store, comparison: Comparison, choice: VoteChoice, strength: int | None = None,
         rationale: str = "", rater: str = "") -> ComparisonRecord:
    """Save the user's verdict on the last turn (left/right as seen on screen); voting again updates it.

    In blind mode the vote reveals the names. Raises ValueError when there is nothing complete to vote on.
    """
    if comparison.record is None:
        raise ValueError("Nothing to vote on yet: wait until both answers are complete.")
    winner = winner_from_screen(comparison.record.left_side, choice)
    comparison.record = store.vote(comparison.record, winner, strength, rationale, rater)
    comparison.revealed = True
    return comparison.record
