"""The GRPO, RLOO and KTO QLoRA GPU recipes run as written (4-bit NF4, gradient checkpointing, starting from the SFT
recipe's run, GRPO and RLOO maximising the reward recipe's run) on a tiny model one NF4 block wide instead of
Qwen2.5-0.5B, tiny data and two steps, as tests/test_recipe_settings.py runs the other stages' recipes and with the same
checks: each run's base computes in 4-bit, its training passes through activation checkpoints, its adapter moves
from the SFT run's. The CPU trains in float32: the bf16 / fp16 a GPU adds is tests/test_train_precision.py's."""

from __future__ import annotations

import json

import pytest
import yaml

from playground.core.settings import Settings
from playground.runs.run_folder import RunFolder
from playground.train import grpo, kto, reward, rloo, sft
from playground.train.config import from_dict
from playground.ui.train_tab import recipes
from tests.recipe_checks import Spies, assert_recipe_took_effect, assert_reference_is_the_start
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # five short 4-bit training runs on the CPU

STAGES = {"sft": sft, "reward": reward, "grpo": grpo, "rloo": rloo, "kto": kto}
SMALL = {"max_steps": 2, "batch_size": 4, "gradient_accumulation": 1, "max_length": 128, "save_steps": 1}
"""What the test shrinks; everything else is the recipe's."""


def recipe(name: str) -> dict:
    return yaml.safe_load(recipes()[name].read_text())


@pytest.mark.timeout(1200)
def test_the_rl_and_kto_qlora_gpu_recipes_run_as_written_on_a_tiny_model(tiny_base_4bit, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(24)))
    names, spies = {}, Spies(monkeypatch)
    for stage in STAGES:
        data = recipe(f"{stage}-qwen-0.5b-qlora-gpu")
        assert data["quantization"] == "4bit" and data["gradient_checkpointing"] is True, stage
        names[stage] = data["name"]
        overrides = SMALL | {"base_model": str(tiny_base_4bit), "data_dir": str(settings.data_dir)}
        if stage in ("reward", "kto"):
            overrides["datasets"] = [str(pairs)]  # the recipes read votes, which a fresh data dir has none of
        if stage in ("grpo", "rloo"):
            # 4 answers a step in groups of 2 (the recipes' 8 and 4 would not divide a batch of 4), 8 tokens each
            overrides |= {"answers_per_prompt": 2, "response_length": 8, "samples_per_step": 4}
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
        if stage == "kto":
            assert_reference_is_the_start(folder.metrics(), stage)
        if stage in ("grpo", "rloo"):  # every answer of both steps reached the answer viewer
            assert [s["step"] for s in folder.samples()] == [1] * 4 + [2] * 4, stage
