"""Faults a user will meet: the app killed while people vote, a run's process killed, the app restarted during a
run, a data dir it can't write. Each runs the real app (``python app.py``) in its own process."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from playground.ratings.store import ComparisonRecord, Side, Store
from playground.runs.run_folder import RunFolder
from playground.train.config import SFTConfig
from playground.ui.train_tab import GROUPS
from tests.app_process import ROOT, start_app
from tests.app_server import free_port

pytestmark = pytest.mark.slow

CLIENTS = 8
RATED = re.compile(r"(\d+) / (\d+) rated")


def fill_batches(store: Store, clients: int, pairs: int) -> list[str]:
    """One ready rating batch per client (so they never vote on the same pair), no model needed."""
    batches = []
    for n in range(clients):
        batch = store.create_batch(f"fault {n}", ["model-a", "model-b"], pairs)
        store.insert_many([ComparisonRecord(messages=[{"role": "user", "content": f"Question {n}-{i}?"}],
                                            a=Side("model-a", response="An answer."),
                                            b=Side("model-b", response="Another answer."), batch_id=batch.id,
                                            position=i, source="rate", blind=True) for i in range(pairs)])
        store.set_batch_status(batch.id, "ready")
        batches.append(batch.id)
    return batches


def test_killing_the_app_while_eight_clients_vote_loses_no_acknowledged_vote(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "ratings.sqlite3")
    batches = fill_batches(store, CLIENTS, 200)
    app = start_app(data)
    acknowledged = [0] * CLIENTS
    errors: list[BaseException] = []
    opened = threading.Barrier(CLIENTS + 1, timeout=120)
    stop, killing = threading.Event(), threading.Event()

    def vote(n: int) -> None:
        try:
            client = Client(app.url, verbose=False)
            assert "0 / 200 rated" in client.predict(batches[n], api_name="/rate_open")[1]  # puts a pair on screen
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            opened.abort()
            return
        opened.wait()
        while not stop.is_set():
            try:
                progress = client.predict(batches[n], 0, "", f"rater{n}", api_name="/rate_left")[0]
            except Exception as error:  # noqa: BLE001 - once the kill is under way: a vote never acknowledged
                if not killing.is_set():  # before it, a failed vote is the app's own error
                    errors.append(error)
                return
            rated = int(RATED.search(progress).group(1))
            if rated != acknowledged[n] + 1:  # each acknowledged call must be exactly one more vote
                errors.append(AssertionError(f"client {n}: {acknowledged[n]} votes acknowledged, then {progress}"))
                return
            acknowledged[n] = rated

    threads = [threading.Thread(target=vote, args=(n,), daemon=True) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        opened.wait()  # every client has its first pair: now they vote as fast as they can
        deadline = time.monotonic() + 120
        while min(acknowledged) < 3 and time.monotonic() < deadline and all(t.is_alive() for t in threads):
            time.sleep(0.05)
        killing.set()
        app.process.send_signal(signal.SIGKILL)  # no chance to flush or clean up
        app.process.wait(30)
    finally:
        stop.set()
        app.stop(kill=True)
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert min(acknowledged) >= 3, acknowledged  # all eight were voting when the app died
    for n, batch in enumerate(batches):
        on_disk = store.progress(batch).rated
        # Every acknowledged vote is on disk; at most the one call in flight was saved without an answer.
        assert acknowledged[n] <= on_disk <= acknowledged[n] + 1, (n, acknowledged[n], on_disk)
    with sqlite3.connect(data / "ratings.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    again = start_app(data)  # restarts cleanly on the same data, and voting goes on where it was
    try:
        client = Client(again.url, verbose=False)
        before = store.progress(batches[0]).rated
        assert f"{before} / 200 rated" in client.predict(batches[0], api_name="/rate_open")[1]
        progress = client.predict(batches[0], 0, "", "rater0", api_name="/rate_left")[0]
        assert f"{before + 1} / 200 rated" in progress
        assert store.progress(batches[0]).rated == before + 1
    finally:
        again.stop()
    assert "Traceback" not in again.log.read_text()


# ---------------------------------------------------------------------------------------------- training runs


def train_form(**values) -> list:
    """The SFT form's values, in the order the /train_start endpoint takes them."""
    defaults = SFTConfig().to_dict() | values
    return [defaults[name] for names in GROUPS["sft"].values() for name in names]


def wait_for(predicate, timeout: float = 180, what: str = ""):
    """Poll ``predicate`` until it returns something true (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.3)
    return result


def loss_points(reply: tuple) -> list:
    """The loss chart's points in a /run_details reply (wherever the chart slots are)."""
    chart = next(r for r in reply if isinstance(r, dict) and str(r.get("label", "")).startswith("Loss"))
    return [row for row in chart["value"]["data"] if row[2] == "loss"]


