"""Prompt sets: a file of prompts read whole (the Rate tab's batches), and the prompts PPO answers.

A prompt file is .jsonl/.json/.csv/.parquet with a ``prompt`` column (text, or TRL conversational messages: one user
message, optionally after a system message) or .txt with one prompt per line; :func:`load_prompt_set` reads it, or
refuses it whole with every bad row listed.

PPO needs only prompts — the policy writes the answers and the reward model judges them — so any source of
instructions serves: ``prompts`` (the 60 bundled prompts over 15 kinds of task that the Rate tab uses), a training
dataset by name (``instructions`` or an upload from the Data tab: its answers are ignored), or the path of a prompt
file, read exactly as the Rate tab reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.core.row_files import (
    EXTENSIONS,
    FileProblem,
    ImportLimits,
    Problems,
    RowProblem,
    counted,
    describe,
    message_list,
    read_lines,
    read_rows,
    require_text,
)
from playground.core.settings import Settings
from playground.data import instructions
from playground.models.prompting import Message

BUNDLED = "prompts"
BUNDLED_PROMPTS = Path(__file__).resolve().parents[2] / "assets" / "datasets" / "prompts.jsonl"
MAX_PROMPTS = 2000
MAX_PROMPT_CHARS = 20_000
MAX_LISTED = 10
"""Bad rows listed in full when a prompt set is refused (the Rate tab shows the report in a pop-up)."""


class PromptSetError(ValueError):
    """A prompt set file that can't be used; the message names the file, then each bad line or row and what is
    wrong."""


def load_prompt_set(path: Path, limits: ImportLimits | None = None) -> list[dict[str, str]]:
    """Read prompts from JSONL / JSON / Parquet (``prompt`` — text, or TRL conversational messages: one user
    message, optionally after a system message — and optional ``system``, ``id``, ``category``), CSV (a ``prompt``
    column) or plain text (one prompt per line). A set is used whole: any bad row raises :class:`PromptSetError`
    listing every bad line or row (the first ``MAX_LISTED``), each with the field and what is wrong."""
    path, limits = Path(path), limits or ImportLimits()
    suffix = path.suffix.lower()
    if suffix != ".txt" and suffix not in EXTENSIONS:
        raise PromptSetError(f"{path.name}: use a .jsonl, .csv, .parquet or .txt file (one prompt per line).")
    problems = Problems(min(limits.max_errors, MAX_LISTED))
    prompts: list[dict[str, str]] = []
    try:
        if suffix == ".txt":
            problems.unit = "line"
            rows = ((number, {"prompt": line}) for number, line in read_lines(path, limits))
        else:
            rows = read_rows(path, limits, problems, required=("prompt",))
        for number, row in rows:
            try:
                prompts.append(_prompt_item(row))
            except RowProblem as problem:
                problems.add(number, "" if suffix == ".txt" else problem.field,
                             f"the prompt {problem.reason}" if suffix == ".txt" else problem.reason)
    except FileProblem as problem:
        problems.add(problem.row, problem.field, problem.reason, problem.unit)
    if problems.count:
        raise PromptSetError(_report(path.name, problems))
    if not prompts:
        raise PromptSetError(f"{path.name} has no prompts.")
    if len(prompts) > MAX_PROMPTS:
        raise PromptSetError(f"{path.name} has {len(prompts):,} prompts; at most {MAX_PROMPTS:,} per batch.")
    return prompts


def _report(name: str, problems: Problems) -> str:
    """``set.jsonl: line 2, field 'prompt': is empty.``, or the file's name over one line per problem."""
    if problems.count == 1:
        return f"{name}: {problems.kept[0]}."
    lines = [f"{name} has {counted(problems.count, 'problem')} (a prompt set is used whole: fix them and retry):"]
    lines += [f"- {error}" for error in problems.kept]
    if problems.count > len(problems.kept):
        lines.append(f"… and {problems.count - len(problems.kept)} more.")
    return "\n".join(lines)


