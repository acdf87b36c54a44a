"""Benchmark: reward-model training throughput of a playground run vs a plain TRL ``RewardTrainer`` script — same
model, preference pairs, LoRA, seed.

Run:  HF_HUB_OFFLINE=1 python -m bench.reward [--model gemma-3-270m|tiny] [--steps 8] [--warmup 2] [--repeats 2]
                                               [--sides plain,plain-matched,plain-grouped,ours]
Prints a Markdown table. Target ratio (ours / plain tokens/s) ≥ 1.0. With Gemma 3 270M on 2 CPU cores the default
run takes about 23 minutes (the plain script with TRL's defaults is the slow one); ``--model tiny`` or fewer
``--sides`` for a quick check. It is bench/sft.py's benchmark for the reward stage: bench/harness.py runs, measures
and reports the sides of both.

* Ours: a run exactly as the Train tab starts it — ``Jobs.create`` writes the run folder and config.yaml and launches
  ``python -m playground.train reward config.yaml`` in its own process, on the bundled preference pairs with
  ``eval_fraction`` 0; the figures come from the run's metrics.jsonl (time of each logged step) and train.log (the
  trainer's ``num_input_tokens_seen`` at each step).
* Plain: what a user would write with TRL directly (:data:`PLAIN_SCRIPT`, run from a temp file in its own process):
  ``datasets.load_dataset("json")``, the same pairs in the same order as ours (see below), the ### Instruction /
  ### Response frame in a ``prompt`` column with ``chosen`` / ``rejected`` as plain text (RewardTrainer then
  concatenates prompt + answer, appends EOS and tokenizes), ``AutoModelForSequenceClassification(num_labels=1)``,
  the same ``LoraConfig`` and ``trl.RewardConfig`` values (batch, accumulation, max_length, lr, schedule, steps, seed,
  ``center_rewards_coefficient``, use_cpu, logging_steps=1). Its only addition is a callback noting the time and token
  count at each logged step, as our run's callback does. Variants (:data:`SIDES`) add ``trl.RewardConfig`` options:
  TRL's own defaults, the same precision and checkpointing as ours, and that + batches grouped by length.

Which pairs: :func:`playground.data.preference_pairs.run_pairs` shuffles the pairs (``random.Random(seed)``), keeps the
first N (``max_examples``), and its train/held-out split shuffles those N again with the same seed; with
``eval_fraction`` 0 all N train. The plain script selects the same rows in the same order, so both trainers' random
samplers (seeded alike) draw the same batches.

All log every step and count non-padding tokens (``include_num_input_tokens_seen="non_padding"``: the attention
mask of the chosen and the rejected rows). Tokens/s = tokens trained between the log of warm-up step W and the log
of the last step, over the wall time between those two events. Peak memory is the training process's max RSS
(``getrusage(RUSAGE_CHILDREN)`` in a wrapper process whose only child it is). The sides take turns, each repeat in
fresh processes; the figures are medians. Equal token totals and losses show the sides train the same thing.

``--model tiny`` swaps Gemma 3 270M for a random ~20M-parameter Llama; ``--plain-option KEY=VALUE`` adds a
``trl.RewardConfig`` option to every plain side.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness

MATCHED = {"gradient_checkpointing": False, "bf16": False}
SIDES: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("plain TRL script, TRL's defaults", {}),
    # TRL's RewardConfig defaults to gradient_checkpointing=True and bf16=True (autocast, on CPU too); ours passes
    # gradient_checkpointing=False (the config's default) and bf16=False on CPU. This side isolates the machinery.
    "plain-matched": ("plain TRL script, `gradient_checkpointing=False, bf16=False` as ours", MATCHED),
    # What grouping pairs by length buys. RewardTrainer's rows hold chosen_ids / rejected_ids and no input_ids, so
    # transformers' LengthGroupedSampler needs a `length` column (the script adds one when grouping is asked for),
    # and the trainer keeps only its signature columns unless remove_unused_columns=False.
    "plain-grouped": ("plain TRL script, as matched + `group_by_length` (a `length` column, "
                      "`remove_unused_columns=False`)",
                      MATCHED | {"train_sampling_strategy": "group_by_length", "remove_unused_columns": False}),
    "ours": ("playground run (`Jobs` → `python -m playground.train reward`)", {}),
}

PLAIN_SCRIPT = '''
import random

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

# `job` (the settings) and the `Timing` callback: bench/harness.py's PLAIN_PROLOGUE, put before this.

model = AutoModelForSequenceClassification.from_pretrained(job["model"], num_labels=1)  # float32, CPU
tokenizer = AutoTokenizer.from_pretrained(job["model"])
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
if model.config.pad_token_id is None:
    model.config.pad_token_id = tokenizer.pad_token_id

data = load_dataset("json", data_files=job["data"], split="train")
order = list(range(len(data)))
random.Random(job["seed"]).shuffle(order)  # the playground's shuffle, first N ...
order = order[: job["examples"]]
random.Random(job["seed"]).shuffle(order)  # ... shuffled again by its train/eval split: the same pairs, same order
data = data.select(order)


def frame(row):
    prompt = f"### Instruction:\\n{row['prompt'].strip()}\\n\\n### Response:\\n"
    return {"prompt": prompt, "chosen": row["chosen"], "rejected": row["rejected"]}


data = data.map(frame, remove_columns=data.column_names)
if job["options"].get("train_sampling_strategy") == "group_by_length":
    # LengthGroupedSampler reads `length` (the rows RewardTrainer makes have no input_ids to measure)
    def length(row):
        return {"length": max(len(tokenizer(row["prompt"] + row[answer] + tokenizer.eos_token)["input_ids"])
                              for answer in ("chosen", "rejected"))}

    data = data.map(length)

lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="SEQ_CLS")
settings = dict(
    output_dir=job["out"], per_device_train_batch_size=job["batch_size"],
    gradient_accumulation_steps=job["accumulation"], learning_rate=2e-4, max_steps=job["max_steps"],
    lr_scheduler_type="cosine", warmup_steps=0.05, max_length=job["max_length"],
    center_rewards_coefficient=job["center_rewards_coefficient"], seed=job["seed"], use_cpu=True,
    logging_steps=1, save_strategy="no", report_to="none", include_num_input_tokens_seen="non_padding")
args = RewardConfig(**{**settings, **job["options"]})  # the bench's variants (see SIDES, --plain-option)

trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora,
                        callbacks=[Timing()])
trainer.train()
'''


def config(job: dict[str, Any]) -> Any:
    """Ours: the reward config the Train tab would write for the job's settings."""
    from playground.train.config import RewardConfig

    return RewardConfig(name=job["name"], base_model=job["base_model"], datasets=[job["data"]],
                        max_examples=job["examples"], max_steps=job["max_steps"], batch_size=job["batch_size"],
                        gradient_accumulation=job["accumulation"], max_length=job["max_length"], seed=job["seed"],
                        center_rewards_coefficient=job["center_rewards_coefficient"],
                        eval_fraction=0.0)  # the plain script trains on all N pairs too; no eval falls in the steps


REWARD = harness.Throughput("reward", SIDES, PLAIN_SCRIPT, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.setting_arguments(parser, steps=8, examples="first N bundled pairs after the shuffle",
                              batch_size="pairs per forward pass (2 × rows)")
    parser.add_argument("--center-rewards", type=float, default=0.01,
                        help="center_rewards_coefficient on both sides (the reward config's default)")
    harness.side_arguments(parser, SIDES, "trl.RewardConfig")
    args = parser.parse_args()
    if args.child:
        return harness.child(REWARD, *args.child)

    from playground.data.preference_pairs import BUNDLED

    harness.compare(REWARD, parser, args, BUNDLED["preferences"],
                    f"batch {args.batch_size} × accumulation {args.accumulation} pairs · max_length {args.max_length}"
                    f" · first {args.examples} pairs", losses=True, center_rewards_coefficient=args.center_rewards)


if __name__ == "__main__":
    main()
