"""Run configs: defaults, every bad value named by its field, YAML round trip, shipped recipes, the CLI."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from playground.core.settings import Settings
from playground.data import prompt_sets
from playground.data.instructions import load_examples, resolve
from playground.data.preference_pairs import PreferenceDataError, load_pairs
from playground.runs.run_folder import RunFolder
from playground.train import group_rl
from playground.train.config import (
    CONFIGS,
    STAGES,
    ConfigError,
    DPOConfig,
    RewardConfig,
    SFTConfig,
    from_dict,
    help_text,
    load,
    settings_help,
)
from playground.ui.train_tab import recipes

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_every_field_has_help():
    config = SFTConfig()
    assert config.base_model == "gemma-3-270m" and config.datasets == ["instructions"]
    for field in dataclasses.fields(SFTConfig):
        assert help_text(SFTConfig, field.name), field.name


@pytest.mark.parametrize("field, value, message", [
    ("name", "../escape", "letters, digits"),
    ("name", "", "letters, digits"),
    ("lora_r", 0, "between 1 and 1024"),
    ("lora_r", "8", "whole number"),
    ("lora_dropout", 1.0, r"\[0, 1\)"),
    ("learning_rate", 0.5, "0.01"),
    ("epochs", 0.0, "max_steps is 0"),
    ("batch_size", 0, "between 1 and 1024"),
    ("max_length", 8, "between 16"),
    ("eval_fraction", 0.9, r"\[0, 0.5\)"),
    ("datasets", [], "at least one"),
    ("quantization", "8bit", "auto, 4bit or none"),
    ("completion_only_loss", "yes", "true or false"),
    ("save_steps", 0, "at least 1"),
])
def test_impossible_values_name_their_field(field, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        SFTConfig(**{field: value})
    assert caught.value.field == field


def test_unknown_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown setting") as caught:
        from_dict("sft", {"lora_rank": 8})
    assert caught.value.field == "lora_rank"
    with pytest.raises(ConfigError, match="unknown stage"):
        from_dict("rlhf", {})
    with pytest.raises(ConfigError, match="unknown setting") as caught:
        from_dict("sft", {"beta": 0.1})  # a DPO setting is not an SFT one
    assert caught.value.field == "beta"


def test_yaml_round_trip(tmp_path):
    config = SFTConfig(name="x", lora_r=8, epochs=2, datasets=["a", "b"])
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    assert load("sft", tmp_path / "config.yaml") == config
    assert isinstance(load("sft", tmp_path / "config.yaml").epochs, float)  # 2 in YAML widens to 2.0


@pytest.mark.parametrize("name", sorted(recipes()))
def test_every_recipe_validates_and_names_its_command(name):
    path = recipes()[name]
    stage = name.split("-")[0]
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# python -m playground.train {stage} assets/recipes/") and path.name in first
    config = load(stage, path)
    assert config.name == yaml.safe_load(path.read_text())["name"] and config.stage == stage
    for dataset in config.datasets:
        if stage == "sft":
            assert load_examples(resolve(dataset, None, for_training=True))
        elif stage == "ppo" or (stage in ("grpo", "rloo") and config.reward_source == "reward_run"):
            assert prompt_sets.load_prompts(dataset, None)
        elif stage in ("grpo", "rloo"):  # the checks: held-out task examples with their expected answers
            assert group_rl.load_tasks(config, Settings())
        elif dataset != "votes":  # votes exist once the user has rated
            assert load_pairs(dataset, None)
    sft_run = getattr(config, "sft_run", "")
    if sft_run:  # a later stage starts from an SFT recipe's run on the same base
        assert load("sft", recipes()[f"{sft_run}-gpu"]).base_model == config.base_model
    reward_run = getattr(config, "reward_run", "")
    if reward_run:  # PPO maximises a reward recipe's run on the same base
        reward_recipe = recipes().get(reward_run) or recipes()[f"{reward_run}-gpu"]
        assert load("reward", reward_recipe).base_model == config.base_model


def test_there_are_recipes_for_cpu_and_gpu_for_every_stage():
    assert {f"{stage}-{kind}" for stage in STAGES for kind in ("gemma-cpu-demo", "qwen-0.5b-qlora-gpu")} \
        <= set(recipes())
    assert set(recipes("reward")) == {"reward-gemma-cpu-demo", "reward-qwen-0.5b-qlora-gpu"}


def test_every_stage_has_help_for_every_field_and_its_own_defaults():
    for stage, config_class in CONFIGS.items():
        config = config_class()
        assert config.stage == stage and config.name.startswith(stage)
        for field in dataclasses.fields(config_class):
            assert help_text(config_class, field.name), (stage, field.name)
    assert RewardConfig().datasets == DPOConfig().datasets == ["preferences"]
    assert "reward model's name" in help_text(RewardConfig, "name")  # a subclass's own help wins


@pytest.mark.parametrize("stage", STAGES)
def test_help_lives_in_the_field_metadata_as_hf_argument_parser_reads_it(stage):
    """Help is data on each field, not source text: it survives a build without .py files, and transformers'
    HfArgumentParser (which reads ``metadata["help"]``) prints the same text as the Train tab."""
    from transformers import HfArgumentParser

    config_class = CONFIGS[stage]
    parser_help = {action.dest: action.help for action in HfArgumentParser(config_class)._actions}
    for field in dataclasses.fields(config_class):
        assert field.metadata["help"] == help_text(config_class, field.name) == parser_help[field.name]
    assert "config.py" not in help_text(config_class, "name")


def test_help_text_is_read_without_the_source(monkeypatch):
    import inspect

    def no_source(_object):
        raise OSError("could not get source code")  # what inspect says where only .pyc files ship

    monkeypatch.setattr(inspect, "getsource", no_source)
    assert help_text(DPOConfig, "beta").startswith("Strength of the implicit KL penalty: small β lets the policy")
    assert help_text(SFTConfig, "no_such_field") == ""


def test_help_is_one_line_of_text_as_the_docstrings_gave_it():
    """The texts moved from docstrings under each field: wrapped lines join with one space, as the form shows them."""
    assert help_text(SFTConfig, "weight_decay") == (
        "AdamW's decoupled weight decay on the adapter (0 = none). It pulls the LoRA weights towards zero, i.e. "
        "towards the bare base model: for PPO that is towards the reference when the policy starts fresh, and away "
        "from it when the policy starts from an SFT adapter.")
    assert help_text(RewardConfig, "datasets").startswith('Preference pairs: "votes" (people\'s votes in this app')
    assert help_text(RewardConfig, "epochs") == "Passes over the pairs (ignored when max_steps > 0)."
    assert help_text(SFTConfig, "epochs") == "Passes over the data (ignored when max_steps > 0)."
    for stage, config_class in CONFIGS.items():
        for field in dataclasses.fields(config_class):
            text = help_text(config_class, field.name)
            assert text == " ".join(text.split()), (stage, field.name)


def test_cli_help_lists_a_stage_settings_with_the_form_help():
    from playground.train.__main__ import settings_epilog

    assert "python -m playground.train {sft,reward,dpo,ppo,grpo,rloo,kto} --help" in settings_epilog([])
    listing = settings_help("ppo")
    assert listing == settings_epilog(["ppo", "--help"])
    flat = " ".join(listing.split())
    for field in dataclasses.fields(CONFIGS["ppo"]):
        assert f"{field.name} (" in listing and help_text(CONFIGS["ppo"], field.name) in flat, field.name
    assert "kl_coef (0.05): β: the per-token penalty" in flat and "completion_only_loss" not in flat
    done = subprocess.run([sys.executable, "-m", "playground.train", "dpo", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "dpo settings (DPOConfig):" in done.stdout
    assert help_text(DPOConfig, "loss_type") in " ".join(done.stdout.split())


@pytest.mark.parametrize("stage, field, value, message", [
    ("dpo", "beta", 0.0, r"\(0, 10\]"),
    ("dpo", "loss_type", "kto", "sigmoid, ipo or hinge"),
    ("reward", "center_rewards_coefficient", 2.0, r"\[0, 1\]"),
    ("reward", "use_margin", "yes", "true or false"),
    ("reward", "eval_fraction", 0.6, r"\[0, 0.5\)"),
])
def test_later_stages_refuse_impossible_values_by_field(stage, field, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        from_dict(stage, {field: value})
    assert caught.value.field == field


def test_cli_refuses_a_bad_config_and_records_why(tmp_path):
    (tmp_path / "config.yaml").write_text("name: ok\nlora_r: -3\n")
    done = subprocess.run([sys.executable, "-m", "playground.train", "sft", str(tmp_path / "config.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "lora_r" in done.stderr
    status = RunFolder(tmp_path).status()
    assert status["state"] == "failed" and "lora_r" in status["error"]


@pytest.mark.parametrize("error, message", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "smaller batch size"),
    (OSError(28, "No space left on device"), "disk is full"),
    (ValueError("bad thing"), "ValueError: bad thing"),
    (PreferenceDataError("There are no votes yet: rate some answers first."), "^There are no votes yet"),
])
def test_run_failures_are_explained(error, message):
    from playground.train.__main__ import _failure_message

    assert re.search(message, _failure_message(error))  # our own errors come without a class name


def test_a_base_plus_adapter_is_refused_as_base_model(settings, tiny_base, tiny_adapter):
    """A run trains a new adapter on a bare base: "base + run" as base model would silently drop the run's adapter."""
    import shutil

    from playground.train.checks import check_inputs
    from playground.ui.train_tab import base_model_choices

    shutil.copytree(tiny_adapter, settings.adapters_dir / "tuned")
    data = settings.data_dir / "mini.jsonl"
    data.write_text('{"instruction": "Say hi.", "input": "", "output": "hi"}\n' * 4)
    labels = [label for _, label in base_model_choices(settings)]
    assert "tiny-base + tuned" not in labels and "gemma-3-270m" in labels  # not offered in the form…
    common = dict(datasets=[str(data)], data_dir=str(settings.data_dir))
    for config in (SFTConfig(base_model="tiny-base + tuned", **common),
                   DPOConfig(base_model="tiny-base + tuned", **common)):
        with pytest.raises(ConfigError, match=r"plus a trained adapter. Pick the base \(.*tiny-base\)") as caught:
            check_inputs(config, settings)  # …and refused when typed
        assert caught.value.field == "base_model"
    check_inputs(SFTConfig(base_model=str(tiny_base), **common), settings)  # the bare base is fine


