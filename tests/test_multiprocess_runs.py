"""Real two-process runs: the app starts SFT, reward, DPO, KTO, GRPO and RLOO with ``accelerate launch --multi_gpu
--num_processes 2`` (two CPU processes over gloo here), and each run's folder is what one process would have written.

Each test trains a tiny model for two steps through the run system (:class:`playground.runs.jobs.Jobs`, as Start
does) and checks the folder: status finished with ``processes: 2``, both processes announced in the log, every
training step logged once, the data split written once, one checkpoint and one adapter that loads and holds the
checkpoint's weights. That both processes trained is read from the epoch counter too: each step consumed two
processes' batches, so one step is twice the share of an epoch that a single process's step would be.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from playground.core.settings import Settings
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder
from playground.train.config import DPOConfig, GRPOConfig, KTOConfig, RewardConfig, RLOOConfig, SFTConfig
from tests.app_process import kill_live_runs
from tests.test_group_rl import tasks_file
from tests.test_reward_dpo import toy_pairs

# two training processes each: 10–60 s a test; among the heaviest, so run by .ci/run after the README's suite
pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(600)]

PAIRS, HELD = 24, 6
"""Preference pairs written for reward, DPO and KTO, and how many of them eval_fraction 0.25 holds out."""


@pytest.fixture
def jobs(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs
    kill_live_runs(jobs)  # the launcher's group: it and both training processes
    kill_live_runs(jobs)


def small(base, settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Two steps of a tiny LoRA on two processes: batch 2 each, short examples."""
    return dict(base_model=str(base), data_dir=str(settings.data_dir), quantization="none", lora_r=4, lora_alpha=8,
                batch_size=2, gradient_accumulation=1, max_length=64, max_steps=2, save_steps=2,
                warmup_ratio=0.0, processes=2) | overrides


def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in toy_pairs(PAIRS)))
    return path


def run_on_two_processes(jobs: Jobs, stage: str, cfg: Any) -> RunFolder:
    """Create the run as Start does and wait for it; check what every stage's folder must show."""
    folder = jobs.create(stage, cfg)
    state = jobs.wait(cfg.name, 540)
    log = folder.log.read_text()
    assert state == "finished", (folder.status().get("error"), log[-3000:])
    # every launcher setting given (none from the user's default accelerate config), on a port free at launch
    assert re.search(rf"\$ accelerate launch --multi_gpu --num_machines 1 --num_processes 2 --mixed_precision no "
                     rf"--main_process_port \d+ -m playground.train {stage} ", log)
    status = folder.status()
    assert status["processes"] == 2 and status["step"] == status["max_steps"] == 2
    assert "Process 1 of 2" in log and "Process 2 of 2" in log  # each process said it was there
    assert log.count("Run finished.") == 2  # and both got to the end

    rows = [row for row in folder.metrics() if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2]  # each step once: only the main process logs

    assert folder.last_checkpoint().name == "checkpoint-2" and [p.name for p in folder.checkpoints.iterdir()
                                                                 if p.is_dir()] == ["checkpoint-2"]
    adapter = load_file(folder.adapter / "adapter_model.safetensors")
    saved = load_file(folder.last_checkpoint() / "adapter_model.safetensors")
    assert adapter.keys() == saved.keys() and any("lora_B" in key for key in adapter)
    assert all(torch.equal(adapter[key], saved[key]) for key in adapter)  # the adapter is the trained weights, whole
    assert sorted(p.name for p in folder.adapter.iterdir()) == ["README.md", "adapter_config.json",
                                                                "adapter_model.safetensors", "playground.json"]
    assert not [p for p in folder.path.iterdir() if p.name.startswith(".adapter")]  # no staging folder left
    info = json.loads((folder.adapter / "playground.json").read_text())
    assert info["stage"] == stage and info["run"] == cfg.name
    return folder


def loads(folder: RunFolder, base, head: str = "causal") -> None:
    """The adapter loads onto the base (PEFT), as Compare or the Reward tab loads it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head == "score":
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    else:
        model = AutoModelForCausalLM.from_pretrained(base)
    tuned = PeftModel.from_pretrained(model, str(folder.adapter))
    assert any("lora_A" in name for name, _ in tuned.named_parameters())


def split_written_once(folder: RunFolder) -> None:
    """The run's train/eval split, written by the main process alone: every pair once, nothing else there."""
    data = folder.path / "data"
    assert sorted(p.name for p in data.iterdir()) == ["eval.jsonl", "train.jsonl"]
    rows = [json.loads(line) for name in ("train.jsonl", "eval.jsonl") for line in (data / name).read_text().splitlines()]
    assert len(rows) == PAIRS and len((data / "eval.jsonl").read_text().splitlines()) == HELD
    assert len({row["id"] for row in rows}) == PAIRS


