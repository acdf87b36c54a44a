"""Batch rating: generating every model pair on every prompt in the background for the Rate tab.

Each model answers each prompt once; every pair of models on that prompt becomes one comparison in the store,
unrated, with a random side order (``left_side``), so the Rate tab can show pairs blind while the rest are still
generating. Generation goes prompt by prompt (all models on prompt 1, then prompt 2 …) so the first pairs are
ready to rate within seconds. The store holds the batch's prompts and settings, so a batch cut short by an app
restart resumes where it stopped.

A share of the pairs (:attr:`BatchSettings.repeat_share`, none by default here, 10 % from the Rate tab) is asked a
second time later in the queue with the sides swapped, unannounced, so :mod:`playground.ratings.reliability` can
measure how consistent a rater's votes are. :func:`queue_plan` decides which pairs and where, from the batch's id:
a resumed batch makes the same plan again. A repeat is written when the prompt it is queued after is generated,
never with its original: the rating queue (:meth:`playground.ratings.store.Store.next_unrated`) takes the lowest
position among the pairs that exist, so a repeat written early would reach a rater who keeps up with generation
straight after its original.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from playground.core.one_at_a_time import OneAtATime
from playground.models.catalog import CatalogEntry, ModelSpec, resolve_choice
from playground.models.generation import GenerationParams, StreamUpdate, answer
from playground.models.loading import LoadOptions, ModelCache, shared_backend
from playground.ratings.comparison import side_from_answer
from playground.ratings.store import Batch, ComparisonRecord, Store, new_id, now

MAX_REPEAT_SHARE = 0.5
"""At most half the pairs are asked again: beyond that a batch is mostly repeats and they stop being unannounced."""


def pair_count(prompts: int, models: int) -> int:
    """How many comparisons a batch makes: every pair of models on every prompt (repeats not counted)."""
    return prompts * models * (models - 1) // 2


def check_repeat_share(share: float) -> float:
    """``share`` as a float, or ValueError saying the allowed range (0 = no repeats, up to 50 %)."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= MAX_REPEAT_SHARE:
        given = f"{share:.0%}" if isinstance(share, (int, float)) and not isinstance(share, bool) else repr(share)
        raise ValueError(f"The share of pairs to repeat must be from 0 to {MAX_REPEAT_SHARE:.0%} (0 = no repeats), "
                         f"got {given}.")
    return float(share)


def repeat_count(prompts: int, per_prompt: int, share: float) -> int:
    """How many pairs a batch of ``prompts`` × ``per_prompt`` pairs (model pairs per prompt) asks a second time:
    ``share`` of them, to the nearest whole pair, at most as many as have a whole other prompt after theirs (a
    repeat never follows its original straight away, so a batch of one prompt has none)."""
    eligible = max(prompts - 1, 0) * per_prompt
    return min(math.floor(prompts * per_prompt * check_repeat_share(share) + 0.5), eligible)


@dataclass(frozen=True)
class QueuePlan:
    """Where each pair of a batch sits in the rating queue (its ``position``), repeats included."""

    originals: list[int]
    """Queue position of original pair k (k = prompt index × pairs per prompt + the model pair's index)."""
    repeats: dict[int, int]
    """Original pair k → the queue position of its repeat, for the pairs asked a second time."""

    @property
    def total(self) -> int:
        return len(self.originals) + len(self.repeats)

    def repeats_after(self, prompt: int, per_prompt: int) -> list[int]:
        """The originals whose repeats are queued straight after prompt ``prompt``'s pairs (before the next
        prompt's), in queue order: the generator writes them once that prompt is generated, so no repeat exists
        before every position below it does."""
        end = (prompt + 1) * per_prompt
        last = self.originals[end - 1]
        following = self.originals[end] if end < len(self.originals) else self.total
        return sorted((k for k, position in self.repeats.items() if last < position < following),
                      key=self.repeats.__getitem__)


