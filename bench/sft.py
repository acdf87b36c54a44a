"""Benchmark: SFT throughput of a playground run vs a plain TRL ``SFTTrainer`` script — same model, data, LoRA, seed.

Run:  HF_HUB_OFFLINE=1 python -m bench.sft [--model gemma-3-270m|tiny] [--steps 10] [--warmup 2] [--repeats 2]
                                            [--sides plain,plain-matched,plain-padding-free,ours]
Prints a Markdown table. Target ratio (ours / plain tokens/s) ≥ 1.0. With Gemma 3 270M on 2 CPU cores the default
run takes about 25 minutes (the plain script with TRL's defaults is the slow one); ``--model tiny`` or fewer
``--sides`` for a quick check.

* Ours: a run exactly as the Train tab starts it — ``Jobs.create`` writes the run folder and config.yaml and launches
  ``python -m playground.train sft config.yaml`` in its own process; the figures come from the run's metrics.jsonl
  (time of each logged step) and train.log (the trainer's ``num_input_tokens_seen`` at each step).
* Plain: what a user would write with TRL directly (:data:`PLAIN_SCRIPT`, run from a temp file in its own process):
  ``datasets.load_dataset("json")``, the same shuffle and first N rows, the ### Instruction / ### Response frame
  formatted by hand, the same ``LoraConfig`` and ``trl.SFTConfig`` values (batch, accumulation, max_length, lr,
  steps, seed, completion_only_loss, use_cpu, logging_steps=1). Its only addition is a callback noting the time and
  token count at each logged step, as our run's callback does. Variants (:data:`SIDES`) add ``trl.SFTConfig``
  options: TRL's own defaults, the same precision and checkpointing as ours, and ours without padding.

All log every step and count non-padding tokens (``include_num_input_tokens_seen="non_padding"``). Tokens/s =
tokens trained between the log of warm-up step W and the log of the last step, over the wall time between those two
events; the warm-up steps (lazy allocations, first-call overheads) are left out. Peak memory is the training
process's max RSS (``getrusage(RUSAGE_CHILDREN)`` in a wrapper process whose only child it is). The sides take turns,
each repeat in fresh processes; the figures are medians. The token counts and losses show the sides train the same
thing: equal totals, and equal losses where the arithmetic is the same.

The sides run, are measured and reported by bench/harness.py (shared with bench/reward.py); this file holds what
differs: the sides, the plain script and our run's config.

``--model tiny`` swaps Gemma 3 270M for a random ~20M-parameter Llama (tests/tiny_models.py's tokenizer) when the
real model is too slow for the machine; ``--plain-option KEY=VALUE`` adds a ``trl.SFTConfig`` option to every plain
side, to measure what a change to ours would buy (e.g. ``train_sampling_strategy=group_by_length``).
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness
from bench.harness import ROOT, SEED, model_folder  # noqa: F401 - bench/ppo.py imports them from here

SIDES: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("plain TRL script, TRL's defaults", {}),
    # TRL's SFTConfig defaults to gradient_checkpointing=True and bf16=True (autocast, on CPU too); ours passes
    # gradient_checkpointing=False (the config's default) and bf16=False on CPU. This side isolates the machinery.
    "plain-matched": ("plain TRL script, `gradient_checkpointing=False, bf16=False` as ours",
                      {"gradient_checkpointing": False, "bf16": False}),
    # What a change to ours would buy: no padding (the batch is one row, sequences told apart by position_ids; TRL
    # refuses padding_free with max_length unless packing, and no bundled example is near 256 tokens).
    "plain-padding-free": ("plain TRL script, as matched + `padding_free=True, max_length=None`",
                           {"gradient_checkpointing": False, "bf16": False, "padding_free": True, "max_length": None}),
    "ours": ("playground run (`Jobs` → `python -m playground.train sft`)", {}),
}

PLAIN_SCRIPT = '''
import random

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

# `job` (the settings) and the `Timing` callback: bench/harness.py's PLAIN_PROLOGUE, put before this.

model = AutoModelForCausalLM.from_pretrained(job["model"])  # float32 checkpoint, CPU
tokenizer = AutoTokenizer.from_pretrained(job["model"])
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token

data = load_dataset("json", data_files=job["data"], split="train")
order = list(range(len(data)))
random.Random(job["seed"]).shuffle(order)  # the same order as the playground's shuffle of the same rows
data = data.select(order[: job["examples"]])


def frame(row):
    user = row["instruction"]
    if row.get("input"):
        user += "\\n\\n" + row["input"]
    return {"prompt": f"### Instruction:\\n{user.strip()}\\n\\n### Response:\\n", "completion": row["output"]}


data = data.map(frame, remove_columns=data.column_names)
lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
settings = dict(
    output_dir=job["out"], per_device_train_batch_size=job["batch_size"],
    gradient_accumulation_steps=job["accumulation"], learning_rate=2e-4, max_steps=job["max_steps"],
    lr_scheduler_type="cosine", warmup_steps=0.05, max_length=job["max_length"], completion_only_loss=True,
    seed=job["seed"], use_cpu=True, logging_steps=1, save_strategy="no", report_to="none",
    include_num_input_tokens_seen="non_padding")
args = SFTConfig(**{**settings, **job["options"]})  # the bench's variants (see SIDES, --plain-option)

trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora,
                     callbacks=[Timing()])
trainer.train()
'''


def config(job: dict[str, Any]) -> Any:
    """Ours: the SFT config the Train tab would write for the job's settings."""
    from playground.train.config import SFTConfig

    return SFTConfig(name=job["name"], base_model=job["base_model"], max_examples=job["examples"],
                     max_steps=job["max_steps"], batch_size=job["batch_size"],
                     gradient_accumulation=job["accumulation"], max_length=job["max_length"], seed=job["seed"],
                     eval_fraction=0.0)  # the plain script trains on all N rows too; no eval falls in the steps


SFT = harness.Throughput("sft", SIDES, PLAIN_SCRIPT, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.setting_arguments(parser, steps=10, examples="first N bundled instructions after the shuffle")
    harness.side_arguments(parser, SIDES, "trl.SFTConfig")
    args = parser.parse_args()
    if args.child:
        return harness.child(SFT, *args.child)

    from playground.data.instructions import BUNDLED

    harness.compare(SFT, parser, args, BUNDLED["instructions"],
                    f"batch {args.batch_size} × accumulation {args.accumulation} · max_length {args.max_length}")


if __name__ == "__main__":
    main()
