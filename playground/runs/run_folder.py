"""A training run's folder: the files a run and the app share, who writes each, and under which lock.

Both sides write: the run process (``python -m playground.train``) and the app (:mod:`playground.runs.jobs`, possibly
several app processes on one data dir). A closed browser or a restarted app loses nothing because every state lives
in the folder, and no state change is lost because every write of ``status.json`` follows the protocol below.
Layout::

    runs/<name>/
      config.yaml      the run's settings (the stage's config dataclass as YAML) — the app, once, at creation
      status.json      state, pid, times, step counts, error — see "status.json" below
      .status.json.lock  the lock file every status.json write holds (empty; filelock/flock)
      metrics.jsonl    one JSON object per logged step (loss, eval loss, learning rate, tokens/s, memory) — the run
      train.log        the process's stdout and stderr — the run; the app appends the command line it launches
      STOP             present = "stop after this step, save a checkpoint" — the app creates it (Stop) and removes
                       it (Resume); the run removes it when it ends
      checkpoints/     trainer checkpoints (resume from the newest) — the run
      adapter/         the final LoRA adapter (also written when stopped) — the model the run made — the run
      data/            reward, DPO: the run's train/eval split of preference pairs (kept for Resume) — the run
      eval.json        held-out evaluation results, when measured — the app (Evaluate)
      agreement.json   reward runs: the last check against the votes (agreement, length bias) — the app (Reward)
      samples.jsonl    PPO: a few answers per step (prompt, answer, score, KL), for the sample viewer — the run
      failed-rank-N.txt  multi-process runs: why process N (not the main one) failed — that process
    runs/.queue.lock   the data dir's queue lock (see :mod:`playground.runs.jobs`)

status.json — who writes which fields:

- **the app**, while no run process owns the run: ``state`` "queued" with ``stage``, ``base_model``, ``created``,
  ``queued_at``, ``resume``, ``processes`` (how many it is to start on: the config's) (create, Resume); "queued" → "stopped" with ``error``, ``finished`` (cancel);
  "queued" → "starting" with ``started``, then ``pid`` once the process exists (launch); "starting"/"running" →
  "failed" with ``error``, ``finished`` only when that ``pid`` is no longer alive (a killed run).
- **the run**: ``state`` "running" with ``stage``, ``base_model``, ``pid`` (the main process's), ``started``,
  ``error``, ``processes`` (how many train together: the launcher's count) at its start;
  ``step``, ``max_steps``, ``eta_s``, ``elapsed_s`` as it goes; "finished"/"stopped"/"failed" with ``finished``
  (and ``error``) at its end.
- every write stamps ``updated`` (the heartbeat).

A run launched on several processes (``accelerate launch``, one per GPU) has one writer: only the main process
(:func:`playground.core.distributed.is_main_process`) writes status.json, metrics.jsonl and the rest; the others' writes
through this class are skipped, so they never race it on the same files (rename over a file being renamed). Two
exceptions, each on files of its own: a process that fails records why in ``failed-rank-N.txt``, and inside each
checkpoint the trainer has every process write its own ``rng_state_N.pth`` (and, under DeepSpeed, its own shards of
the optimizer state).

Every write goes through :meth:`RunFolder.update_status`: take the folder's status lock, read, merge the fields,
write a temporary file and rename it over status.json, release. So two writers never lose each other's fields
(no stale read-merge-write), and a reader — which takes no lock — sees the old file or the new one, never half.
An app state change that is only right from some states (cancel only a queued run, fail only a run still marked
running by a dead pid…) passes ``only_if``: the condition is checked on the status read under the lock, so a
change the other side made in between is never overwritten.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from playground.core.distributed import is_main_process
from playground.core.files import write_atomic

ACTIVE = ("queued", "starting", "running")
"""States in which a run is not over yet."""
CHECKPOINT_COMPLETE = ("trainer_state.json", "state.json")
"""A checkpoint folder holding one of these was written to the end (:meth:`RunFolder.last_checkpoint`)."""
RANK_FAILURE_PREFIX = "failed-rank-"
"""``failed-rank-N.txt``: why process N of a multi-process run failed (:meth:`RunFolder.record_rank_failure`)."""


@dataclass(frozen=True)
class RunFolder:
    """Paths and file protocol of one run folder."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def status_lock(self) -> Path:
        """The lock file every status.json write holds (a separate file: status.json itself is renamed over)."""
        return self.path / ".status.json.lock"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def samples_file(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def status(self) -> dict[str, Any]:
        """The last status written (empty when none or unreadable mid-replace, which rename makes impossible)."""
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def update_status(self, only_if: Callable[[dict[str, Any]], bool] | None = None,
                      **fields: Any) -> dict[str, Any] | None:
        """Merge ``fields`` into status.json under the folder's status lock and stamp ``updated`` (the heartbeat).

        Read, merge and write happen under one inter-process lock (filelock: ``flock`` on POSIX, released by the
        kernel if the holder dies), so a concurrent write from the run or another app process is never overwritten
        by a stale read; the write itself is atomic (temp file + rename) for readers, who don't lock. With
        ``only_if``, the merge happens only when ``only_if(current status)`` is true under the lock (a state
        transition that must not overwrite a change made meanwhile). Returns the status written, or None when
        ``only_if`` refused or this is not the main process of a multi-process run (which writes nothing).
        """
        if not is_main_process():
            return None
        with FileLock(self.status_lock):
            current = self.status()
            if only_if is not None and not only_if(current):
                return None
            status = current | fields | {"updated": time.time()}
            write_atomic(self.status_file, json.dumps(status, indent=1))
            return status

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One line per log event; appends of a single short line are atomic enough for a reader to skip a torn
        last line (see :meth:`metrics`). Skipped on a process other than the main one."""
        if not is_main_process():
            return
        with self.metrics_file.open("a") as out:
            out.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """Every complete metrics line so far (a line being written is skipped)."""
        return _json_lines(self.metrics_file)

    def samples(self) -> list[dict[str, Any]]:
        """PPO's answers per step (complete lines only, like :meth:`metrics`)."""
        return _json_lines(self.samples_file)

    def evaluated_at_start(self) -> bool:
        """Whether the run logged held-out figures at step 0 (its starting model's, the "before" every later
        evaluation is read against): a run started over keeps them and must not log them twice."""
        return any(m.get("step") == 0 and any(key.startswith("eval_") for key in m) for m in self.metrics())

    def forget_after(self, step: int) -> None:
        """Drop metrics and samples lines logged after ``step``: a run resumed from the checkpoint at ``step`` logs
        those steps again (it was killed after logging them but before its next checkpoint). Skipped on a process
        other than the main one."""
        if not is_main_process():
            return
        for path in (self.metrics_file, self.samples_file):
            if path.exists():
                kept = [row for row in _json_lines(path) if int(row.get("step", 0)) <= step]
                write_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        # Progress bars redraw with carriage returns; keep the last state of each line.
        cleaned = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
        return "\n".join(cleaned[-lines:])

    def stop_requested(self) -> bool:
        return self.stop_file.exists()

    def last_checkpoint(self) -> Path | None:
        """The newest complete ``checkpoint-N`` folder (by N), or None. Complete: it holds the file its writer
        writes last — ``trainer_state.json`` for the TRL stages (transformers' ``Trainer._save_checkpoint`` writes
        it after the weights, optimizer and RNG states), ``state.json`` for PPO (whose checkpoints appear whole
        anyway, :func:`playground.core.files.staged_folder`) — so a run killed while saving resumes from the
        checkpoint before, instead of failing on the half-written one at every Resume."""
        found = [p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                 and any((p / name).is_file() for name in CHECKPOINT_COMPLETE)]
        return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None

    def record_rank_failure(self, rank: int, message: str) -> None:
        """Why process ``rank`` (not the main one, which writes status.json) of a multi-process run failed:
        ``failed-rank-N.txt``, which the app's reaper and the main process's own failure prefer to their generic
        reason (:meth:`rank_failures`) — the launcher usually kills the main process when another one fails, so
        the real reason would otherwise be only in the log. Each process writes its own file: no lock needed."""
        self.path.mkdir(parents=True, exist_ok=True)  # a run launched by hand: perhaps before the main made it
        write_atomic(self.path / f"{RANK_FAILURE_PREFIX}{rank}.txt", message)

    def rank_failures(self, since: float) -> list[str]:
        """The failure messages other processes recorded (:meth:`record_rank_failure`) at or after ``since`` (this
        launch's start: an earlier launch's don't count), as "Process N+1 of the run failed: message", lowest
        rank first."""
        found = []
        for path in self.path.glob(f"{RANK_FAILURE_PREFIX}*.txt"):
            number = path.stem.removeprefix(RANK_FAILURE_PREFIX)
            try:
                if number.isdigit() and path.stat().st_mtime >= since:
                    found.append((int(number), path.read_text().strip()))
            except OSError:
                continue
        return [f"Process {number + 1} of the run failed: {text}" for number, text in sorted(found)]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
