"""The prepared GPU check (bench/gpu.py) without a GPU: its dry run lists and validates what it would run, a broken
config is caught before any GPU time is spent, it refuses to run without CUDA, and its figures are read right from
run folders."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from bench import gpu
from bench.random_models import SHAPES, model_config, save_random_model, shape_tokenizer
from playground.train.config import ConfigError


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[str, Path]:
    """(the dry run's output, its --out folder) with the default models and settings."""
    out = tmp_path_factory.mktemp("gpu-dry")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert gpu.main(["--dry-run", "--out", str(out)]) == 0
    return printed.getvalue(), out


def test_dry_run_lists_every_stage_of_every_model_with_its_command(dry_run):
    text, out = dry_run
    for key in gpu.DEFAULT_MODELS:
        for stage in gpu.STAGES:
            config = out / "app" / "runs" / f"gpu-{key}-{stage}" / "config.yaml"
            assert f"`python -m playground.train {stage} {config}`" in text
        assert f"{key} vs {key} + gpu-{key}-sft" in text  # the Compare step
    assert text.count(" — validated") == len(gpu.DEFAULT_MODELS) * len(gpu.STAGES)
    assert not (out / "models" / "qwen2.5-0.5b").exists()  # a dry run builds on the meta device, saves nothing


def test_dry_run_builds_the_real_shapes_with_their_published_parameter_counts(dry_run):
    text, _ = dry_run
    assert "Qwen2ForCausalLM, random weights (bfloat16), 494,032,768 parameters (published: 494,032,768 ✓)" in text
    assert "Gemma3ForCausalLM, random weights (bfloat16), 268,098,176 parameters (published: 268,098,176 ✓)" in text
    assert "vocabulary 151,936 ≥ tokenizer" in text and "vocabulary 262,144 ≥ tokenizer" in text


def test_the_written_configs_are_the_gpu_recipes_cut_to_the_check_and_chained(dry_run):
    _, out = dry_run
    runs = out / "app" / "runs"
    configs = {stage: gpu.validate({stage: runs / f"gpu-qwen2.5-0.5b-{stage}" / "config.yaml"})[stage]
               for stage in gpu.STAGES}
    for stage, cfg in configs.items():
        assert cfg.quantization == "4bit" and cfg.gradient_checkpointing and cfg.eval_fraction == 0.0
        assert cfg.base_model == str(out / "models" / "qwen2.5-0.5b")
        assert cfg.max_steps == cfg.save_steps == (3 if stage == "ppo" else 8) + 2  # timed + warm-up, one save
        assert "votes" not in cfg.datasets
    assert configs["sft"].max_examples == 8 * 2 * 10  # batch × accumulation × steps: only what the steps read
    assert configs["reward"].sft_run == configs["dpo"].sft_run == configs["ppo"].sft_run == "gpu-qwen2.5-0.5b-sft"
    assert configs["ppo"].reward_run == "gpu-qwen2.5-0.5b-reward"
    assert configs["ppo"].response_length == 64 and configs["ppo"].batch_size == 8  # the recipe's


def test_a_broken_config_is_caught_by_the_stage_validation(tmp_path):
    plan = gpu.make_plan(SHAPES["tiny"], tmp_path, steps=2, ppo_steps=1, warmup=1)
    paths = gpu.write_configs(plan)
    assert set(gpu.validate(paths)) == set(gpu.STAGES)
    data = yaml.safe_load(paths["ppo"].read_text())
    paths["ppo"].write_text(yaml.safe_dump(data | {"mini_batch_size": 3}))  # doesn't divide batch_size 8
    with pytest.raises(ConfigError) as caught:
        gpu.validate(paths)
    assert caught.value.field == "mini_batch_size"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_it_refuses_to_run_and_says_why(tmp_path, capsys):
    assert gpu.main(["--out", str(tmp_path)]) == 2
    assert "No CUDA GPU here" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing built or trained
    with pytest.raises(SystemExit):  # --cpu is only for the tiny flow check
        gpu.main(["--cpu", "--models", "qwen2.5-0.5b"])


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused():
    tokenizer, _ = shape_tokenizer(SHAPES["tiny"])
    small = dataclasses.replace(SHAPES["tiny"], config=SHAPES["tiny"].config | {"vocab_size": 64})
    with pytest.raises(ValueError, match="more than the model's vocabulary of 64"):
        model_config(small, tokenizer)


def test_a_saved_random_model_is_a_catalog_model(tmp_path, settings):
    from playground.models.catalog import resolve_choice
    from playground.models.loading import LoadOptions, load

    record = save_random_model(SHAPES["tiny"], tmp_path / "tiny")
    assert json.loads((tmp_path / "tiny" / "bench-model.json").read_text()) == record
    loaded = load(resolve_choice(str(tmp_path / "tiny"), []), settings, LoadOptions())
    assert loaded.model.config.vocab_size == 512 and loaded.tokenizer.pad_token_id is not None
    assert record["parameters"] == sum(p.numel() for p in loaded.model.parameters())


# ------------------------------------------------------------------------------------------ reading run folders


def _run(folder: Path, rows: list[dict], config: dict | None = None, weights: dict | None = None) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "config.yaml").write_text(yaml.safe_dump(config or {}))
    (folder / "adapter").mkdir()
    save_file(weights or {"lora_A": torch.zeros(2, 2), "lora_B": torch.zeros(2, 2)},
              str(folder / "adapter" / "adapter_model.safetensors"))
    return folder