def first_epoch(folder: RunFolder) -> float:
    return next(row["epoch"] for row in folder.metrics() if "loss" in row)


def colours_file(tmp_path):
    data = tmp_path / "colours.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Name a colour like {w}.", "input": "", "output": w}) + "\n"
                            for w in ["red", "blue", "green", "pink"] * 4))
    return data


def test_sft_on_two_processes(jobs, tiny_base, tmp_path):
    folder = run_on_two_processes(jobs, "sft", SFTConfig(**small(tiny_base, jobs.settings, name="sft-2p",
                                                                 datasets=[str(colours_file(tmp_path))],
                                                                 eval_fraction=0.25)))
    # 12 training examples: 6 a process, 3 batches of 2 each; one process alone would take 6 steps an epoch
    assert first_epoch(folder) == pytest.approx(1 / 3)
    assert [row["step"] for row in folder.metrics() if "eval_loss" in row] == [0, 2]  # before the first step too
    loads(folder, tiny_base)


def test_reward_on_two_processes(jobs, tiny_base, tmp_path):
    folder = run_on_two_processes(jobs, "reward", RewardConfig(**small(
        tiny_base, jobs.settings, name="rm-2p", datasets=[str(pairs_file(tmp_path))], eval_fraction=0.25)))
    split_written_once(folder)
    assert first_epoch(folder) == pytest.approx(1 / 5)  # 18 pairs: 9 a process, 5 batches (one process: 9)
    loads(folder, tiny_base, head="score")


def test_dpo_on_two_processes(jobs, tiny_base, tmp_path):
    folder = run_on_two_processes(jobs, "dpo", DPOConfig(**small(
        tiny_base, jobs.settings, name="dpo-2p", datasets=[str(pairs_file(tmp_path))], eval_fraction=0.25)))
    split_written_once(folder)
    assert first_epoch(folder) == pytest.approx(1 / 5)
    loads(folder, tiny_base)


def test_kto_on_two_processes(jobs, tiny_base, tmp_path):
    folder = run_on_two_processes(jobs, "kto", KTOConfig(**small(
        tiny_base, jobs.settings, name="kto-2p", datasets=[str(pairs_file(tmp_path))], eval_fraction=0.25)))
    split_written_once(folder)
    assert first_epoch(folder) == pytest.approx(1 / 9)  # 36 ratings: 18 a process, 9 batches (one process: 18)
    loads(folder, tiny_base)


@pytest.mark.parametrize("stage", ["grpo", "rloo"])
def test_group_rl_on_two_processes(jobs, tiny_base, tmp_path, stage):
    config_class = GRPOConfig if stage == "grpo" else RLOOConfig
    cfg = config_class(**small(tiny_base, jobs.settings, name=f"{stage}-2p", reward_source="checks",
                               datasets=[str(tasks_file(tmp_path))], batch_size=4, answers_per_prompt=2,
                               response_length=8, samples_per_step=4, eval_fraction=0.0))
    folder = run_on_two_processes(jobs, stage, cfg)
    # 4 tasks, 2 answers to each of 2 prompts a process: the two processes answer all 4 in a step (one alone: 2)
    assert first_epoch(folder) == pytest.approx(1.0)
    # the answer viewer's samples come from the main process alone: each step's once
    assert [sample["step"] for sample in folder.samples()] == [1] * 4 + [2] * 4
    loads(folder, tiny_base)


def test_stop_ends_both_processes_at_the_same_step_with_a_checkpoint_and_the_adapter(jobs, tiny_base, tmp_path):
    cfg = SFTConfig(**small(tiny_base, jobs.settings, name="sft-stop", datasets=[str(colours_file(tmp_path))],
                            eval_fraction=0.0, max_steps=4))
    folder = jobs.create("sft", cfg)
    assert jobs.stop(cfg.name) == "stopping"  # pressed while it starts: it stops after its first step
    state = jobs.wait(cfg.name, 540)
    log = folder.log.read_text()
    assert state == "stopped", (folder.status().get("error"), log[-3000:])
    # the main process read STOP and both stopped there: one that went on would wait for the other forever
    assert log.count("Run stopped.") == 2 and folder.status()["step"] == 1
    assert [row["step"] for row in folder.metrics() if "loss" in row] == [1]
    assert folder.last_checkpoint().name == "checkpoint-1" and not folder.stop_file.exists()
    adapter = load_file(folder.adapter / "adapter_model.safetensors")
    saved = load_file(folder.last_checkpoint() / "adapter_model.safetensors")
    assert all(torch.equal(adapter[key], saved[key]) for key in saved)  # Resume goes on from these weights
