"""The TRL stages' shared runner (``trl_stage``). The LM head runs only where a token is learned
(``head_on_labelled_tokens``): on a CPU, TRL's fused head would otherwise project every prompt and padding position
through the vocabulary; checked on the stages' own trainers: fewer positions projected, the same loss and the same
gradients. A run with held-out data evaluates once before its first step (``run_training``), without changing how
it trains, and not again when it resumes."""

from __future__ import annotations

import json

import pytest
import torch
import trl
import trl.kernels.chunked_logprob as trl_kernels
import trl.trainer.utils as trl_utils
from trl.kernels import ChunkedLogProbFunction

from playground.core.settings import Settings
from playground.runs.run_folder import RunFolder
from playground.train import dpo, group_rl, reward, sft, trl_stage
from playground.train.config import DPOConfig, GRPOConfig, RewardConfig, SFTConfig
from tests.test_group_rl import tasks_file
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # two tiny trainers, two forward/backward passes each: a few seconds


def trainer_for(stage: str, base, tmp_path, name: str = "run", **overrides):
    """A stage's trainer on tiny data (8 examples or pairs), one step and no held-out data unless ``overrides``
    say otherwise."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(8)))
    small = dict(name=name, base_model=str(base), data_dir=str(settings.data_dir), lora_r=8, lora_alpha=16,
                 lora_dropout=0.0, max_steps=1, batch_size=4, gradient_accumulation=1, eval_fraction=0.0) | overrides
    folder = RunFolder(settings.runs_dir / name)
    folder.path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)  # a fresh LoRA's initial weights are drawn before the trainer seeds itself
    if stage == "grpo":  # two sampled answers to each task, rewarded by the tasks' checks
        cfg = GRPOConfig(**small | dict(batch_size=4, answers_per_prompt=2, response_length=6, max_length=96,
                                        samples_per_step=4, learning_rate=1e-3),
                         reward_source="checks", datasets=[str(tasks_file(tmp_path))])
        return group_rl.build_trainer(trl.GRPOTrainer, trl.GRPOConfig, cfg, folder)[0], folder
    config, module = {"sft": (SFTConfig, sft), "reward": (RewardConfig, reward), "dpo": (DPOConfig, dpo)}[stage]
    cfg = config(**small, max_examples=8) if stage == "sft" else config(**small, datasets=[str(pairs)])
    return module.build_trainer(cfg, folder)[0], folder


def loss_and_gradients(trainer, batch, monkeypatch) -> tuple[float, dict[str, torch.Tensor], list[int]]:
    """One forward/backward of ``batch``; returns the loss, the LoRA gradients and, per call of TRL's chunked
    log-prob kernel, how many positions it projected through the LM head."""
    rows: list[int] = []

    class Counting(ChunkedLogProbFunction):
        @classmethod
        def apply(cls, hidden, *args):  # (N, H) hidden states → the kernel's per-position outputs
            rows.append(hidden.shape[0])
            return ChunkedLogProbFunction.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Counting)
    trainer.model.zero_grad()
    torch.manual_seed(0)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return loss.item(), grads, rows


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_the_lm_head_projects_only_learned_tokens_with_the_same_loss_and_gradients(stage, tiny_base, tmp_path,
                                                                                  monkeypatch):
    trainer = trainer_for(stage, tiny_base, tmp_path)[0]
    assert trl_utils._use_triton(torch.device("cpu"))  # building a stage's trainer turned it on
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    learned, learned_grads, learned_rows = loss_and_gradients(trainer, batch, monkeypatch)

    monkeypatch.setattr(trl_utils, "_use_triton", trl_kernels._use_triton)  # TRL's own choice: every position
    every, every_grads, every_rows = loss_and_gradients(trainer, batch, monkeypatch)

    assert learned_rows and len(learned_rows) == len(every_rows)
    assert all(a < b for a, b in zip(learned_rows, every_rows))  # prompts and padding skipped in every call
    if stage == "sft":  # one call: exactly the positions whose next token has a label
        assert learned_rows == [int((batch["labels"][:, 1:] != -100).sum())]
        assert every_rows == [batch["input_ids"].shape[0] * (batch["input_ids"].shape[1] - 1)]
    assert learned == pytest.approx(every, rel=1e-5)
    assert learned_grads.keys() == every_grads.keys() and any(g.abs().sum() > 0 for g in learned_grads.values())
    for name, grad in learned_grads.items():
        torch.testing.assert_close(grad, every_grads[name], rtol=1e-4, atol=1e-7, msg=name)


def test_turning_it_on_twice_wraps_once(monkeypatch):
    monkeypatch.setattr(trl_utils, "_use_triton", trl_kernels._use_triton)
    trl_stage.head_on_labelled_tokens()
    once = trl_utils._use_triton
    trl_stage.head_on_labelled_tokens()
    assert trl_utils._use_triton is once and once(torch.device("cpu"))
    assert once(torch.device("meta")) == trl_kernels._use_triton(torch.device("meta"))  # other devices: TRL's choice


def test_a_trl_without_the_name_gets_a_message_and_no_change(monkeypatch, capsys):
    monkeypatch.delattr(trl_utils, "_use_triton")
    trl_stage.head_on_labelled_tokens()
    assert "scores every position on a CPU" in capsys.readouterr().out
    assert not hasattr(trl_utils, "_use_triton")  # nothing added for a TRL that no longer reads it


HELD_OUT = dict(eval_fraction=0.25, max_steps=4, save_steps=2, lora_dropout=0.1)
"""A quarter of the examples held out, an eval every 2 steps, LoRA dropout on."""


def evaluated_steps(rows: list[dict]) -> list[int]:
    return [m["step"] for m in rows if any(key.startswith("eval_") for key in m)]


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo"])
def test_held_out_figures_come_before_the_first_step_too(stage, tiny_base, tmp_path):
    trainer, folder = trainer_for(stage, tiny_base, tmp_path, **HELD_OUT)
    trl_stage.run_training(trainer, folder, resume=False)
    rows = folder.metrics()
    assert evaluated_steps(rows) == [0, 2, 4]
    assert "eval_loss" in rows[0] and "loss" not in rows[0]  # the first row: the untrained model, held out


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_the_evaluation_before_the_first_step_changes_nothing_in_training(stage, tiny_base, tmp_path):
    """Iterating the eval data draws from torch's random state, and GRPO's evaluation samples answers: what the
    training then draws (SFT's LoRA dropout masks, GRPO's sampled answers) would differ without the callback
    putting the state back. (Reward and DPO training draw nothing from it: TRL turns their dropout off.)"""
    trainer, folder = trainer_for(stage, tiny_base, tmp_path, "with", **HELD_OUT)
    trl_stage.run_training(trainer, folder, resume=False)
    rows = folder.metrics()
    assert evaluated_steps(rows)[0] == 0

    # The same run, trained by the trainer alone (no evaluation at step 0): the same numbers, to the last bit.
    plain, plain_folder = trainer_for(stage, tiny_base, tmp_path, "without", **HELD_OUT)
    plain.train()
    plain_rows = plain_folder.metrics()
    assert evaluated_steps(plain_rows) == evaluated_steps(rows)[1:]
    trained = ("loss", "grad_norm", "rewards/score/mean", "completions/mean_length")
    numbers = [(m["step"], [m.get(key) for key in trained]) for m in rows if "loss" in m]
    assert len(numbers) == 4 and numbers == [(m["step"], [m.get(key) for key in trained])
                                             for m in plain_rows if "loss" in m]
    if stage == "grpo":  # the same answers were sampled at every step
        assert [s["answer"] for s in folder.samples()] == [s["answer"] for s in plain_folder.samples()]
        assert len(folder.samples()) == 16


def test_a_run_without_held_out_data_does_not_evaluate(tiny_base, tmp_path):
    trainer, folder = trainer_for("sft", tiny_base, tmp_path, max_steps=2)
    trl_stage.run_training(trainer, folder, resume=False)
    assert not trainer.args.eval_on_start
    rows = folder.metrics()
    assert [m["step"] for m in rows if "loss" in m] == [1, 2] and not any("eval_loss" in m for m in rows)


def test_a_resumed_run_evaluates_step_0_once(tiny_base, tmp_path):
    trainer, folder = trainer_for("reward", tiny_base, tmp_path, **HELD_OUT)
    trl_stage.run_training(trainer, folder, resume=False)
    assert [m["step"] for m in folder.metrics() if "eval_loss" in m] == [0, 2, 4]
    assert folder.last_checkpoint().name == "checkpoint-4"

    # Killed after logging step 5, before its next checkpoint: resumed from step 4, no evaluation at its start.
    folder.append_metrics({"step": 5, "loss": 9.0})
    again, _ = trainer_for("reward", tiny_base, tmp_path, **HELD_OUT | {"max_steps": 6})
    trl_stage.run_training(again, folder, resume=True)
    rows = folder.metrics()
    assert [m["step"] for m in rows if "eval_loss" in m] == [0, 2, 4, 6]
    assert [m["step"] for m in rows if "loss" in m] == [1, 2, 3, 4, 5, 6] and 9.0 not in [m.get("loss") for m in rows]


@pytest.mark.parametrize("resume", [False, True])  # the app starts such a run over without --resume
def test_a_run_started_over_before_its_first_checkpoint_logs_each_step_once(resume, tiny_base, tmp_path):
    trainer, folder = trainer_for("sft", tiny_base, tmp_path, **HELD_OUT)
    for row in ({"step": 0, "eval_loss": 7.0}, {"step": 1, "loss": 8.0}):  # a run killed before its first checkpoint
        folder.append_metrics(row)
    trl_stage.run_training(trainer, folder, resume=resume)
    rows = folder.metrics()
    # its step-0 figures kept (the same untrained model: not evaluated again), its steps logged once, anew
    assert not trainer.args.eval_on_start
    assert [(m["step"], m["eval_loss"]) for m in rows if "eval_loss" in m][0] == (0, 7.0)
    assert evaluated_steps(rows) == [0, 2, 4]
    assert [m["step"] for m in rows if "loss" in m] == [1, 2, 3, 4] and 8.0 not in [m.get("loss") for m in rows]
