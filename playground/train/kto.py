"""KTO stage: learn from single thumbs-up / thumbs-down ratings, no pairs needed (TRL's KTOTrainer).

Kahneman–Tversky Optimization (Ethayarajh et al. 2024): a rating says only whether one answer is good, and KTO learns
from that alone. With the implicit reward r = β·log(π(y|x) / π_ref(y|x)) (DPO's) and a reference point z — the
policy's KL from the reference, estimated on the batch from answers matched with other prompts — a desirable answer's
loss is 1 − σ(r − z) and an undesirable one's 1 − σ(z − r), each with its weight. So data that has no pairs (one
answer and a thumbs-up or down) trains a policy as DPO's pairs do.

The ratings are what History → Export writes as KTO rows (:func:`playground.ratings.export.kto_rows`): a vote's
better answer is a thumbs-up, its worse a thumbs-down. They are read as the reward and DPO stages read their pairs
(:func:`playground.data.preference_pairs.run_pairs`: votes, bundled pairs, uploads; split by pair and written into the
run folder, read back on resume), and each pair gives its two ratings, shuffled apart so that a batch's KL estimate
doesn't match an answer with its own pair's other answer. (The Data tab reads no single-rating files of its own:
its uploads are pairs.) Votes where both answers are bad, which the export writes as two thumbs-down, make no pair
and are not read here.

The policy is a LoRA adapter on the base (4-bit on CUDA); the reference is the base with the adapter switched off,
or — when starting from an SFT run — TRL's frozen copy (``ref``) of that adapter, as in DPO: one base in memory.
"""

from __future__ import annotations

import random
from typing import Any

from playground.data.preference_pairs import Pair, run_pairs
from playground.models.prompting import render
from playground.runs.run_folder import RunFolder
from playground.train import trl_stage
from playground.train.callbacks import RunCallback
from playground.train.common import settings_for
from playground.train.config import KTOConfig
from playground.train.dpo import build_model


def unpaired_rows(pairs: list[Pair], tokenizer: Any, cfg: KTOConfig) -> list[dict[str, Any]]:
    """Each pair as two KTO rows, as ``kto_rows`` labels a vote — the chosen answer ``label`` True, the rejected
    False — with the prompt rendered in the ### Instruction frame as text, or as messages that TRL renders with the
    chat template (as Compare prompts the tuned model); shuffled (seeded) so a pair's two rows part."""
    rows = []
    for pair in pairs:
        if cfg.prompt_format == "chat":
            prompt: Any = ([{"role": "system", "content": pair.system}] if pair.system else []) + pair.messages
            rows += [{"prompt": prompt, "completion": [{"role": "assistant", "content": answer.strip()}],
                      "label": label} for answer, label in ((pair.chosen, True), (pair.rejected, False))]
        else:
            text = render(pair.messages, "instruction", "base", tokenizer, system=pair.system).text
            rows += [{"prompt": text, "completion": answer.strip(), "label": label}
                     for answer, label in ((pair.chosen, True), (pair.rejected, False))]
    random.Random(cfg.seed).shuffle(rows)
    return rows


def build_trainer(cfg: KTOConfig, folder: RunFolder, resume: bool = False) -> tuple[Any, RunCallback]:
    """The KTOTrainer for ``cfg`` (policy, the run's ratings split by pair, callback), ready to train
    (:func:`trl_stage.build_trainer`)."""
    from datasets import Dataset
    from trl import KTOConfig as TrlKTOConfig
    from trl import KTOTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision, peft_config = build_model(cfg, settings)
    train_pairs, eval_pairs = run_pairs(cfg, settings, folder.path / "data", resume)
    train = unpaired_rows(train_pairs, tokenizer, cfg)
    held = unpaired_rows(eval_pairs, tokenizer, cfg)
    print(f"{len(train)} training ratings ({sum(r['label'] for r in train)} thumbs-up) from {len(train_pairs)} "
          f"pairs, {len(held)} held out", flush=True)
    return trl_stage.build_trainer(
        KTOTrainer, TrlKTOConfig, cfg, folder, model=model, tokenizer=tokenizer, precision=precision,
        peft_config=peft_config, train=Dataset.from_list(train),
        evaluation=Dataset.from_list(held) if held else None, beta=cfg.beta,
        desirable_weight=cfg.desirable_weight, undesirable_weight=cfg.undesirable_weight)


def main(cfg: KTOConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run KTO in ``folder``; returns the final state ("finished" or "stopped"). Held-out figures are measured at
    the last step too (transformers evaluates there itself when it is no eval step)."""
    return trl_stage.run_stage(*build_trainer(cfg, folder, resume), cfg, folder, resume, beta=cfg.beta)