def _prompt_item(row: Any) -> dict[str, str]:
    """One row as a prompt-set item ``{"prompt", "system"?, "id"?, "category"?}``; a :class:`RowProblem` names the
    field and says what is wrong (missing, not text, empty, too long, not one user message)."""
    if not isinstance(row, dict):
        raise RowProblem("", f"expected an object like {{\"prompt\": \"…\"}}, got {describe(row)}")
    value = row.get("prompt")
    if value is None:
        raise RowProblem("prompt", f"missing{' (null)' if 'prompt' in row else ''}: each row needs a prompt, as "
                                   f"text or as chat messages [{{\"role\": \"user\", \"content\": …}}]")
    system = ""
    if isinstance(value, list):
        system, messages = message_list(value, "prompt")
        if [m["role"] for m in messages] != ["user"]:
            roles = ", ".join(m["role"] for m in messages) or ("only a system message" if value else "an empty list")
            raise RowProblem("prompt", f"expected one user message (optionally after a system message), got "
                                       f"{roles}: a prompt set holds single prompts, not conversations")
        value = messages[0]["content"]
    text = require_text(value, "prompt")
    if len(text) > MAX_PROMPT_CHARS:
        raise RowProblem("prompt", f"has {len(text):,} characters (at most {MAX_PROMPT_CHARS:,})")
    item = {"prompt": text.strip()}
    for key in ("system", "id", "category"):
        if (extra := row.get(key)) not in (None, ""):
            item[key] = require_text(extra, key, allow_empty=True)
    if system.strip():
        if item.get("system", system).strip() != system.strip():
            raise RowProblem("system", "differs from the system message inside the prompt")
        item["system"] = system
    return item


@dataclass(frozen=True)
class Prompt:
    """One prompt: the conversation so far (ending with the user's turn) and an optional system prompt."""

    messages: list[Message] = field(default_factory=list)
    system: str = ""


def list_prompt_sets(settings: Settings | None) -> list[str]:
    """Names the PPO form offers: the bundled prompts first, then every training dataset."""
    return [BUNDLED] + [d.name for d in instructions.list_datasets(settings) if d.purpose == "training"]


def _from_prompt_file(path: Path) -> list[Prompt]:
    return [Prompt([{"role": "user", "content": item["prompt"]}], item.get("system", ""))
            for item in load_prompt_set(path)]


def load_prompts(name: str, settings: Settings | None) -> list[Prompt]:
    """The prompts of one source (see the module docstring). Raises :class:`PromptSetError` saying what is wrong."""
    text = (name or "").strip()
    if text == BUNDLED:
        return _from_prompt_file(BUNDLED_PROMPTS)
    try:
        path = instructions.resolve(text, settings, for_training=True)
    except instructions.DatasetError as error:
        raise PromptSetError(f"{error} (or {BUNDLED!r}: the bundled prompts)") from error
    try:
        examples = instructions.load_examples(path)
    except instructions.DatasetError as dataset_error:  # not a training dataset: maybe a file of bare prompts
        try:
            return _from_prompt_file(path)
        except PromptSetError as prompt_error:  # both reports: which one applies depends on what was meant
            raise PromptSetError(f"{path.name} is neither a prompt file nor a training dataset.\nAs a prompt file: "
                              f"{prompt_error}\nAs a training dataset: {dataset_error}") from dataset_error
    prompts = [Prompt(e.messages) for e in examples if e.messages]
    if not prompts:
        raise PromptSetError(f"{text!r} has no prompts (plain text rows have no instruction to answer).")
    return prompts


def load_all(names: list[str], settings: Settings | None, limit: int = 0) -> list[Prompt]:
    """Every prompt of ``names`` in order, at most ``limit`` when positive."""
    prompts = [p for name in names for p in load_prompts(name, settings)]
    return prompts[:limit] if limit > 0 else prompts
