"""Training runs end to end on a tiny model: queue, run, metrics, adapter in the catalog, stop/resume, re-attach,
killed runs, and bad configs."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import threading
import time

import pytest
import torch
from filelock import FileLock

from playground.core.files import write_atomic
from playground.core.settings import Settings
from playground.models.catalog import list_models
from playground.models.loading import LoadOptions, ModelCache
from playground.runs.jobs import JobError, Jobs, command
from playground.runs.run_folder import ACTIVE, RunFolder
from playground.train.config import SFTConfig
from tests.app_process import kill_live_runs
from tests.run_writers import start_app

pytestmark = pytest.mark.slow  # real training processes: seconds each

WORDS = ["hi", "yo", "ok", "no", "up", "go", "so", "be"]


@pytest.fixture
def setup(tmp_path, tiny_base):
    data = tmp_path / "mini.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say {w}.", "input": "", "output": f"{w} {w}."}) + "\n"
                            for w in WORDS * 4))
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs, settings, data, tiny_base
    kill_live_runs(jobs)  # never leave a run process behind


def config(settings, data, base, **overrides) -> SFTConfig:
    values = dict(name="tiny", base_model=str(base), datasets=[str(data)], max_steps=6, batch_size=2,
                  gradient_accumulation=1, save_steps=3, data_dir=str(settings.data_dir), lora_r=4, lora_alpha=8,
                  eval_fraction=0.1)
    values.update(overrides)
    return SFTConfig(**values)


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_run_trains_saves_a_loadable_adapter_and_joins_the_catalog(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("sft", config(settings, data, base))
    assert jobs.wait("tiny", 300) == "finished"
    metrics = folder.metrics()
    steps = [m["step"] for m in metrics if "loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert all(m["loss"] > 0 for m in metrics if "loss" in m) and any("eval_loss" in m for m in metrics)
    assert any(m.get("tokens_per_s") for m in metrics)
    assert "Run finished." in folder.log_tail()
    # The adapter is a model: listed as "<base> + <run>", prompted the way it was trained.
    entry = next(e for e in list_models(settings) if e.note == "trained here")
    assert entry.label == "tiny-base + tiny" and entry.spec.trained_format == "instruction"
    # Plain PEFT loads it and gives the same logits as the app's loader.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(folder.adapter)).eval()
    ours = ModelCache(settings).get(entry.spec, LoadOptions(dtype="float32"))
    ids = torch.tensor([[1, 5, 9, 13, 21]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, ours.model(ids).logits, atol=1e-5)
    # and the LoRA weights moved away from their zero initialisation
    assert any(p.abs().sum() > 0 for n, p in plain.named_parameters() if "lora_B" in n)


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
def test_stop_checkpoints_and_resume_continues_the_step_count(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("sft", config(settings, data, base, max_steps=400, save_steps=1000, eval_fraction=0.0))
    wait_for(lambda: (folder.status().get("step") or 0) >= 3)
    assert jobs.stop("tiny") == "stopping"
    assert jobs.wait("tiny", 120) == "stopped"
    stopped_at = folder.status()["step"]
    assert folder.last_checkpoint().name == f"checkpoint-{stopped_at}"
    assert (folder.adapter / "adapter_config.json").is_file()  # a stopped run's adapter is usable too
    folder.config.write_text(folder.config.read_text().replace("max_steps: 400", f"max_steps: {stopped_at + 3}"))
    jobs.resume("tiny")
    assert jobs.wait("tiny", 300) == "finished"
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps[-3:] == [stopped_at + 1, stopped_at + 2, stopped_at + 3]  # continued, not restarted
    assert "Resuming from checkpoint-" in folder.log.read_text()


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
def test_runs_queue_one_at_a_time(setup):
    jobs, settings, data, base = setup
    jobs.create("sft", config(settings, data, base, name="first", max_steps=400, save_steps=1000))
    second = jobs.create("sft", config(settings, data, base, name="second"))
    runs = {r.name: r for r in jobs.runs()}
    assert runs["second"].state == "queued" and runs["second"].queue_position == 1
    jobs.stop("first")
    assert jobs.wait("first", 120) == "stopped"
    assert jobs.wait("second", 300) == "finished"
    assert second.status()["step"] == 6


def test_restarted_app_reattaches_to_a_live_run_and_fails_a_killed_one(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("sft", config(settings, data, base, max_steps=4000, save_steps=10_000))
    wait_for(lambda: folder.status().get("state") == "running")
    again = Jobs(settings, poll=False)  # the app restarted: a new manager, the run process lives on
    assert again.active() == "tiny"
    assert folder.status()["state"] == "running"
    os.killpg(folder.status()["pid"], signal.SIGKILL)
    wait_for(lambda: (again.pump(), folder.status()["state"] == "failed")[1], timeout=30)
    assert "ended without finishing" in folder.status()["error"]


def test_a_failing_run_is_marked_failed_with_the_reason(setup):
    jobs, settings, data, base = setup
    jobs.create("sft", config(settings, data, "/no/such/model"))
    assert jobs.wait("tiny", 120) == "failed"
    assert "not a model folder" in jobs.folder("tiny").status()["error"]


def test_names_must_be_unique_and_actions_checked(setup):
    jobs, settings, data, base = setup
    jobs.create("sft", config(settings, data, base, max_steps=2))
    with pytest.raises(JobError, match="already exists"):
        jobs.create("sft", config(settings, data, base, max_steps=2))
    jobs.wait("tiny", 300)
    with pytest.raises(JobError, match="not running"):
        jobs.stop("tiny")
    with pytest.raises(JobError, match="no run named"):
        jobs.folder("../../etc")
    jobs.delete("tiny")
    assert jobs.runs() == []


def test_the_command_is_the_one_a_user_can_run(tmp_path):
    args = command("sft", tmp_path / "config.yaml", resume=True)
    assert args[1:] == ["-m", "playground.train", "sft", str(tmp_path / "config.yaml"), "--resume"]
    assert command("sft", tmp_path / "c.yaml", launcher="accelerate")[:3] == ["accelerate", "launch", "-m"]


def test_a_full_disk_when_creating_a_run_leaves_nothing_behind(setup, monkeypatch):
    jobs, settings, data, base = setup

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("playground.runs.run_folder.write_atomic", full)
    with pytest.raises(JobError, match="Can't create the run: the disk is full: free some space"):
        jobs.create("sft", config(settings, data, base))
    assert not (settings.runs_dir / "tiny").exists()

    def locked(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("playground.runs.run_folder.write_atomic", locked)
    with pytest.raises(JobError, match=r"Can't create the run: the runs folder isn't writable \(Permission denied\)"):
        jobs.create("sft", config(settings, data, base))
    assert not (settings.runs_dir / "tiny").exists()


def test_qlora_4bit_runs_on_the_cpu_too(setup, tiny_base_4bit):
    jobs, settings, data, _ = setup
    folder = jobs.create("sft", config(settings, data, tiny_base_4bit, quantization="4bit", max_steps=2,
                                       eval_fraction=0.0))
    assert jobs.wait("tiny", 300) == "finished", folder.status().get("error")
    assert "4-bit NF4 (QLoRA)" in folder.log.read_text()
    assert (folder.adapter / "adapter_model.safetensors").is_file()


def queued_run(settings, name: str, config_text: str) -> RunFolder:
    """A run folder queued as :meth:`Jobs.create` leaves it, with any config text (a bad one fails in a second)."""
    folder = RunFolder(settings.runs_dir / name)
    folder.path.mkdir(parents=True)
    folder.config.write_text(config_text)
    folder.update_status(state="queued", stage="sft", created=time.time(), queued_at=time.time(), resume=False)
    return folder


def test_two_app_processes_on_one_data_dir_start_a_queued_run_once(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    folder = queued_run(settings, "race", "name: race\nlora_r: -3\n")  # the run fails at once: nothing heavy
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    apps = [spawn.Process(target=start_app, args=(str(settings.data_dir), start, 1.0)) for _ in range(2)]
    for app in apps:
        app.start()
    for app in apps:
        app.join(120)
        assert app.exitcode == 0
    wait_for(lambda: folder.status().get("state") not in ACTIVE, timeout=120)
    log = folder.log.read_text()
    assert log.count("$ python -m playground.train sft") == 1, log  # one launch …
    assert log.count("Bad config: lora_r") == 1, log  # … and one run process
    assert folder.status()["state"] == "failed" and "lora_r" in folder.status()["error"]


def test_the_reaper_never_overwrites_the_end_a_run_wrote_meanwhile(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    jobs = Jobs(settings, poll=False)
    folder = queued_run(settings, "late", "name: late\n")
    folder.update_status(state="running", pid=4242)

    def run_ends_then_exits(pid):
        folder.update_status(state="finished", finished=time.time())  # the run's last write …
        return False  # … and by the time the app looks, its process is gone

    monkeypatch.setattr("playground.runs.jobs._process_alive", run_ends_then_exits)
    jobs.pump()
    status = folder.status()
    assert status["state"] == "finished" and "error" not in status


def test_a_run_that_fails_at_once_keeps_its_own_reason(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    jobs = Jobs(settings, poll=False)
    folder = queued_run(settings, "quick", "name: quick\n")

    class Ended:
        """A run process that wrote its failure and exited before the app wrote anything after spawning it."""

        pid = 4242

        def poll(self):
            return 1

    def fails_at_once(*args, **kwargs):
        folder.update_status(state="failed", error="Bad config: lora_r: must be positive", finished=time.time())
        return Ended()

    monkeypatch.setattr("playground.runs.jobs.subprocess.Popen", fails_at_once)
    jobs.pump()
    jobs.pump()  # the next poll notices the process ended
    status = folder.status()
    assert status["state"] == "failed" and status["error"] == "Bad config: lora_r: must be positive"


def test_cancel_waits_for_a_launch_in_progress_and_then_asks_the_run_to_stop(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    jobs = Jobs(settings, poll=False)
    folder = queued_run(settings, "taken", "name: taken\n")
    answer: list[str] = []
    with FileLock(folder.status_lock):  # another app is marking the run "starting" right now
        pressed = threading.Thread(target=lambda: answer.append(jobs.stop("taken")))
        pressed.start()
        pressed.join(0.5)  # Stop pressed meanwhile: it must wait for the lock, not act on the queued state
        write_atomic(folder.status_file, json.dumps(folder.status() | {"state": "starting", "pid": os.getpid()}))
    pressed.join(30)
    assert answer == ["stopping"]  # not "cancelled": the run started, so it is asked to stop
    assert folder.status()["state"] == "starting" and folder.stop_requested()


def test_another_app_never_takes_a_run_being_launched_for_a_dead_one(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    first, second = Jobs(settings, poll=False), Jobs(settings, poll=False)  # two apps on one data dir
    folder = queued_run(settings, "launching", "name: launching\n")

    class Started:
        """The run process the first app spawns (alive: see _process_alive below)."""

        pid = 4242

        def poll(self):
            return None

    def spawn_while_the_other_app_polls(*args, **kwargs):
        other = threading.Thread(target=second.pump)  # "starting", no pid yet: the other app's poll comes now
        other.start()
        other.join(0.5)
        polls.append(other)
        return Started()

    polls: list[threading.Thread] = []
    monkeypatch.setattr("playground.runs.jobs._process_alive", lambda pid: pid == Started.pid)
    monkeypatch.setattr("playground.runs.jobs.subprocess.Popen", spawn_while_the_other_app_polls)
    first.pump()
    polls[0].join(30)
    status = folder.status()
    assert status["state"] == "starting" and status["pid"] == Started.pid and "error" not in status


def test_qlora_keeps_its_gradients_after_an_evaluation(setup, tiny_base_4bit):
    """An eval-mode pass without gradients (an evaluation, a PPO rollout) must not cut the gradients of later
    training steps; on a CPU with AVX-512 BF16, bitsandbytes' repacked inference kernel has no backward."""
    from peft import get_peft_model

    from playground.train.common import load_base, lora_config

    _, settings, data, _ = setup
    cfg = config(settings, data, tiny_base_4bit, quantization="4bit", target_modules="all-linear")
    model, _, _ = load_base(cfg, settings)
    model = get_peft_model(model, lora_config(cfg, "CAUSAL_LM"))
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    model.eval()
    with torch.no_grad():
        model(ids)
    model.train()
    model(ids, labels=ids).loss.backward()
    # B starts at zero, so A gets no gradient yet; B gets one through every layer above it
    lora = {name: p.grad for name, p in model.named_parameters() if p.requires_grad and "lora_B" in name}
    assert len(lora) == 2 * 7
    assert all(grad is not None and grad.abs().sum() > 0 for grad in lora.values()), \
        [name for name, grad in lora.items() if grad is None or not grad.abs().sum() > 0]
