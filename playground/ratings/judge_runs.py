"""Judging in the background: an AI judge through a Rate batch, or through every comparison it hasn't judged yet
with its rubric.

Mirrors :mod:`playground.ratings.batch`: one run at a time, in a thread, so the app stays usable; stop and resume.
A run's own record — its judge, rubric, target and status — is a small JSON file in ``DATA_DIR/judge-runs/``
(written whole, :func:`playground.core.files.write_atomic`); its results are the judge's votes in the store. So a
run left ``judging`` when the app quit is marked ``interrupted`` on the next start, and resuming it skips every pair
the judge already voted on with the same rubric (:meth:`playground.ratings.store.Store.judged_by`; a vote deleted
since counts as judged): the progress is read from the votes, never counted separately. A judge asked again with
another rubric judges every pair again, the old rubric's votes kept.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from playground.core.files import write_atomic
from playground.core.one_at_a_time import OneAtATime
from playground.core.settings import Settings
from playground.models.catalog import CatalogEntry, resolve_choice
from playground.models.generation import GenerationParams
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings.judge import (
    JUDGE_PARAMS,
    LEFT_OUT,
    Judge,
    JudgeStopped,
    TooLong,
    judge_record,
    left_out_reason,
)
from playground.ratings.store import ComparisonRecord, Store, new_id, now

ALL = "all"
"""The target that means every comparison in the store (not deleted) the judge hasn't judged with its rubric."""

STATES = ("judging", "done", "stopped", "failed", "interrupted")


def runs_dir(settings: Settings) -> Path:
    """Where the judge runs' records live."""
    return settings.data_dir / "judge-runs"


@dataclass(frozen=True)
class JudgeRun:
    """One judging job: which judge, with which rubric, over which pairs, and how it stands."""

    id: str
    judge: dict[str, Any]
    """The :class:`~playground.ratings.judge.Judge` as a dict (its model spec, rubric, load options, decoding)."""
    target: str
    """``all``, or the id of the Rate batch whose pairs are judged."""
    target_name: str
    status: str
    """judging, done, stopped, failed, interrupted (the app quit while it was judging)."""
    created_at: str
    error: str = ""
    too_long: list[str] = field(default_factory=list)
    """Pairs the judge couldn't read whole (the rubric with them is longer than its context): left out."""

    @property
    def rater(self) -> str:
        return Judge.from_dict(self.judge).rater

    @property
    def label(self) -> str:
        return f"{Judge.from_dict(self.judge).spec.name} · {self.target_name} · {self.status} · " \
               f"{self.created_at[:16].replace('T', ' ')}"


@dataclass(frozen=True)
class JudgeProgress:
    """Where a run stands, read from the store: pairs judged out of those it judges, and what it leaves out."""

    total: int
    judged: int
    too_long: int
    left_out: dict[str, int]
    """How many comparisons of the target the judge leaves out, by reason (:data:`~playground.ratings.judge.LEFT_OUT`)."""

    def summary(self) -> str:
        text = f"{self.judged} / {self.total} judged"
        if self.too_long:
            text += f" · {self.too_long} too long for the judge's context (left out)"
        left = [f"{count} {LEFT_OUT[why]}" for why, count in self.left_out.items() if count]
        return text + (f" · left out: {', '.join(left)}" if left else "")


def targets(store: Store, target: str) -> list[ComparisonRecord]:
    """The comparisons a target covers, oldest first: a batch's pairs, or every comparison (not deleted)."""
    if target == ALL:
        return store.comparisons(voted_only=False)
    return store.comparisons(voted_only=False, batch_id=target)


def split(records: list[ComparisonRecord], rater: str) -> tuple[list[ComparisonRecord], Counter]:
    """The records the judge ``rater`` judges, and how many it leaves out by reason; its own votes are neither."""
    judged, left_out = [], Counter()
    for record in records:
        if record.rater == rater:
            continue
        why = left_out_reason(record)
        if why is None:
            judged.append(record)
        else:
            left_out[why] += 1
    return judged, left_out