def queue_plan(prompts: int, per_prompt: int, share: float, seed: str) -> QueuePlan:
    """The rating queue of a batch of ``prompts`` × ``per_prompt`` pairs with :func:`repeat_count` repeats.

    The repeated pairs are spread over the batch (one drawn from each equal stretch of it, so a rater who rates only
    the first part still meets some), and each repeat is queued after a later prompt's pairs: at least one whole
    other prompt comes between a pair and its repeat, and at most about a quarter of the batch. With no repeats the
    positions are the pairs' own order, as batches had before repeats existed. The same arguments always give the
    same plan (``seed`` is the batch id), so a resumed batch continues the same queue."""
    rng = random.Random(f"{seed}:repeats")  # its own generator: the side-order draws stay as they always were
    count = repeat_count(prompts, per_prompt, share)
    eligible = max(prompts - 1, 0) * per_prompt  # pairs with a whole prompt after theirs
    chosen = [rng.randrange(eligible * i // count, eligible * (i + 1) // count) for i in range(count)]
    reach = max(1, math.ceil(prompts / 4))
    after: dict[int, list[int]] = {}  # prompt index → the originals whose repeats are queued after its pairs
    for k in chosen:
        prompt = k // per_prompt
        after.setdefault(min(prompt + rng.randint(1, reach), prompts - 1), []).append(k)
    originals, repeats, position = [0] * (prompts * per_prompt), {}, 0
    for prompt in range(prompts):
        for k in range(prompt * per_prompt, (prompt + 1) * per_prompt):
            originals[k], position = position, position + 1
        for k in sorted(after.get(prompt, [])):
            repeats[k], position = position, position + 1
    return QueuePlan(originals, repeats)


@dataclass(frozen=True)
class BatchSettings:
    """How a batch generates (stored with it so it can resume)."""

    params: GenerationParams
    options: LoadOptions
    prompt_format: str = "auto"
    repeat_share: float = 0.0
    """Share of the pairs asked a second time later in the batch, sides swapped (0 = none; at most 0.5)."""

    def __post_init__(self) -> None:
        check_repeat_share(self.repeat_share)

    def to_dict(self) -> dict:
        return {"params": asdict(self.params), "options": asdict(self.options), "prompt_format": self.prompt_format,
                "repeat_share": self.repeat_share}

    @classmethod
    def from_dict(cls, data: dict) -> BatchSettings:
        """Settings as stored; a batch from before repeats existed has none."""
        return cls(GenerationParams(**data["params"]), LoadOptions(**data["options"]), data["prompt_format"],
                   data.get("repeat_share", 0.0))


class BatchRunner:
    """Generates rating batches in background threads (one at a time), so the UI stays usable meanwhile."""

    def __init__(self, store: Store, cache: ModelCache, entries: Callable[[], list[CatalogEntry]]) -> None:
        self.store = store
        self.cache = cache
        self.entries = entries
        self._jobs = OneAtATime("Another batch is still generating: stop it first, or wait until it is done.")
        for batch in store.batches():  # a batch left "generating" by a previous app process is not running
            if batch.status == "generating":
                store.set_batch_status(batch.id, "interrupted", "The app stopped while this batch was generating.")

    def running(self) -> str | None:
        """Id of the batch being generated now, if any."""
        return self._jobs.running()

    def start(self, name: str, prompts: Sequence[dict[str, str]], models: Sequence[str],
              settings: BatchSettings) -> Batch:
        """Create a batch and start generating it. Raises ValueError for fewer than two models or an unknown one.

        The batch's total counts its repeats (:attr:`BatchSettings.repeat_share`): each is one more pair to rate.
        While another batch is generating this is a ValueError and nothing is written: the check, the new batch and
        its thread are one step under the runner's lock, so two starts at once can't both pass."""
        models = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
        if len(models) < 2:
            raise ValueError("Pick at least two different models to compare.")
        entries = self.entries()
        for model in models:
            resolve_choice(model, entries)  # CatalogError (a ValueError) names the bad one before anything starts
        per_prompt = pair_count(1, len(models))
        total = len(prompts) * per_prompt + repeat_count(len(prompts), per_prompt, settings.repeat_share)
        with self._jobs.lock:
            self._jobs.refuse_if_running()
            batch = self.store.create_batch(name, models, total, prompts, settings.to_dict())
            self._launch(batch)
        return batch

    def resume(self, batch_id: str) -> None:
        """Continue generating a stopped or interrupted batch where it left off. ValueError (nothing changed) for a
        batch that doesn't exist, or while a batch is generating (checked and started under the runner's lock)."""
        batch = self.store.batch(batch_id)
        if batch is None:
            raise ValueError("That batch no longer exists.")
        with self._jobs.lock:
            self._jobs.refuse_if_running()
            self.store.set_batch_status(batch.id, "generating")
            self._launch(batch)

    def stop(self, batch_id: str) -> bool:
        """Ask the batch to stop generating (after the answer it is on); False when it isn't the one generating."""
        return self._jobs.stop(batch_id)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running batch (if any) ends (tests and benchmarks)."""
        self._jobs.wait(timeout)

    def _launch(self, batch: Batch) -> None:
        """Start generating ``batch`` in its thread; the caller holds the jobs' lock."""
        self._jobs.launch(batch.id, lambda stop: self._generate(batch, stop), name=f"batch-{batch.id[:8]}")

    def _generate(self, batch: Batch, stop: threading.Event) -> None:
        try:
            settings = BatchSettings.from_dict(batch.settings)
            done = self.store.batch_positions(batch.id)
            pairs = list(itertools.combinations(range(len(batch.models)), 2))
            plan = queue_plan(len(batch.prompts), len(pairs), settings.repeat_share, batch.id)
            rng = random.Random(batch.id)  # side order is reproducible for a batch, random across pairs
            entries = self.entries()  # scans the model folders: once per batch, not once per answer
            specs = [resolve_choice(model, entries) for model in batch.models]
            # A base and its adapters answer on the same backend, or the ratings compare backends too.
            settings = replace(settings, options=shared_backend(specs, settings.options))
            for index, item in enumerate(batch.prompts):
                sides = [rng.random() < 0.5 for _ in pairs]
                numbers = range(index * len(pairs), (index + 1) * len(pairs))  # the prompt's pairs, k in the plan
                # The repeats queued after this prompt's pairs: their originals are earlier prompts', already stored.
                later = [k for k in plan.repeats_after(index, len(pairs)) if plan.repeats[k] not in done]
                records = []
                if not all(plan.originals[k] in done for k in numbers):
                    # Every model gets the same seed on a prompt; the seed moves on with each prompt.
                    params = replace(settings.params, seed=settings.params.seed + index)
                    answers = [self._answer(spec, item, settings, params, stop) for spec in specs]
                    if stop.is_set():
                        self.store.set_batch_status(batch.id, "stopped", "Stopped by the user.")
                        return
                    records = [self._record(batch, item, settings, params, (answers[i], answers[j]),
                                            (specs[i], specs[j]), plan.originals[k], swap)
                               for (i, j), k, swap in zip(pairs, numbers, sides) if plan.originals[k] not in done]
                records += [repeat(self._original(batch.id, plan.originals[k]), plan.repeats[k]) for k in later]
                # A prompt's pairs and the repeats after them are one transaction: a stop or a crash never leaves a
                # gap below a repeat, and a resumed batch writes the missing ones in the same order.
                if records:
                    self.store.insert_many(records)
            self.store.set_batch_status(batch.id, "ready")
        except Exception as error:  # noqa: BLE001 - any failure is shown on the batch, the app keeps running
            self.store.set_batch_status(batch.id, "failed", str(error) or type(error).__name__)

    def _original(self, batch_id: str, position: int) -> ComparisonRecord:
        """The stored pair at ``position`` of the batch, to be asked again; RuntimeError (the batch fails, saying
        so) when it isn't there."""
        found = self.store.at_position(batch_id, position)
        if found is None:
            raise RuntimeError(f"The pair at position {position} of this batch is missing, so it can't be asked again.")
        return found

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


def repeat(original: ComparisonRecord, position: int) -> ComparisonRecord:
    """``original`` asked a second time at queue ``position``: a new unrated comparison with the same prompt and the
    same two answers (a and b unchanged), shown the other way round (``left_side`` flipped), ``repeat_of`` naming
    the original. Nothing the rater sees tells it apart from any other pair. The original may have its vote (or
    skip) already: none of it is copied."""
    return replace(original, id=new_id(), created_at=now(), updated_at=None, position=position,
                   repeat_of=original.id, left_side="a" if original.left_side == "b" else "b", winner=None,
                   strength=None, rationale="", rater="", voted_at=None, skipped=False, score_a=None, score_b=None,
                   deleted_at=None, judge_of=None, judgement=None)
