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
from playground.train.callbacks import RunCallback
from playground.train.common import (
    keep_trainable_fp32,
    load_base,
    lora_config,
    run_training,
    save_adapter,
    settings_for,
    trainer_kwargs,
    uses_4bit,
)
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


def trainer_args(cfg: SFTConfig, folder: RunFolder, precision: dict[str, Any], has_eval: bool) -> Any:
    from trl import SFTConfig as TrlSFTConfig

    return TrlSFTConfig(
        completion_only_loss=cfg.completion_only_loss,
        # Batches of similar lengths waste less compute on padding (instructions are 18–101 tokens; random batches
        # were ~30 % padding: see docs/BENCHMARKS.md, SFT). Only the order changes, not what is learned.
        train_sampling_strategy="group_by_length",
        **trainer_kwargs(cfg, folder, precision, has_eval))


def build_trainer(cfg: SFTConfig, folder: RunFolder) -> tuple[Any, RunCallback]:
    """The SFTTrainer for ``cfg`` (model, data, callback), ready to train, with every trainable parameter in float32
    (:func:`keep_trainable_fp32`)."""
    from trl import SFTTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision = load_base(cfg, settings)
    train, evaluation = build_dataset(cfg, settings, tokenizer)
    print(f"{len(train)} training examples, {len(evaluation) if evaluation else 0} held out for eval loss",
          flush=True)
    callback = RunCallback(folder)
    trainer = SFTTrainer(model=model, args=trainer_args(cfg, folder, precision, evaluation is not None),
                         train_dataset=train, eval_dataset=evaluation, processing_class=tokenizer,
                         peft_config=lora_config(cfg, "CAUSAL_LM"), callbacks=[callback])
    keep_trainable_fp32(trainer.model)
    return trainer, callback


def main(cfg: SFTConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run SFT in ``folder``; returns the final state ("finished" or "stopped")."""
    trainer, callback = build_trainer(cfg, folder)
    run_training(trainer, folder, resume)
    save_adapter(trainer.model, cfg, folder, quantized=uses_4bit(cfg))
    return "stopped" if callback.stopped else "finished"
