"""Run ``python -m playground.serve`` as a user does, in its own process, for tests that talk to a real
OpenAI-compatible server (the server's own tests, and the endpoint client's).

    with serving(model_folder, tmp_path / "data") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        client.chat.completions.create(model=server.model, messages=[...])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]

#: The environment variable that carries the key to a server started with ``api_key`` (its name goes on the
#: command line, never the key).
KEY_ENV = "PLAYGROUND_TEST_SERVE_KEY"


@dataclass
class RunningServer:
    """``python -m playground.serve`` in a subprocess."""

    base_url: str
    """``http://127.0.0.1:PORT/v1``: what an OpenAI client takes as its ``base_url``."""
    model: str
    """The served model's id, as ``/v1/models`` lists it (what a request names in ``model``)."""
    api_key: str | None
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """End the server (SIGTERM; SIGKILL when it doesn't end within 30 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def serve_command(model: str | Path, data_dir: Path, port: int, *extra: str, api_key: str | None = None) -> list[str]:
    """The argv that serves ``model`` from ``data_dir`` on ``port`` (with the key's variable named when keyed)."""
    keyed = ["--api-key-env", KEY_ENV] if api_key else []
    return [sys.executable, "-m", "playground.serve", str(model), "--port", str(port), "--data-dir", str(data_dir),
            *keyed, *extra]


def served_model(base_url: str, process: subprocess.Popen, log: Path, api_key: str | None,
                 timeout: float = 120) -> str:
    """Poll ``/v1/models`` until the server answers (it listens only once its model is loaded); the model's id.
    Fails with the server's log when it exits or doesn't answer in ``timeout`` seconds."""
    request = urllib.request.Request(f"{base_url}/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.load(response)["data"][0]["id"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise TimeoutError(f"the server didn't answer in {timeout} s:\n{log.read_text()[-3000:]}")


def start_server(model: str | Path, data_dir: Path, *extra: str, api_key: str | None = None,
                 port: int | None = None) -> RunningServer:
    """Start serving ``model`` (anything the app's model boxes accept: a catalog name, a model or adapter folder)
    with ``data_dir`` as the data dir, on a free loopback port; returns once ``/v1/models`` answers. ``api_key``:
    require this key (passed in :data:`KEY_ENV`). ``extra``: more command-line flags."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"serve-{port}.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if api_key:
        env[KEY_ENV] = api_key
    with log.open("a") as out:
        process = subprocess.Popen(serve_command(model, data_dir, port, *extra, api_key=api_key), cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        model_id = served_model(base_url, process, log, api_key)
    except BaseException:
        process.kill()
        process.wait(30)
        raise
    return RunningServer(base_url, model_id, api_key, process, log)


@contextmanager
def serving(model: str | Path, data_dir: Path, *extra: str, api_key: str | None = None) -> Iterator[RunningServer]:
    """:func:`start_server` for a ``with`` block (or a fixture): the running server, stopped at the end."""
    server = start_server(model, data_dir, *extra, api_key=api_key)
    try:
        yield server
    finally:
        server.stop()
