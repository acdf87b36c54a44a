"""Batch rating: generating every model pair on every prompt in the background for the Rate tab.

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

from playground.models.catalog import CatalogEntry, ModelSpec, resolve_choice
from playground.models.generation import GenerationParams, StreamUpdate, answer
from playground.models.loading import LoadOptions, ModelCache, shared_backend
from playground.ratings.comparison import side_from_answer
from playground.ratings.store import Batch, ComparisonRecord, Store


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
