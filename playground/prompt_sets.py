"""Prompts for PPO to answer: the bundled Rate-tab prompts, the prompts of a training dataset, or a prompt file.

PPO needs only prompts — the policy writes the answers and the reward model judges them — so any source of
instructions serves: ``prompts`` (the 60 bundled prompts over 15 kinds of task that the Rate tab uses), a training
dataset by name (``instructions`` or an upload from the Data tab: its answers are ignored), or the path of a prompt
file (.jsonl/.csv/.parquet with a ``prompt`` column — text or TRL conversational messages — or .txt with one
prompt per line, read exactly as the Rate tab reads it: :func:`playground.batch.load_prompt_set`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playground import batch, datasets
from playground.prompting import Message
from playground.settings import Settings

BUNDLED = "prompts"


class PromptError(ValueError):
    """A prompt source that can't be used; the message says which and why."""


@dataclass(frozen=True)
class Prompt:
    """One prompt: the conversation so far (ending with the user's turn) and an optional system prompt."""

    messages: list[Message] = field(default_factory=list)
    system: str = ""


def list_prompt_sets(settings: Settings | None) -> list[str]:
    """Names the PPO form offers: the bundled prompts first, then every training dataset."""
    return [BUNDLED] + [d.name for d in datasets.list_datasets(settings) if d.purpose == "training"]


def _from_prompt_file(path: Path) -> list[Prompt]:
    return [Prompt([{"role": "user", "content": item["prompt"]}], item.get("system", ""))
            for item in batch.load_prompt_set(path)]


def load_prompts(name: str, settings: Settings | None) -> list[Prompt]:
    """The prompts of one source (see the module docstring). Raises :class:`PromptError` saying what is wrong."""
    text = (name or "").strip()
    if text == BUNDLED:
        return _from_prompt_file(batch.BUNDLED_PROMPTS)
    try:
        path = datasets.resolve(text, settings, for_training=True)
    except datasets.DatasetError as error:
        raise PromptError(f"{error} (or {BUNDLED!r}: the bundled prompts)") from error
    try:
        examples = datasets.load_examples(path)
    except datasets.DatasetError as dataset_error:  # not a training dataset: maybe a file of bare prompts
        try:
            return _from_prompt_file(path)
        except batch.PromptSetError as prompt_error:  # both reports: which one applies depends on what was meant
            raise PromptError(f"{path.name} is neither a prompt file nor a training dataset.\nAs a prompt file: "
                              f"{prompt_error}\nAs a training dataset: {dataset_error}") from dataset_error
    prompts = [Prompt(e.messages) for e in examples if e.messages]
    if not prompts:
        raise PromptError(f"{text!r} has no prompts (plain text rows have no instruction to answer).")
    return prompts


def load_all(names: list[str], settings: Settings | None, limit: int = 0) -> list[Prompt]:
    """Every prompt of ``names`` in order, at most ``limit`` when positive."""
    prompts = [p for name in names for p in load_prompts(name, settings)]
    return prompts[:limit] if limit > 0 else prompts
