"""The shipped DeepSpeed configs (assets/accelerate) and the 7B QLoRA recipe that names them: each config is what
``accelerate launch --config_file`` reads — parsed by accelerate's own launcher into the variables the trainer's
DeepSpeed plugin is built from — with the ZeRO stage, offload and bf16 the recipe needs; and under ZeRO-3 a 4-bit
base stores its packed weights in the compute dtype (``bnb_4bit_quant_storage``) with the same numbers.

DeepSpeed itself (a CUDA build) is not installed here: accelerate's config classes and its ``DeepSpeedPlugin`` check
the configs without it. A run under DeepSpeed needs GPUs and has not been tried here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from playground.core.distributed import deepspeed_zero_stage
from playground.train.config import load

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {2: ROOT / "assets/accelerate/deepspeed-zero2.yaml", 3: ROOT / "assets/accelerate/deepspeed-zero3.yaml"}
RECIPE = ROOT / "assets/recipes/sft-qwen-7b-qlora-deepspeed.yaml"


def launcher_environment(config: Path, processes: int = 4) -> dict[str, str]:
    """The variables ``accelerate launch --config_file CONFIG --num_processes N -m playground.train ...`` gives each
    process, from accelerate's own argument parsing and DeepSpeed environment (as its launcher builds them)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "--num_processes", str(processes),
                                               "-m", "playground.train", "sft", str(RECIPE)])
    args, defaults, _ = _validate_launch_command(args)
    assert args.use_deepspeed and args.num_processes == processes  # the command line's count wins over the file's
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    return {key: value for key, value in env.items() if key.startswith("ACCELERATE_")}


@pytest.mark.parametrize("stage", [2, 3])
def test_each_config_is_an_accelerate_deepspeed_config_for_bf16_qlora(stage):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(CONFIGS[stage]))
    assert isinstance(config, ClusterConfig) and config.distributed_type == DistributedType.DEEPSPEED
    assert config.mixed_precision == "bf16" and not config.use_cpu and config.num_machines == 1
    deepspeed = config.deepspeed_config
    assert deepspeed["zero_stage"] == stage
    assert deepspeed["offload_optimizer_device"] == deepspeed["offload_param_device"] == "none"  # 7B QLoRA fits
    # ZeRO-3 splits the base after it loads (each GPU must fit the 4-bit base once: transformers skips zero.Init for
    # a quantized model, and the model is loaded before the trainer exists); it gathers the adapter when saved
    assert deepspeed["zero3_init_flag"] is (stage == 3)
    assert deepspeed.get("zero3_save_16bit_model", False) is (stage == 3)
    # batch sizes, accumulation and clipping are left to the trainer (the run's config): "auto" below
    assert not {"gradient_accumulation_steps", "gradient_clipping"} & set(deepspeed)


@pytest.mark.parametrize("stage", [2, 3])
def test_the_launcher_hands_each_process_the_stage_the_plugin_and_the_loader_read(stage, monkeypatch):
    from accelerate.utils import DeepSpeedPlugin

    env = launcher_environment(CONFIGS[stage])
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert deepspeed_zero_stage() == 0  # not launched so
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert deepspeed_zero_stage() == stage
    plugin = DeepSpeedPlugin()  # as the trainer builds it, from those variables
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage and zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"  # the run's batch_size
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
    assert plugin.zero3_init_flag is (stage == 3)
    assert zero.get("stage3_gather_16bit_weights_on_model_save", False) is (stage == 3)


def test_the_7b_qlora_recipe_names_both_configs_and_validates():
    text = RECIPE.read_text()
    commands = [line.strip("# ").strip() for line in text.splitlines() if "accelerate launch" in line]
    named = [re.search(r"--config_file (\S+)", line).group(1) for line in commands]
    assert named == ["assets/accelerate/deepspeed-zero2.yaml", "assets/accelerate/deepspeed-zero3.yaml"]
    assert all((ROOT / name).is_file() for name in named)
    assert all(line.endswith(f"-m playground.train sft assets/recipes/{RECIPE.name} --run-dir "
                             "~/.local/share/rlhf-playground/runs/sft-qwen-7b-qlora") for line in commands)
    config = load("sft", RECIPE)
    assert config.name == yaml.safe_load(text)["name"] and config.base_model == "Qwen/Qwen2.5-7B"
    assert config.quantization == "4bit" and config.gradient_checkpointing and config.processes == 1


