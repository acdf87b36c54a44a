"""A training run's folder: the files a run and the app share, and how each is written.

The run process writes; the app only reads (plus two requests it may drop in: ``STOP`` and nothing else), so a
closed browser or a restarted app loses nothing. Layout::

    runs/<name>/
      config.yaml      the run's settings (the stage's config dataclass as YAML)
      status.json      state, pid, times, step counts, error — rewritten atomically (temp file + rename)
      metrics.jsonl    one JSON object per logged step (loss, eval loss, learning rate, tokens/s, memory)
      train.log        the process's stdout and stderr
      STOP             present = "stop after this step, save a checkpoint"
      checkpoints/     trainer checkpoints (resume from the newest)
      adapter/         the final LoRA adapter (also written when stopped) — the model the run made
      eval.json        held-out evaluation results, when measured
      samples.jsonl    PPO: a few answers per step (prompt, answer, score, KL), for the sample viewer
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVE = ("queued", "starting", "running")
"""States in which a run is not over yet."""


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

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json atomically; also stamps ``updated`` (the run's heartbeat)."""
        status = self.status() | fields | {"updated": time.time()}
        write_atomic(self.status_file, json.dumps(status, indent=1))
        return status

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One line per log event; appends of a single short line are atomic enough for a reader to skip a torn
        last line (see :meth:`metrics`)."""
        with self.metrics_file.open("a") as out:
            out.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """Every complete metrics line so far (a line being written is skipped)."""
        return _json_lines(self.metrics_file)

    def samples(self) -> list[dict[str, Any]]:
        """PPO's answers per step (complete lines only, like :meth:`metrics`)."""
        return _json_lines(self.samples_file)

    def forget_after(self, step: int) -> None:
        """Drop metrics and samples lines logged after ``step``: a run resumed from the checkpoint at ``step`` logs
        those steps again (it was killed after logging them but before its next checkpoint)."""
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
        """The newest ``checkpoint-N`` folder (by N), or None."""
        found = [p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


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


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
