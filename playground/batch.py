"""Batch rating: prompt sets, and generating every model pair on every prompt in the background for the Rate tab.

Each model answers each prompt once; every pair of models on that prompt becomes one comparison in the store,
unrated, with a random side order (``left_side``), so the Rate tab can show pairs blind while the rest are still
generating. Generation goes prompt by prompt (all models on prompt 1, then prompt 2 …) so the first pairs are
ready to rate within seconds. The store holds the batch's prompts and settings, so a batch cut short by an app
restart resumes where it stopped.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from playground.catalog import CatalogEntry, ModelSpec, resolve_choice
from playground.comparison import side_from_answer
from playground.generation import GenerationParams, StreamUpdate, answer
from playground.loading import LoadOptions, ModelCache, shared_backend
from playground.row_files import (
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
from playground.store import Batch, ComparisonRecord, Store

BUNDLED_PROMPTS = Path(__file__).resolve().parents[1] / "assets" / "datasets" / "prompts.jsonl"
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


def pair_count(prompts: int, models: int) -> int:
    """How many comparisons a batch makes: every pair of models on every prompt."""
    return prompts * models * (models - 1) // 2


@dataclass(frozen=True)
class BatchSettings:
    """How a batch generates (stored with it so it can resume)."""

    params: GenerationParams
    options: LoadOptions
    prompt_format: str = "auto"

    def to_dict(self) -> dict:
        return {"params": asdict(self.params), "options": asdict(self.options), "prompt_format": self.prompt_format}

    @classmethod
    def from_dict(cls, data: dict) -> BatchSettings:
        return cls(GenerationParams(**data["params"]), LoadOptions(**data["options"]), data["prompt_format"])


class BatchRunner:
    """Generates rating batches in background threads (one at a time), so the UI stays usable meanwhile."""

    def __init__(self, store: Store, cache: ModelCache, entries: Callable[[], list[CatalogEntry]]) -> None:
        self.store = store
        self.cache = cache
        self.entries = entries
        self._lock = threading.Lock()
        self._running: tuple[str, threading.Thread, threading.Event] | None = None
        for batch in store.batches():  # a batch left "generating" by a previous app process is not running
            if batch.status == "generating":
                store.set_batch_status(batch.id, "interrupted", "The app stopped while this batch was generating.")

    def running(self) -> str | None:
        """Id of the batch being generated now, if any."""
        with self._lock:
            if self._running and self._running[1].is_alive():
                return self._running[0]
            return None

    def start(self, name: str, prompts: Sequence[dict[str, str]], models: Sequence[str],
              settings: BatchSettings) -> Batch:
        """Create a batch and start generating it. Raises ValueError for fewer than two models or an unknown one."""
        models = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
        if len(models) < 2:
            raise ValueError("Pick at least two different models to compare.")
        entries = self.entries()
        for model in models:
            resolve_choice(model, entries)  # CatalogError (a ValueError) names the bad one before anything starts
        if self.running():
            raise ValueError("Another batch is still generating: stop it first, or wait until it is done.")
        batch = self.store.create_batch(name, models, pair_count(len(prompts), len(models)), prompts,
                                        settings.to_dict())
        self._launch(batch)
        return batch

    def resume(self, batch_id: str) -> None:
        """Continue generating a stopped or interrupted batch where it left off."""
        batch = self.store.batch(batch_id)
        if batch is None:
            raise ValueError("That batch no longer exists.")
        if self.running():
            raise ValueError("Another batch is still generating: stop it first, or wait until it is done.")
        self.store.set_batch_status(batch.id, "generating")
        self._launch(batch)

    def stop(self, batch_id: str) -> bool:
        with self._lock:
            if self._running and self._running[0] == batch_id:
                self._running[2].set()
                return True
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running batch (if any) ends (tests and benchmarks)."""
        with self._lock:
            thread = self._running[1] if self._running else None
        if thread is not None:
            thread.join(timeout)

    def _launch(self, batch: Batch) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._generate, args=(batch, stop), name=f"batch-{batch.id[:8]}",
                                  daemon=True)
        with self._lock:
            self._running = (batch.id, thread, stop)
        thread.start()

    def _generate(self, batch: Batch, stop: threading.Event) -> None:
        try:
            settings = BatchSettings.from_dict(batch.settings)
            done = self.store.batch_positions(batch.id)
            pairs = list(itertools.combinations(range(len(batch.models)), 2))
            rng = random.Random(batch.id)  # side order is reproducible for a batch, random across pairs
            entries = self.entries()  # scans the model folders: once per batch, not once per answer
            specs = [resolve_choice(model, entries) for model in batch.models]
            # A base and its adapters answer on the same backend, or the ratings compare backends too.
            settings = replace(settings, options=shared_backend(specs, settings.options))
            for index, item in enumerate(batch.prompts):
                sides = [rng.random() < 0.5 for _ in pairs]
                positions = [index * len(pairs) + p for p in range(len(pairs))]
                if all(p in done for p in positions):
                    continue
                # Every model gets the same seed on a prompt; the seed moves on with each prompt.
                params = replace(settings.params, seed=settings.params.seed + index)
                answers = [self._answer(spec, item, settings, params, stop) for spec in specs]
                if stop.is_set():
                    self.store.set_batch_status(batch.id, "stopped", "Stopped by the user.")
                    return
                self.store.insert_many([
                    self._record(batch, item, settings, params, (answers[i], answers[j]), (specs[i], specs[j]),
                                 position, swap)
                    for (i, j), position, swap in zip(pairs, positions, sides) if position not in done])
            self.store.set_batch_status(batch.id, "ready")
        except Exception as error:  # noqa: BLE001 - any failure is shown on the batch, the app keeps running
            self.store.set_batch_status(batch.id, "failed", str(error) or type(error).__name__)

    def _answer(self, spec: ModelSpec, item: dict[str, str], settings: BatchSettings, params: GenerationParams,
                stop: threading.Event) -> StreamUpdate:
        messages = [{"role": "user", "content": item["prompt"]}]
        *_, last = answer(self.cache, spec, settings.options, messages, settings.prompt_format,
                          item.get("system", ""), params, stop)
        if last.error:
            raise RuntimeError(f"{spec.name}: {last.error}")
        return last

    def _record(self, batch: Batch, item: dict[str, str], settings: BatchSettings, params: GenerationParams,
                answers: tuple[StreamUpdate, StreamUpdate], specs: tuple[ModelSpec, ModelSpec], position: int,
                swap: bool) -> ComparisonRecord:
        a, b = (side_from_answer(spec, settings.prompt_format, params, update) for spec, update in zip(specs, answers))
        return ComparisonRecord(
            messages=[{"role": "user", "content": item["prompt"]}], system_prompt=item.get("system", ""), a=a, b=b,
            left_side="b" if swap else "a", blind=True, source="rate", batch_id=batch.id, position=position)
