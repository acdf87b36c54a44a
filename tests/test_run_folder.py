"""The run folder's status protocol: writes from the app and the run, in two processes at once, lose nothing; a
conditional state change never overwrites what the other side wrote."""

from __future__ import annotations

import json
import multiprocessing

from playground.runs.run_folder import RunFolder
from tests.run_writers import write_fields

WRITES = 200


def test_interleaved_status_writes_from_app_and_run_lose_nothing(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.update_status(state="running", step=0)
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    sides = [spawn.Process(target=write_fields, args=(str(folder.path), side, WRITES, start))
             for side in ("app", "run")]
    for side in sides:
        side.start()
    for side in sides:
        side.join(120)
        assert side.exitcode == 0
    status = folder.status()
    for side in ("app", "run"):
        assert [status.get(f"{side}_{i}") for i in range(WRITES)] == list(range(WRITES)), f"{side} writes lost"
        assert status[f"{side}_count"] == WRITES
    assert status["state"] == "running" and status["step"] == 0  # fields neither side touched are kept too


def test_a_refused_transition_changes_nothing(tmp_path):
    folder = RunFolder(tmp_path)
    folder.update_status(state="finished", step=6)
    before = folder.status_file.read_text()
    assert folder.update_status(only_if=lambda now: now.get("state") == "queued", state="starting") is None
    assert folder.status_file.read_text() == before
    done = folder.update_status(only_if=lambda now: now.get("state") == "finished", note="kept")
    assert done["note"] == "kept" and folder.status() == done


def test_a_status_written_before_the_lock_existed_still_reads_and_updates(tmp_path):
    """Run folders from before the protocol have no lock file; the format is unchanged."""
    folder = RunFolder(tmp_path)
    folder.status_file.write_text(json.dumps({"state": "stopped", "step": 3, "updated": 1.0}, indent=1))
    assert folder.status()["step"] == 3
    folder.update_status(state="queued")
    assert folder.status()["step"] == 3 and folder.status()["state"] == "queued"
    assert json.loads(folder.status_file.read_text()) == folder.status()


def test_resume_takes_the_newest_complete_checkpoint_not_one_a_kill_left_half_written(tmp_path):
    """A TRL checkpoint is complete once it holds trainer_state.json (written last), a PPO one with state.json; a
    run killed while saving checkpoint-30 resumes from checkpoint-20."""
    folder = RunFolder(tmp_path / "run")
    assert folder.last_checkpoint() is None
    for step, last_file in ((10, "trainer_state.json"), (20, "trainer_state.json"), (30, None), (4, "state.json")):
        checkpoint = folder.checkpoints / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")  # written first
        if last_file:
            (checkpoint / last_file).write_text("{}")
    assert folder.last_checkpoint().name == "checkpoint-20"
    (folder.checkpoints / "checkpoint-30" / "trainer_state.json").write_text("{}")  # the save got to its end
    assert folder.last_checkpoint().name == "checkpoint-30"
    other = RunFolder(tmp_path / "ppo")
    (other.checkpoints / "checkpoint-4").mkdir(parents=True)
    assert other.last_checkpoint() is None  # nothing complete: start from step 0 rather than fail
    (other.checkpoints / "checkpoint-4" / "state.json").write_text("{}")
    assert other.last_checkpoint().name == "checkpoint-4"
