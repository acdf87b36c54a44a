"""Every shipped recipe's training settings run: the QLoRA GPU chain (SFT → reward model → DPO and PPO, 4-bit NF4,
gradient checkpointing, the later stages starting from the SFT run) with each recipe as written, on a tiny model one
NF4 block wide instead of Qwen2.5-0.5B, tiny data and two steps. 4-bit NF4 and checkpointing run on the CPU too, and
each run is watched doing so (its 4-bit layers' forward and the activation checkpoints are counted, and its adapter
must have moved from its start). The CPU trains in float32: the bf16 / fp16 a GPU adds is
tests/test_train_precision.py's."""

from __future__ import annotations

import json

import pytest
import yaml

from playground.core.settings import Settings
from playground.runs.run_folder import RunFolder
from playground.train import dpo, ppo, reward, sft
from playground.train.config import from_dict
from playground.ui.train_tab import recipes
from tests.recipe_checks import Spies, assert_recipe_took_effect, assert_reference_is_the_start
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # four short 4-bit training runs on the CPU

STAGES = {"sft": sft, "reward": reward, "dpo": dpo, "ppo": ppo}
SMALL = {"max_steps": 2, "batch_size": 4, "gradient_accumulation": 1, "max_length": 128, "save_steps": 1}
"""What the test shrinks; everything else is the recipe's."""


def recipe(name: str) -> dict:
    return yaml.safe_load(recipes()[name].read_text())


def test_the_qlora_gpu_recipes_run_as_written_on_a_tiny_model(tiny_base_4bit, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(24)))
    names, spies = {}, Spies(monkeypatch)
    for stage in ("sft", "reward", "dpo", "ppo"):
        data = recipe(f"{stage}-qwen-0.5b-qlora-gpu")
        assert data["quantization"] == "4bit" and data["gradient_checkpointing"] is True, stage
        names[stage] = data["name"]
        overrides = SMALL | {"base_model": str(tiny_base_4bit), "data_dir": str(settings.data_dir)}
        if stage in ("reward", "dpo"):
            overrides["datasets"] = [str(pairs)]  # the recipes read votes, which a fresh data dir has none of
        if stage == "ppo":
            overrides |= {"batch_size": 4, "mini_batch_size": 2, "response_length": 8}
            assert data["sft_run"] == names["sft"] and data["reward_run"] == names["reward"]
        elif stage != "sft":
            assert data["sft_run"] == names["sft"]
        cfg = from_dict(stage, data | overrides)
        folder = RunFolder(settings.runs_dir / cfg.name)
        folder.path.mkdir(parents=True)
        folder.config.write_text(cfg.to_yaml())
        spies.stage = stage
        assert STAGES[stage].main(cfg, folder) == "finished", stage
        info = json.loads((folder.adapter / "playground.json").read_text())
        assert info["quantized"] is True, stage
        start = None if stage == "sft" else settings.runs_dir / names["sft"] / "adapter"
        assert_recipe_took_effect(spies, stage, folder.adapter, start)
        if stage == "dpo":
            assert_reference_is_the_start(folder.metrics(), stage)
