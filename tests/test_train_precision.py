"""Training precision is right for the card: bf16 only where the card computes in it, fp16 on older cards, every
trainable parameter in float32 (master weights) whatever the stage, precision and quantization, and PPO running its
forwards under the training precision's autocast with fp16's gradient scaler.

A CPU has no bf16/fp16 choice of its own (float32), so these tests force the dtype a GPU would pick
(``common.load_options``) and check what the stages build and run with it."""

from __future__ import annotations

import json

import pytest
import torch

from playground.core.settings import Settings
from playground.models import loading
from playground.models.loading import LoadOptions
from playground.runs.run_folder import RunFolder
from playground.train import common, dpo, group_rl, kto, ppo, reward, sft
from playground.train.config import DPOConfig, GRPOConfig, KTOConfig, RewardConfig, RLOOConfig, SFTConfig
from tests.test_group_rl import tasks_file
from tests.test_ppo import merge_share, ppo_config
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # trainers built on tiny models, two PPO steps: about a minute in all


def test_bf16_only_on_cards_that_compute_in_it(monkeypatch):
    """``torch.cuda.is_bf16_supported()`` says True on a T4 (compute capability 7.5) because it counts emulated bf16;
    such a card must get float16."""
    def t4(including_emulation: bool = True) -> bool:  # what torch answers on a compute-capability 7.5 card
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert loading.resolve_dtype("auto", "cuda") == torch.float16
    assert loading.resolve_dtype("auto", "cuda:1") == torch.float16
    assert loading.resolve_dtype("auto", "cuda", "gemma3_text") == torch.float32  # Gemma overflows fp16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and up
    assert loading.resolve_dtype("auto", "cuda") == torch.bfloat16
    assert loading.resolve_dtype("auto", "cuda", "gemma3_text") == torch.bfloat16
    assert loading.resolve_dtype("auto", "cpu") == torch.float32
    assert loading.resolve_dtype("float16", "cpu") == torch.float16  # an explicit choice is kept


def force(monkeypatch, dtype: str, quant: str) -> None:
    """Load every stage's base in ``dtype`` (and 4-bit NF4 when ``quant``), as ``auto`` would on such a GPU."""
    monkeypatch.setattr(common, "load_options", lambda cfg: LoadOptions(dtype=dtype, quant=quant))


@pytest.mark.parametrize("quant", ["none", "4bit"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("stage", ["sft", "reward", "dpo", "kto", "grpo", "rloo"])
def test_every_trainable_parameter_is_float32_once_the_trainer_is_built(stage, dtype, quant, tiny_base_4bit,
                                                                       tmp_path, monkeypatch):
    force(monkeypatch, dtype, quant)
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(8)))
    small = dict(name="run", base_model=str(tiny_base_4bit), data_dir=str(settings.data_dir), lora_r=8,
                 lora_alpha=16, max_steps=1, batch_size=2, gradient_accumulation=1, eval_fraction=0.0)
    # GRPO and RLOO: two answers to each prompt, rewarded by the tasks' own checks
    group = dict(small, reward_source="checks", datasets=[str(tasks_file(tmp_path))], answers_per_prompt=2,
                 response_length=8, max_length=128, samples_per_step=2)
    cfg = {"sft": lambda: SFTConfig(**small, max_examples=8),
           "reward": lambda: RewardConfig(**small, datasets=[str(pairs)]),
           "dpo": lambda: DPOConfig(**small, datasets=[str(pairs)]),
           "kto": lambda: KTOConfig(**small, datasets=[str(pairs)]),
           "grpo": lambda: GRPOConfig(**group), "rloo": lambda: RLOOConfig(**group)}[stage]()
    folder = RunFolder(settings.runs_dir / "run")
    folder.path.mkdir(parents=True)
    if stage in ("grpo", "rloo"):
        import trl

        trainer_class, args_class = {"grpo": (trl.GRPOTrainer, trl.GRPOConfig),
                                     "rloo": (trl.RLOOTrainer, trl.RLOOConfig)}[stage]
        trainer, _ = group_rl.build_trainer(trainer_class, args_class, cfg, folder)
    else:
        trainer, _ = {"sft": sft, "reward": reward, "dpo": dpo, "kto": kto}[stage].build_trainer(cfg, folder)
    assert trainer.args.fp16 == (dtype == "float16") and trainer.args.bf16 == (dtype == "bfloat16")
    trainable = {name: p.dtype for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("lora_" in name for name in trainable)
    if stage == "reward":
        assert any("score" in name and "lora_" not in name for name in trainable)  # the score head trains too
    assert set(trainable.values()) == {torch.float32}, {n: d for n, d in trainable.items() if d != torch.float32}


@pytest.mark.parametrize("dtype,quant", [("bfloat16", "4bit"), ("float16", "none")])
def test_ppo_runs_its_forwards_under_the_training_autocast_with_float32_master_weights(dtype, quant, tmp_path,
                                                                                       monkeypatch, tiny_base_4bit):
    force(monkeypatch, dtype, quant)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(tiny_base_4bit, tmp_path / "data", quantization=quant, max_steps=2, batch_size=4,
                     mini_batch_size=4, ppo_epochs=1, response_length=6, save_steps=2)
    roles = ppo.SharedBase(cfg, ppo.settings_for(cfg), None)
    assert {p.dtype for p in roles.trainable} == {torch.float32}
    # What the policy's and the value model's LoRA layers and the LM head compute in, in every forward (sampling,
    # recomputed log-probs, values; a 4-bit layer computes in its own compute dtype whatever autocast says). The
    # recomputed log-probs read the LM head's weight in TRL's chunked kernel, which projects in the autocast dtype.
    seen: dict[str, set[torch.dtype]] = {}
    watched = {name: module for name, module in roles.model.named_modules()
               if name.endswith(("layers.0.self_attn.q_proj.lora_A.default", "layers.0.self_attn.q_proj.lora_A.value"))}
    watched["lm_head"] = roles.model.get_output_embeddings()
    hooks = [module.register_forward_hook(lambda module, args, out, name=name: seen.setdefault(name, set()).add(
        out.dtype)) for name, module in watched.items()]
    assert ppo.train(cfg, run, scorer=merge_share, roles=roles) == "finished"
    for hook in hooks:
        hook.remove()
    assert len(watched) == 3 and seen == {name: {getattr(torch, dtype)} for name in watched}  # never float32
    assert {p.dtype for p in roles.trainable} == {torch.float32}
    metrics = run.metrics()
    assert [m["step"] for m in metrics] == [1, 2] and all(m["loss"] == m["loss"] for m in metrics)  # no NaN
    if dtype == "float16":  # the loss scale and the updates an overflow made the scaler skip are logged
        assert all(m["loss_scale"] > 0 and m["skipped_updates"] in (0.0, 1.0) for m in metrics)
        assert all(m["grad_norm"] < float("inf") for m in metrics if "grad_norm" in m)
    else:
        assert not any("loss_scale" in m for m in metrics) and all("grad_norm" in m for m in metrics)
    state = torch.load(run.checkpoints / "checkpoint-2" / "state.pt", weights_only=True)
    # fp16 trains with a gradient scaler (its scale is saved for Resume); bf16 needs none
    assert bool(state["scaler"]) == (dtype == "float16")