class JudgeRunner:
    """Runs AI judges in a background thread, one run at a time; run records in ``folder``."""

    def __init__(self, store: Store, cache: ModelCache, entries: Callable[[], list[CatalogEntry]], folder: Path) -> None:
        self.store = store
        self.cache = cache
        self.entries = entries
        self.folder = Path(folder)
        self._jobs = OneAtATime("Another judge run is going: stop it first, or wait until it is done.")
        for run in self.runs():  # a run left "judging" by a previous app process is not running
            if run.status == "judging":
                self._save(replace(run, status="interrupted", error="The app stopped while this run was judging."))

    # ------------------------------------------------------------------------------------------ records

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def _save(self, run: JudgeRun) -> JudgeRun:
        write_atomic(self._path(run.id), json.dumps(asdict(run), ensure_ascii=False, indent=1))
        return run

    def run(self, run_id: str) -> JudgeRun | None:
        """The run with this id, or None (an id that is no file name, or no run, alike)."""
        if not run_id or not all(c.isalnum() for c in run_id):
            return None
        try:
            return JudgeRun(**json.loads(self._path(run_id).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def runs(self) -> list[JudgeRun]:
        """Every run, newest first (a file that isn't a run record is passed over)."""
        found = [self.run(path.stem) for path in self.folder.glob("*.json")] if self.folder.is_dir() else []
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at, reverse=True)

    def progress(self, run: JudgeRun) -> JudgeProgress:
        """How far ``run`` is, from the judge's votes with its rubric now in the store."""
        pairs, left_out = split(targets(self.store, run.target), run.rater)
        done = self.store.judged_by(run.rater, Judge.from_dict(run.judge).rubric)
        ids = {r.id for r in pairs}
        too_long = len(set(run.too_long) & (ids - done))
        return JudgeProgress(total=len(pairs) - too_long, judged=len(ids & done), too_long=too_long,
                             left_out={why: left_out[why] for why in LEFT_OUT})

    # ------------------------------------------------------------------------------------------ running

    def running(self) -> str | None:
        """Id of the run judging now, if any."""
        return self._jobs.running()

    def start(self, choice: str, rubric: str, target: str, params: GenerationParams = JUDGE_PARAMS,
              options: LoadOptions | None = None) -> JudgeRun:
        """Start judging ``target`` (``all``, or a batch id) with the model ``choice`` (a label, folder, hub id or
        packaged key, as Compare takes it), ``rubric``, decoding ``params`` (greedy by default) and load ``options`` (the defaults when None).

        Raises ValueError — before anything starts or is written — for a bad rubric, a model the catalog can't
        resolve, a batch that doesn't exist, or a run already judging (checked, and the run recorded and started,
        under the runner's lock: of two starts at once, one runs and the other is refused having written nothing)."""
        judge = Judge(resolve_choice(choice, self.entries()), rubric, options or LoadOptions(), params)
        if target == ALL:
            name = "every comparison"
        else:
            batch = self.store.batch(target) if target else None
            if batch is None:
                raise ValueError(f"There is no batch with id {target!r}: pick a Rate batch, or every comparison.")
            name = f"batch {batch.name}"
        with self._jobs.lock:
            self._jobs.refuse_if_running()
            run = self._save(JudgeRun(id=new_id(), judge=judge.to_dict(), target=target, target_name=name,
                                      status="judging", created_at=now()))
            self._launch(run)
        return run

    def resume(self, run_id: str) -> JudgeRun:
        """Continue a run (stopped, interrupted, failed, or done while its batch grew): the pairs of its target its
        judge hasn't voted on yet with its rubric. Raises ValueError, changing nothing, for no such run, or while a
        run is judging (checked and started under the runner's lock, as :meth:`start` does)."""
        run = self.run(run_id)
        if run is None:
            raise ValueError(f"There is no judge run with id {run_id!r}.")
        if run.target != ALL and self.store.batch(run.target) is None:
            raise ValueError(f"The batch this run judged ({run.target_name}) no longer exists.")
        with self._jobs.lock:
            if self._jobs.running_id() == run.id:
                raise ValueError("This run is judging already.")
            self._jobs.refuse_if_running()
            run = self._save(replace(run, status="judging", error=""))
            self._launch(run)
        return run

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop (after the pair it is judging); False when it isn't the one judging."""
        return self._jobs.stop(run_id)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running run (if any) ends (tests)."""
        self._jobs.wait(timeout)

    def _launch(self, run: JudgeRun) -> None:
        """Start judging ``run`` in its thread; the caller holds the jobs' lock."""
        self._jobs.launch(run.id, lambda stop: self._judge(run, stop), name=f"judge-{run.id[:8]}")

    def _judge(self, run: JudgeRun, stop: threading.Event) -> None:
        try:
            judge = Judge.from_dict(run.judge)
            pairs, _ = split(targets(self.store, run.target), judge.rater)
            done = self.store.judged_by(judge.rater, judge.rubric)
            for record in pairs:
                if stop.is_set():
                    raise JudgeStopped
                if record.id in done or record.id in run.too_long:
                    continue
                try:
                    self.store.save(judge_record(self.cache, judge, record, stop))
                except TooLong:
                    run = self._save(replace(run, too_long=run.too_long + [record.id]))
            self._save(replace(run, status="done"))
        except JudgeStopped:
            self._save(replace(run, status="stopped", error="Stopped by the user."))
        except Exception as error:  # noqa: BLE001 - any failure is shown on the run, the app keeps running
            self._save(replace(run, status="failed", error=str(error) or type(error).__name__))
