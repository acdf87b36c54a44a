"""Run the app as a user does — ``python app.py`` in its own process — for browser and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningApp:
    """``python app.py`` in a subprocess: its URL, data dir and process."""

    url: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def stop(self, kill: bool = False) -> None:
        """End the app (SIGTERM, or SIGKILL when ``kill`` or when it doesn't end within 30 s)."""
        if self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll ``/gradio_api/info`` until the app answers (or fail with its log); with ``--auth`` the answer is a
    refusal to log in first, which also means it is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}gradio_api/info", timeout=2)
            return
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                return
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the app didn't answer in {timeout} s:\n{log.read_text()[-3000:]}")


def start_app(data_dir: Path, model_a: Path | None = None, model_b: Path | None = None, *extra: str,
              port: int | None = None, prepare: bool = False) -> RunningApp:
    """Launch the app the way a user does, with the given data dir and models; returns once it answers.

    Unless ``prepare``, with ``--no-prepare``: a test that doesn't ask for the panes' models doesn't pay for
    preparing the real packaged defaults in the background."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"app-{port}.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    with log.open("a") as out:
        models: list[str] = []
        for flag, model in (("--model-a", model_a), ("--model-b", model_b)):
            models += [flag, str(model)] if model else []
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(data_dir),
                                    *models, *([] if prepare else ["--no-prepare"]), *extra], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}/", data_dir, process, log)
    try:
        wait_until_up(app.url, process, log)
    except BaseException:
        app.stop(kill=True)
        raise
    return app


def kill_live_runs(jobs) -> None:
    """SIGKILL the process group of every run of ``jobs`` still starting or running, and of every process ``jobs``
    launched that is still alive — a multi-process run's status holds rank 0's pid, which leads no group; its
    launcher does (a test's teardown)."""
    groups = [process.pid for process in jobs._processes.values() if process.poll() is None]
    for folder in jobs.folders():
        pid = folder.status().get("pid")
        if folder.status().get("state") in ("starting", "running") and pid:
            groups.append(pid)
    for pid in groups:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