def test_trl_figures_time_the_steps_after_the_warm_up_and_prefer_the_allocated_and_reserved_peaks(tmp_path):
    t = time.time()
    # tokens seen = tokens_per_s × elapsed_s: 100 at step 1, 300 at step 2, 700 at step 3
    rows = [{"step": 1, "time": t, "elapsed_s": 1.0, "tokens_per_s": 100.0, "loss": 2.0, "gpu_memory_gb": 1.0,
             "gpu_allocated_gb": 1.5, "gpu_reserved_gb": 2.0},
            {"step": 2, "time": t + 2, "elapsed_s": 3.0, "tokens_per_s": 100.0, "loss": 1.9, "gpu_memory_gb": 1.2,
             "gpu_allocated_gb": 1.4, "gpu_reserved_gb": 2.5},
            {"step": 3, "time": t + 4, "elapsed_s": 5.0, "tokens_per_s": 140.0, "loss": 1.8, "gpu_memory_gb": 1.2},
            {"step": 3, "time": t + 5, "elapsed_s": 6.0, "train_loss": 1.9, "gpu_memory_gb": 1.2}]  # the summary
    figures = gpu.read_figures("sft", _run(tmp_path / "sft", rows), warmup=1)
    assert (figures.allocated_gb, figures.reserved_gb) == (1.5, 2.5)
    assert figures.s_per_step == pytest.approx(2.0)
    assert figures.tokens_per_s == pytest.approx((700 - 100) / 4.0)
    assert figures.fp32 is True and not figures.error

    older = [{k: v for k, v in r.items() if not k.startswith("gpu_") or k == "gpu_memory_gb"} for r in rows]
    figures = gpu.read_figures("sft", _run(tmp_path / "older", older), warmup=1)
    assert (figures.allocated_gb, figures.reserved_gb) == (1.2, None)  # torch's peak allocated; no reserved figure

    figures = gpu.read_figures("sft", _run(tmp_path / "short", rows[:1]), warmup=1)
    assert figures.s_per_step is None and "none after the 1 warm-up" in figures.error


def test_ppo_tokens_are_the_answers_sampled_and_its_value_weights_are_checked_too(tmp_path):
    from safetensors.torch import save_file

    t = time.time()
    rows = [{"step": s, "time": t + 10 * s, "elapsed_s": 10.0 * s, "loss": 0.1, "response_length": 50.0 + s,
             "gpu_memory_gb": 3.0} for s in (1, 2, 3)]
    run = _run(tmp_path / "ppo", rows, {"batch_size": 8})
    checkpoint = run / "checkpoints" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    save_file({"value_head.weight": torch.zeros(1, 4, dtype=torch.bfloat16)}, str(checkpoint / "value.safetensors"))
    (checkpoint / "state.json").write_text("{}")  # what makes a PPO checkpoint complete (RunFolder.last_checkpoint)
    figures = gpu.read_figures("ppo", run, warmup=1)
    assert figures.s_per_step == pytest.approx(10.0)
    assert figures.tokens_per_s == pytest.approx((52 * 8 + 53 * 8) / 20.0)
    assert figures.trainable == {"F32": 2, "BF16": 1} and figures.fp32 is False
    table = gpu.table({"qwen2.5-0.5b": ({}, {"ppo": figures})})
    assert "| qwen2.5-0.5b | PPO | 3.00 | n/a | 10.000 | 42 | **no**: 1 BF16, 2 F32 |" in table
    assert "≤ 8 GB: **met**" in table  # judged on the allocated peak when no reserved one is logged


def test_a_failed_stage_skips_the_stages_that_start_from_it(tmp_path, monkeypatch):
    plan = gpu.make_plan(SHAPES["tiny"], tmp_path, steps=2, ppo_steps=1, warmup=1)
    monkeypatch.setattr(gpu, "save_random_model", lambda shape, folder: {"shape": shape.key})

    def run_stage(plan, stage, timeout):
        raise RuntimeError(f"{stage}: failed: Out of memory.\nlog tail")

    monkeypatch.setattr(gpu, "run_stage", run_stage)
    _, rows = gpu.measure(plan, timeout=1)
    assert rows["sft"].error == "sft: failed: Out of memory."
    assert {stage: rows[stage].error for stage in ("reward", "dpo", "ppo", "compare")} == \
        dict.fromkeys(("reward", "dpo", "ppo", "compare"), "skipped: sft failed")
    assert "| tiny | SFT | sft: failed: Out of memory. |" in gpu.table({"tiny": ({}, rows)})
