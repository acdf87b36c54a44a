"""SFT stage: instruction-tune a LoRA adapter (QLoRA on CUDA) with TRL's SFTTrainer; setup → train → save.

Reads top to bottom like a recipe. Each example becomes a (prompt, completion) pair rendered exactly as the
Compare tab prompts the tuned model (``prompt_format``), and by default only the completion tokens are learned.
The final adapter goes to ``<run>/adapter`` with the base named as the user picked it (``gemma-3-270m``), so the
model lists show it as ``gemma-3-270m + <run name>``.
"""

from __future__ import annotations

import random
from typing import Any

from playground.core.settings import Settings
from playground.data.instructions import load_examples, resolve
from playground.models.prompting import render
from playground.runs.run_folder import RunFolder
from playground.train import trl_stage
from playground.train.callbacks import RunCallback
from playground.train.common import load_base, lora_config, settings_for
from playground.train.config import SFTConfig


def build_dataset(cfg: SFTConfig, settings: Settings, tokenizer: Any) -> tuple[Any, Any]:
    """(train, eval) ``datasets.Dataset`` of prompt/completion text; eval is None when eval_fraction is 0."""
    from datasets import Dataset

    examples = [e for name in cfg.datasets for e in load_examples(resolve(name, settings, for_training=True))]
    random.Random(cfg.seed).shuffle(examples)  # bundled files are grouped by task
    if cfg.max_examples:
        examples = examples[: cfg.max_examples]
    rows = [{"prompt": render(e.messages, cfg.prompt_format, "base", tokenizer).text if e.messages else "",
             "completion": e.completion} for e in examples]
    held = int(len(rows) * cfg.eval_fraction)
    train = Dataset.from_list(rows[held:])
    return train, (Dataset.from_list(rows[:held]) if held else None)


def build_trainer(cfg: SFTConfig, folder: RunFolder) -> tuple[Any, RunCallback]:
    """The SFTTrainer for ``cfg`` (model, data, callback), ready to train (:func:`trl_stage.build_trainer`)."""
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision = load_base(cfg, settings)
    train, evaluation = build_dataset(cfg, settings, tokenizer)
    print(f"{len(train)} training examples, {len(evaluation) if evaluation else 0} held out for eval loss",
          flush=True)
    return trl_stage.build_trainer(
        SFTTrainer, TrlSFTConfig, cfg, folder, model=model, tokenizer=tokenizer, precision=precision,
        peft_config=lora_config(cfg, "CAUSAL_LM"), train=train, evaluation=evaluation,
        completion_only_loss=cfg.completion_only_loss,
        # Batches of similar lengths waste less compute on padding (instructions are 18–101 tokens; random batches
        # were ~30 % padding: see docs/BENCHMARKS.md, SFT). Only the order changes, not what is learned.
        train_sampling_strategy="group_by_length")


def main(cfg: SFTConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run SFT in ``folder``; returns the final state ("finished" or "stopped")."""
    return trl_stage.run_stage(*build_trainer(cfg, folder), cfg, folder, resume)
