"""Bodies of the child processes in the run-state race tests (the app's side and the run's side, each in its own
process as in real use). multiprocessing's spawn children import this module, so it imports only what they need."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from playground.core.settings import Settings
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder


def write_fields(folder: str, side: str, count: int, start: Any) -> None:
    """``count`` status writes as one side would make them: each adds its own field ``<side>_<i>`` and moves the
    side's counter, so a write lost to the other side's stale read shows up as a missing field."""
    run = RunFolder(Path(folder))
    start.wait()
    for i in range(count):
        run.update_status(**{f"{side}_{i}": i, f"{side}_count": i + 1})


def start_app(data_dir: str, start: Any, launch_delay: float) -> None:
    """One app process on ``data_dir``: it starts (a new :class:`Jobs` pumps the queue) and pumps once more.

    Spawning the run takes ``launch_delay`` seconds longer than usual, so the moment between picking a queued run and
    marking it started is wide enough for the other app to pick the same run if nothing stops it."""
    spawn = subprocess.Popen

    def slow_spawn(*args: Any, **kwargs: Any) -> subprocess.Popen:
        time.sleep(launch_delay)
        return spawn(*args, **kwargs)

    subprocess.Popen = slow_spawn  # this child process's own module: nothing else runs here
    start.wait()
    Jobs(Settings(data_dir=Path(data_dir), memory_budget_gb=1.0), poll=False).pump()
