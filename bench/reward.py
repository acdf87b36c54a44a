"""Benchmark: reward-model training throughput of a playground run vs a plain TRL ``RewardTrainer`` script — same
model, preference pairs, LoRA, seed.

Run:  HF_HUB_OFFLINE=1 python -m bench.reward [--model gemma-3-270m|tiny] [--steps 8] [--warmup 2] [--repeats 2]
                                               [--sides plain,plain-matched,plain-grouped,ours]
Prints a Markdown table. Target ratio (ours / plain tokens/s) ≥ 1.0. With Gemma 3 270M on 2 CPU cores the default
run takes about 23 minutes (the plain script with TRL's defaults is the slow one); ``--model tiny`` or fewer
``--sides`` for a quick check. It is bench/sft.py's benchmark for the reward stage, and shares its helpers.

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
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sft import _TOKENS, ROOT, SEED, model_folder, parse_option, summary

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
import json, random, sys, time

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
from trl import RewardConfig, RewardTrainer

job = json.load(open(sys.argv[1]))

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


class Timing(TrainerCallback):  # measurement only: what the playground's RunCallback notes at each log
    rows = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "loss" in (logs or {}):  # a training step's log, not the end-of-training summary
            self.rows.append({"step": state.global_step, "time": time.time(),
                              "tokens": state.num_input_tokens_seen, "loss": logs["loss"]})


trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora,
                        callbacks=[Timing()])
trainer.train()
json.dump(Timing.rows, open(job["result"], "w"))
'''


# ------------------------------------------------------------------------------------------ one side, one process


def run_ours(job: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """A reward run through ``Jobs``, as the Train tab starts it; its run folder lives in the bench's temp dir."""
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs
    from playground.train.config import RewardConfig

    jobs = Jobs(Settings(data_dir=Path(job["work"]) / "app"), poll=False)
    cfg = RewardConfig(name=job["name"], base_model=job["base_model"], datasets=[job["data"]],
                       max_examples=job["examples"], max_steps=job["max_steps"], batch_size=job["batch_size"],
                       gradient_accumulation=job["accumulation"], max_length=job["max_length"], seed=job["seed"],
                       center_rewards_coefficient=job["center_rewards_coefficient"],
                       eval_fraction=0.0)  # the plain script trains on all N pairs too; no eval falls in the steps
    folder = jobs.create("reward", cfg)
    state = jobs.wait(cfg.name, timeout=job["timeout"])
    pid = folder.status().get("pid")
    if state != "finished":
        raise RuntimeError(f"run {cfg.name} {state}: {folder.status().get('error')}\n{folder.log_tail(30)}")
    steps = [line for line in folder.log.read_text().splitlines() if "'loss':" in line]  # not the train summary
    tokens = [int(t) for line in steps for t in _TOKENS.findall(line)]
    metrics = [m for m in folder.metrics() if "loss" in m]
    if len(tokens) != len(metrics):
        raise RuntimeError(f"{len(tokens)} token counts in train.log for {len(metrics)} metrics rows")
    return [{"step": m["step"], "time": m["time"], "tokens": t, "loss": m["loss"]}
            for m, t in zip(metrics, tokens)], pid


