"""What the recipe tests (tests/test_recipe_settings.py, tests/test_rl_recipes.py) check beyond "the run finished":
that each stage really ran its base in 4-bit and its training forward passes through activation checkpoints, and
that its adapter moved away from where it started."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


class Spies:
    """Counts, per stage, calls of the 4-bit layers' forward and of the activation checkpoint function that
    transformers wraps each layer's training forward in (PPO's roles enable it through the same function)."""

    def __init__(self, monkeypatch) -> None:
        import bitsandbytes as bnb
        import transformers.modeling_utils as modeling

        self.stage = ""
        self.nf4: Counter[str] = Counter()
        self.checkpointed: Counter[str] = Counter()
        forward, checkpoint = bnb.nn.Linear4bit.forward, modeling.checkpoint

        def counted_forward(layer, *args, **kwargs):
            self.nf4[self.stage] += 1
            return forward(layer, *args, **kwargs)

        def counted_checkpoint(*args, **kwargs):
            self.checkpointed[self.stage] += 1
            return checkpoint(*args, **kwargs)

        monkeypatch.setattr(bnb.nn.Linear4bit, "forward", counted_forward)
        monkeypatch.setattr(modeling, "checkpoint", counted_checkpoint)  # read when checkpointing is enabled


def lora_weights(adapter: Path) -> dict[str, torch.Tensor]:
    """An adapter's LoRA matrices by name (its score head and other saved modules left out)."""
    return {k: v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_" in k}


def assert_moved(adapter: Path, start: Path | None, stage: str) -> None:
    """The run's adapter differs from its start: the SFT adapter it started from, or (``start`` None) a fresh LoRA,
    whose B matrices are zero until trained."""
    trained = lora_weights(adapter)
    assert trained, stage
    if start is None:
        assert any(v.abs().sum() > 0 for k, v in trained.items() if "lora_B" in k), stage
        return
    before = lora_weights(start)
    shared = trained.keys() & before.keys()
    assert shared, stage  # it started from that adapter: the same LoRA matrices
    assert any(not torch.equal(trained[k], before[k]) for k in shared), stage


def assert_recipe_took_effect(spies: Spies, stage: str, adapter: Path, start: Path | None) -> None:
    """The recipe's settings took effect: its base ran in 4-bit, its training passed through activation checkpoints,
    and its adapter learnt (from a fresh LoRA, ``start`` None, or from the SFT run's adapter)."""
    assert spies.nf4[stage] > 0 and spies.checkpointed[stage] > 0, (stage, spies.nf4, spies.checkpointed)
    assert_moved(adapter, start, stage)


def assert_reference_is_the_start(metrics: list[dict], stage: str) -> None:
    """A DPO or KTO run from an SFT run's model (which learnt: :func:`assert_moved`) has that model as reference:
    before the first step, when the policy is that model too, every implicit reward β·log(π/π_ref) is 0 up to
    rounding (about 1e-6 on the tiny model; with the bare base as the reference, DPO's are about 0.02)."""
    before = next(m for m in metrics if m["step"] == 0)
    assert before["eval_rewards/chosen"] == pytest.approx(0, abs=1e-4), (stage, before)
    assert before["eval_rewards/rejected"] == pytest.approx(0, abs=1e-4), (stage, before)