@pytest.mark.slow  # two 4-bit loads: ~25 s on a busy CPU
def test_under_zero3_a_4bit_base_stores_its_weights_in_the_compute_dtype_with_the_same_numbers(
        settings, tiny_base_4bit, monkeypatch):
    import bitsandbytes as bnb

    from playground.models.catalog import ModelSpec
    from playground.models.loading import LoadOptions, build_model, quantization_config

    assert quantization_config(torch.bfloat16).bnb_4bit_quant_storage == torch.uint8  # one GPU, ZeRO-2: bytes
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    spec, options = ModelSpec(str(tiny_base_4bit)), LoadOptions(quant="4bit")
    plain, _ = build_model(spec, settings, options, training=True)
    for key, value in launcher_environment(CONFIGS[3]).items():
        monkeypatch.setenv(key, value)
    assert quantization_config(torch.bfloat16).bnb_4bit_quant_storage == torch.bfloat16
    zero3, _ = build_model(spec, settings, options, training=True)
    layers = [m for m in zero3.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and {m.weight.dtype for m in layers} == {torch.float32}  # the compute dtype on a CPU
    assert {m.weight.dtype for m in plain.modules() if isinstance(m, bnb.nn.Linear4bit)} == {torch.uint8}
    with torch.no_grad():
        assert torch.allclose(zero3(ids).logits, plain(ids).logits, atol=1e-5)


def test_under_zero3_the_adapter_is_saved_from_the_trainable_weights_gathered_from_every_process(
        settings, tiny_base, tmp_path, monkeypatch):
    """Under ZeRO-3 each process holds a shard of every LoRA weight, so the adapter is saved from the trainable
    weights the DeepSpeed engine gathers — the stage read from the engine's own config, as transformers' Trainer
    does, so a DeepSpeed JSON (no ACCELERATE_DEEPSPEED_ZERO_STAGE) counts too, and the frozen base is not gathered.
    A stand-in engine hands what the gather would give: the LoRA B's filled (this process's own are still zeros)."""
    import types

    from peft import get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from playground.runs.run_folder import RunFolder
    from playground.train.common import gathered_weights, lora_config, save_adapter
    from playground.train.config import SFTConfig

    cfg = SFTConfig(name="zero3", base_model=str(tiny_base), lora_r=4, lora_alpha=8)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base), lora_config(cfg, "CAUSAL_LM"))
    trainable = {key: torch.full_like(value, 0.5) if "lora_B" in key else value.detach().clone()
                 for key, value in model.named_parameters() if value.requires_grad}
    asked = []

    def consolidated(exclude_frozen_parameters: bool = False) -> dict[str, torch.Tensor]:
        asked.append(exclude_frozen_parameters)
        return trainable if exclude_frozen_parameters else dict(model.state_dict())

    def trainer(stage: int, enabled: bool = True) -> types.SimpleNamespace:
        engine = types.SimpleNamespace(config={"zero_optimization": {"stage": stage}},
                                       _zero3_consolidated_16bit_state_dict=consolidated)
        return types.SimpleNamespace(is_deepspeed_enabled=enabled, deepspeed=engine)

    assert gathered_weights(types.SimpleNamespace()) is None  # no DeepSpeed: each process holds the whole adapter
    assert gathered_weights(trainer(3, enabled=False)) is None and gathered_weights(trainer(2)) is None
    assert asked == []  # ZeRO-2 holds whole weights: nothing to gather
    weights = gathered_weights(trainer(3))
    assert asked == [True] and weights is trainable  # only the trainable weights, never the frozen base
    assert trainable and all("lora_" in key for key in trainable)
    folder = RunFolder(tmp_path / "zero3")
    save_adapter(model, cfg, folder, state_dict=weights)
    saved = load_file(folder.adapter / "adapter_model.safetensors")
    lora_b = [key for key in saved if "lora_B" in key]
    assert lora_b and all(torch.all(saved[key] == 0.5) for key in lora_b)
    assert len(saved) == len(trainable)  # every trainable weight, from the trainable-only dict


def test_the_zero_stage_of_a_deepspeed_json_named_by_the_accelerate_config_is_read(tmp_path, monkeypatch):
    """An accelerate config may name a DeepSpeed JSON (``deepspeed_config_file``) instead of giving ``zero_stage``:
    then the launcher sets no ACCELERATE_DEEPSPEED_ZERO_STAGE, and the stage (which the 4-bit load depends on) is
    the JSON's."""
    deepspeed_json = tmp_path / "ds.json"
    deepspeed_json.write_text('{"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto"}')
    config = tmp_path / "accelerate.yaml"
    config.write_text(yaml.safe_dump({
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "DEEPSPEED", "mixed_precision": "bf16",
        "num_machines": 1, "num_processes": 2, "machine_rank": 0, "use_cpu": False,
        "deepspeed_config": {"deepspeed_config_file": str(deepspeed_json), "zero3_init_flag": True}}))
    env = launcher_environment(config)
    assert "ACCELERATE_DEEPSPEED_ZERO_STAGE" not in env
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == str(deepspeed_json)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert deepspeed_zero_stage() == 3
    from playground.models.loading import quantization_config

    assert quantization_config(torch.bfloat16).bnb_4bit_quant_storage == torch.bfloat16  # ZeRO-3's 4-bit storage
    deepspeed_json.write_text('{"zero_optimization": {"stage": 2}}')
    assert deepspeed_zero_stage() == 2
    assert quantization_config(torch.bfloat16).bnb_4bit_quant_storage == torch.uint8