def run_plain(job: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    work = Path(job["work"]) / job["name"]
    work.mkdir()
    script, spec = work / "train_plain.py", work / "job.json"
    script.write_text(PLAIN_SCRIPT)
    spec.write_text(json.dumps(job | {"model": job["folder"], "out": str(work / "out"),
                                      "result": str(work / "rows.json")}))
    with (work / "stderr.txt").open("w") as errors:
        done = subprocess.run([sys.executable, str(script), str(spec)], cwd=work, stdout=subprocess.DEVNULL,
                              stderr=errors)
    if done.returncode:
        raise RuntimeError(f"the plain script failed:\n{(work / 'stderr.txt').read_text()[-3000:]}")
    return json.loads((work / "rows.json").read_text()), None


def child(side: str, job: dict[str, Any]) -> None:
    """Run one side and print its figures as JSON; this process's only child is the training process."""
    load_before = os.getloadavg()[0]
    started = time.time()
    rows, pid = (run_ours if side == "ours" else run_plain)(job)
    if pid:  # reap it here if Jobs hasn't yet, so RUSAGE_CHILDREN includes it
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    w, last = rows[job["warmup"] - 1], rows[-1]
    if last["step"] - w["step"] != job["steps"]:
        raise RuntimeError(f"expected {job['steps']} timed steps, got {last['step'] - w['step']}")
    seconds = last["time"] - w["time"]
    print(json.dumps({"steps": [[r["step"], round(r["time"] - started, 2), r["tokens"], round(r["loss"], 4)]
                                for r in rows],
                      "tokens": last["tokens"] - w["tokens"], "seconds": seconds,
                      "tokens_per_s": (last["tokens"] - w["tokens"]) / seconds, "s_per_step": seconds / job["steps"],
                      "total_tokens": last["tokens"], "first_loss": rows[0]["loss"], "final_loss": last["loss"],
                      "peak_mb": peak_mb, "first_step_s": rows[0]["time"] - started,
                      "load": [load_before, os.getloadavg()[0]]}))


def measure(side: str, job: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.reward", "--child", side, json.dumps(job)], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{side} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ main


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, extra: dict[str, Any],
           torch_version: str) -> None:
    """The Markdown table (medians), the ratios of ours to each baseline, and every run's rate, losses and load."""
    print(f"model {args.model} · {args.steps} timed steps after {args.warmup} warm-up · batch {args.batch_size} × "
          f"accumulation {args.accumulation} pairs · max_length {args.max_length} · first {args.examples} pairs · "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch_version} · extra plain options "
          f"{extra or 'none'}\n")
    print("| | tokens/s | s / step | peak RSS MB | to step 1 s | tokens trained (all steps) | final loss |")
    print("|---|---|---|---|---|---|---|")
    for side, r in runs.items():
        print(f"| {SIDES[side][0]} | {summary(r, 'tokens_per_s'):.1f} | {summary(r, 's_per_step'):.2f} | "
              f"{summary(r, 'peak_mb'):.0f} | {summary(r, 'first_step_s'):.1f} | "
              f"{sorted({x['total_tokens'] for x in r})} | {summary(r, 'final_loss'):.4f} |")
    if "ours" in runs:
        for side in (s for s in runs if s != "ours"):
            rate = summary(runs["ours"], "tokens_per_s") / summary(runs[side], "tokens_per_s")
            memory = summary(runs["ours"], "peak_mb") / summary(runs[side], "peak_mb")
            print(f"\nratio ours / {side}: tokens/s **{rate:.3f}**, peak RSS {memory:.3f}")
    for side, r in runs.items():
        rates = ", ".join(f"{x['tokens_per_s']:.1f}" for x in r)
        losses = ", ".join(f"{x['first_loss']:.4f} → {x['final_loss']:.4f}" for x in r)
        loads = ", ".join(f"{x['load'][0]:.2f}/{x['load'][1]:.2f}" for x in r)
        print(f"{side} tokens/s per run: {rates}; loss step 1 → last: {losses}; load average (1 min) before/after "
              f"each run: {loads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help='"gemma-3-270m" (packaged) or "tiny" (random ~20M)')
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps before timing starts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per forward pass (2 × rows)")
    parser.add_argument("--accumulation", type=int, default=2, help="gradient accumulation (the app's default)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--examples", type=int, default=128, help="first N bundled pairs after the shuffle")
    parser.add_argument("--center-rewards", type=float, default=0.01,
                        help="center_rewards_coefficient on both sides (the reward config's default)")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"which of {', '.join(SIDES)} to run")
    parser.add_argument("--plain-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra trl.RewardConfig option for the plain scripts only (repeatable)")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "JOB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], json.loads(args.child[1]))
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1 (timing starts at the log of the last warm-up step)")

    import torch

    from playground.data.preference_pairs import BUNDLED

    extra = dict(parse_option(o) for o in args.plain_option)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in args.sides.split(",")}
    if set(runs) - set(SIDES):
        parser.error(f"--sides: choose from {', '.join(SIDES)}")
    with tempfile.TemporaryDirectory(prefix="bench-reward-") as temporary:
        work = Path(temporary)
        base_model, folder = model_folder(args.model, work)
        job = {"work": str(work), "base_model": base_model, "folder": folder, "data": str(BUNDLED["preferences"]),
               "examples": args.examples, "steps": args.steps, "warmup": args.warmup,
               "max_steps": args.steps + args.warmup, "batch_size": args.batch_size,
               "accumulation": args.accumulation, "max_length": args.max_length,
               "center_rewards_coefficient": args.center_rewards, "seed": SEED, "timeout": 3600}
        for repeat in range(args.repeats):
            for side in runs:
                options = {**SIDES[side][1], **extra}
                result = measure(side, job | {"name": f"{side}-{repeat}", "options": options})
                runs[side].append(result)
                print(f"# {side} {repeat}: {json.dumps(result)}", file=sys.stderr, flush=True)

    report(runs, args, extra, torch.__version__)


if __name__ == "__main__":
    main()
