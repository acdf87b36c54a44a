"""Reward stage: learn r(x, y) from preference pairs with TRL's RewardTrainer; setup → train → save.

The lecture's step two. The model is the base (4-bit on CUDA) as a sequence classifier with one output, a LoRA
adapter, and a score head trained with it (PEFT ``modules_to_save``: a fresh head is random, and TRL's default
LoRA targets would leave it untrained). The loss is Bradley–Terry's: −log σ(r(x, y_chosen) − r(x, y_rejected)).

Pairs are tokenized here with :func:`playground.data.preference_pairs.encode` — the same function the Reward tab scores
with — and the split is written into the run folder (``data/train.jsonl``, ``data/eval.jsonl``), so a resumed run
trains on the same pairs and the held-out accuracy can be recomputed later.
"""

from __future__ import annotations

from typing import Any

from playground.core.settings import Settings
from playground.data.preference_pairs import Pair, encode_answer, encode_prompt, fit, run_pairs
from playground.runs.run_folder import RunFolder
from playground.train import trl_stage
from playground.train.callbacks import RunCallback
from playground.train.common import load_base, lora_config, settings_for, sft_adapter
from playground.train.config import RewardConfig


def tokenized(pairs: list[Pair], tokenizer: Any, cfg: RewardConfig) -> Any:
    """A ``datasets.Dataset`` of chosen_ids / rejected_ids (+ margin when used) ready for RewardTrainer, and each
    pair's ``length`` (its longer sequence) for grouping pairs by length."""
    from datasets import Dataset

    rows = []
    for pair in pairs:
        prompt = encode_prompt(tokenizer, pair.messages, pair.system, cfg.prompt_format)
        chosen = sum(fit(prompt, encode_answer(tokenizer, pair.chosen), cfg.max_length), [])
        rejected = sum(fit(prompt, encode_answer(tokenizer, pair.rejected), cfg.max_length), [])
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected, "length": max(len(chosen), len(rejected))}
                    | ({"margin": pair.margin} if cfg.use_margin else {}))
    return Dataset.from_list(rows)


def build_model(cfg: RewardConfig, settings: Settings) -> tuple[Any, Any, dict[str, Any], Any]:
    """(model, tokenizer, precision flags, peft_config): the base as a one-output classifier; a fresh LoRA config,
    or — when starting from an SFT run — a PEFT model whose LoRA weights start as that run's (peft_config None)."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    start = sft_adapter(cfg, settings)
    model, tokenizer, precision = load_base(cfg, settings, head="score")
    if start is None:
        return model, tokenizer, precision, lora_config(cfg, "SEQ_CLS")
    sft = LoraConfig.from_pretrained(str(start))
    config = LoraConfig(r=sft.r, lora_alpha=sft.lora_alpha, lora_dropout=sft.lora_dropout, task_type="SEQ_CLS",
                        target_modules=sft.target_modules, modules_to_save=["score"])
    model = get_peft_model(model, config)
    fresh = get_peft_model_state_dict(model)  # the new score head is not in the SFT adapter: keep it as it is
    weights = load_file(str(start / "adapter_model.safetensors"))
    absent = [k for k in fresh if "lora_" in k and k not in weights]
    if absent:
        raise ValueError(f"The SFT adapter in {start} doesn't fit this model ({len(absent)} LoRA weights missing, "
                         f"e.g. {absent[0]}).")
    set_peft_model_state_dict(model, fresh | weights)
    print(f"LoRA weights start from the SFT adapter {start} (rank {sft.r}; the rank fields are ignored)", flush=True)
    return model, tokenizer, precision, None


def build_trainer(cfg: RewardConfig, folder: RunFolder, resume: bool = False) -> tuple[Any, RunCallback]:
    """The RewardTrainer for ``cfg`` (model, the run's pair split, callback), ready to train, its score head trained
    and kept float32 with the LoRA (:func:`trl_stage.build_trainer`)."""
    from trl import RewardConfig as TrlRewardConfig
    from trl import RewardTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision, peft_config = build_model(cfg, settings)
    train_pairs, eval_pairs = run_pairs(cfg, settings, folder.path / "data", resume)
    print(f"{len(train_pairs)} training pairs, {len(eval_pairs)} held out for accuracy", flush=True)
    train, evaluation = tokenized(train_pairs, tokenizer, cfg), tokenized(eval_pairs, tokenizer, cfg) \
        if eval_pairs else None
    return trl_stage.build_trainer(
        RewardTrainer, TrlRewardConfig, cfg, folder, model=model, tokenizer=tokenizer, precision=precision,
        peft_config=peft_config, train=train, evaluation=evaluation,
        center_rewards_coefficient=cfg.center_rewards_coefficient or None,
        # Batches of pairs of similar lengths waste less compute on padding (random batches of the bundled pairs
        # were ~38 % padding: see docs/BENCHMARKS.md, reward). Only the order changes. The sampler reads the
        # `length` column, which RewardTrainer would drop (it keeps chosen_ids / rejected_ids / margin); its
        # collator ignores other columns.
        train_sampling_strategy="group_by_length", remove_unused_columns=False)


def main(cfg: RewardConfig, folder: RunFolder, resume: bool = False) -> str:
    """Train a reward model in ``folder``; returns the final state ("finished" or "stopped"). Held-out figures are
    measured at the last step too."""
    return trl_stage.run_stage(*build_trainer(cfg, folder, resume), cfg, folder, resume, final_eval=True,
                               max_length=cfg.max_length, num_labels=1)
