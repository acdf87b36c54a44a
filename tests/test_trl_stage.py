"""The TRL stages run the LM head only where a token is learned (``trl_stage.head_on_labelled_tokens``): on a CPU,
TRL's fused head would otherwise project every prompt and padding position through the vocabulary. Checked on the
stages' own trainers: fewer positions projected, the same loss and the same gradients."""

from __future__ import annotations

import json

import pytest
import torch
import trl.kernels.chunked_logprob as trl_kernels
import trl.trainer.utils as trl_utils
from trl.kernels import ChunkedLogProbFunction

from playground.core.settings import Settings
from playground.runs.run_folder import RunFolder
from playground.train import dpo, sft, trl_stage
from playground.train.config import DPOConfig, SFTConfig
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # two tiny trainers, two forward/backward passes each: a few seconds


def trainer_for(stage: str, base, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(8)))
    small = dict(name="run", base_model=str(base), data_dir=str(settings.data_dir), lora_r=8, lora_alpha=16,
                 lora_dropout=0.0, max_steps=1, batch_size=4, gradient_accumulation=1, eval_fraction=0.0)
    cfg = SFTConfig(**small, max_examples=8) if stage == "sft" else DPOConfig(**small, datasets=[str(pairs)])
    folder = RunFolder(settings.runs_dir / "run")
    folder.path.mkdir(parents=True)
    return (sft if stage == "sft" else dpo).build_trainer(cfg, folder)[0]


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
    trainer = trainer_for(stage, tiny_base, tmp_path)
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