@pytest.mark.parametrize("damage, said", [("{not json", "can't be read"), ("[1, 2]", "holds no adapter settings"),
                                          (b"\xff\xfe", "can't be read")])
def test_a_damaged_sft_adapter_is_refused_on_its_field(settings, tiny_base, tiny_adapter, damage, said):
    """An SFT start whose adapter_config.json is broken gets a message on sft_run, not a traceback."""
    import shutil

    from playground.train.checks import check_inputs

    start = settings.runs_dir / "sft-broken" / "adapter"
    shutil.copytree(tiny_adapter, start)
    pairs = settings.data_dir / "pairs.jsonl"
    pairs.write_text('{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Berlin."}\n' * 4)
    config = DPOConfig(base_model=str(tiny_base), datasets=[str(pairs)], data_dir=str(settings.data_dir),
                       sft_run="sft-broken")
    check_inputs(config, settings)  # whole, the adapter is a fine start
    (start / "adapter_config.json").write_bytes(damage if isinstance(damage, bytes) else damage.encode())
    with pytest.raises(ConfigError, match=f"adapter_config.json {said}.*Pick another SFT run") as caught:
        check_inputs(config, settings)
    assert caught.value.field == "sft_run"
    # the model lists (Compare, Rate, the base-model picker) skip it and go on listing the others
    from playground.models.catalog import list_models

    assert "gemma-3-270m" in [e.label for e in list_models(settings)]
    assert not [e for e in list_models(settings) if "sft-broken" in e.label]