def start_long_run(client: Client, name: str, base: Path, words: Path) -> None:
    """A tiny SFT run that would take far longer than the test: it is killed or stopped first."""
    message = client.predict(*train_form(name=name, base_model=str(base), datasets=[str(words)], max_steps=5000,
                                         batch_size=2, gradient_accumulation=1, save_steps=1000, lora_r=4,
                                         lora_alpha=8, eval_fraction=0.0, max_length=64),
                             api_name="/train_start")[0]
    assert name in message and "started" in message


@pytest.fixture
def words(tmp_path):
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Say {w}.", "input": "", "output": f"{w}."}) + "\n"
                            for w in ["hi", "yo", "ok", "no"] * 8))
    return path


def kill_run(folder: RunFolder) -> None:
    """Kill a run's whole process group if it is still going (cleanup)."""
    pid = folder.status().get("pid")
    if pid and folder.status().get("state") in ("starting", "running"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.timeout(600)  # two app starts and a training process on shared CPU cores
def test_a_restarted_app_reattaches_to_its_run_and_the_chart_goes_on(tmp_path, tiny_base, words):
    data = tmp_path / "data"
    app = start_app(data)
    folder = RunFolder(data / "runs" / "long")
    try:
        start_long_run(Client(app.url, verbose=False), "long", tiny_base, words)
        wait_for(lambda: folder.status().get("step", 0) >= 3, what="the run's first steps")
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(30)
        pid = folder.status()["pid"]
        os.kill(pid, 0)  # the run is its own process: it outlives the app
        step_at_kill = folder.status()["step"]

        again = start_app(data)
        try:
            client = Client(again.url, verbose=False)
            first = client.predict("long", "", api_name="/run_details")
            assert "running" in first[0], first[0]
            points = len(loss_points(first))
            more = wait_for(lambda: len(now := loss_points(client.predict("long", "", api_name="/run_details")))
                            >= points + 3 and now, what="new points on the loss chart after the restart")
            assert max(row[0] for row in more) > step_at_kill  # the chart goes on past where the app died
            assert folder.status()["pid"] == pid  # the same process: re-attached, not restarted
            client.predict("long", "", api_name="/run_stop")
            stopped = wait_for(lambda: folder.status().get("state") not in ("starting", "running")
                               and folder.status(), what="the stop")
            assert stopped["state"] == "stopped", stopped
            assert "stopped" in client.predict("long", "", api_name="/run_details")[0]
        finally:
            again.stop()
        assert "Traceback" not in again.log.read_text()
    finally:
        app.stop(kill=True)
        kill_run(folder)


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.timeout(600)  # an app start and a training process on shared CPU cores
def test_a_killed_run_shows_failed_with_its_last_log_lines(tmp_path, tiny_base, words):
    data = tmp_path / "data"
    app = start_app(data)
    folder = RunFolder(data / "runs" / "doomed")
    try:
        client = Client(app.url, verbose=False)
        start_long_run(client, "doomed", tiny_base, words)
        wait_for(lambda: folder.status().get("step", 0) >= 2, what="the run's first steps")
        os.killpg(folder.status()["pid"], signal.SIGKILL)  # as the kernel's OOM killer would
        last_line = wait_for(lambda: folder.status().get("state") == "failed" and folder.log_tail(8)
                             .strip().splitlines()[-1], what="the run to be marked failed")
        progress = wait_for(lambda: (p := client.predict("doomed", "", api_name="/run_details")[0])
                            and "failed" in p and p, what="Runs to show it failed")
        assert "ended without finishing" in progress and "Last lines of its log" in progress
        assert html.escape(last_line.strip()) in progress  # the log's tail is shown, not just a state
    finally:
        app.stop()
        kill_run(folder)


# ---------------------------------------------------------------------------------------------- data dir


def run_app(data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    return subprocess.run([sys.executable, "app.py", "--data-dir", str(data_dir), "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def read_only_folder(path: Path) -> Path:
    """A folder nobody can write into — root included (``chattr +i``), else by permissions."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("running as root and this file system can't make a folder immutable (chattr +i)")
    return path


@pytest.mark.parametrize("case", ["read-only folder", "a file in the way"])
def test_an_unwritable_data_dir_gets_a_clear_message_at_startup(tmp_path, case):
    if case == "read-only folder":
        data = read_only_folder(tmp_path / "locked")
    else:
        (tmp_path / "file").write_text("not a folder")
        data = tmp_path / "file" / "data"
    try:
        result = run_app(data)
    finally:
        if case == "read-only folder" and os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(data)])
        data.chmod(0o755) if data.is_dir() else None
    assert result.returncode == 2, result
    assert f"The data directory {data} is not writable" in result.stderr
    assert "--data-dir" in result.stderr and "Traceback" not in result.stderr
