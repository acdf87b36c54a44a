"""Exported preference data trains as it is: TRL's RewardTrainer and DPOTrainer each take one step on a tiny model,
reading the JSONL file and the ``datasets`` folder the export wrote."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from playground.ratings.export import export_all
from playground.ratings.store import Store
from tests.preference_records import record


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """An export folder of eight votes: system prompts, strengths (margins) and plain votes mixed."""
    folder = tmp_path_factory.mktemp("trl")
    store = Store(folder / "ratings.db")
    store.insert_many([
        record("a" if i % 3 else "b", prompt=f"Explain the moon landing {i}.", system="Be brief." if i % 2 else "",
               strength=(i % 5) + 1 if i % 2 else None, answer_b="Once upon a time there was a small robot.")
        for i in range(8)
    ])
    return export_all(store, folder / "exports").folder


@pytest.fixture(scope="module")
def reward_model(tiny_chat, tmp_path_factory) -> Path:
    """The tiny chat model's config with a one-label score head (a sequence classifier), saved with its tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat)
    config = AutoConfig.from_pretrained(tiny_chat, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("reward-model")
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load(exported: Path, name: str, kind: str, cache: Path):
    """The exported dataset ``name`` read back with ``datasets``, from its JSONL file or its save_to_disk folder."""
    from datasets import load_dataset, load_from_disk

    if kind == "jsonl":
        return load_dataset("json", data_files=str(exported / f"{name}.jsonl"), split="train", cache_dir=str(cache))
    return load_from_disk(str(exported / name))


def one_step(tmp_path: Path, config_class) -> object:
    return config_class(output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, max_steps=1,
                        per_device_train_batch_size=2, report_to=[], save_strategy="no", logging_steps=1)


@pytest.mark.parametrize("name, kind", [("preference", "jsonl"), ("preference_text", "folder")])
def test_reward_trainer_takes_a_step_with_margins(exported, reward_model, tmp_path, name, kind):
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    trainer = RewardTrainer(model=str(reward_model), args=one_step(tmp_path, RewardConfig),
                            train_dataset=load(exported, name, kind, tmp_path / "cache"),
                            processing_class=AutoTokenizer.from_pretrained(reward_model))
    assert "margin" in trainer.train_dataset.column_names  # the strength reaches the loss
    assert math.isfinite(trainer.train().training_loss)


@pytest.mark.parametrize("name, kind", [("preference", "folder"), ("preference_text", "jsonl")])
def test_dpo_trainer_takes_a_step(exported, tiny_chat, tmp_path, name, kind):
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    trainer = DPOTrainer(model=str(tiny_chat), args=one_step(tmp_path, DPOConfig),
                         train_dataset=load(exported, name, kind, tmp_path / "cache"),
                         processing_class=AutoTokenizer.from_pretrained(tiny_chat))
    assert math.isfinite(trainer.train().training_loss)
