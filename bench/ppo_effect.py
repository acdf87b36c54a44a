"""Benchmark: what a PPO run changed — the reward model's score of the SFT policy's answers against each of a run's
checkpoints (or its final adapter), on the run's held-out prompts or on the prompts it trained on.

Run:  HF_HUB_OFFLINE=1 python -m bench.ppo_effect RUN [CHECKPOINT ...] [--prompts held-out|train] [--samples K]
                                                  [--seed S] [--data-dir DIR]

RUN is a PPO run (its name in the data dir, or its folder). Each CHECKPOINT is a folder holding the policy's LoRA:
one of the run's ``checkpoints/checkpoint-N`` (``policy.safetensors``; the run keeps the last two, so copy the
ones you want while it trains), or an adapter folder (``adapter_model.safetensors``); without any, the run's final
adapter. The measurement is :mod:`bench.lecture`'s, on one shared model: K answers per prompt sampled as PPO
samples them and scored by the run's reward model, the mean difference with a 95 % paired bootstrap interval over
prompts, the rise in SDs of the SFT policy's scores and KL per answer from the SFT policy. It also says how the SFT
policy's scores spread within a prompt and between prompts (the latter is noise to an update without a baseline per
prompt), and how much picking the best of its K answers to each prompt by the reward model would gain: a yardstick
for what a policy moved by that little KL can reach.

``--prompts train`` asks whether PPO raised its own objective on its training split (every prompt of it, whether
the run reached it yet or not); ``held-out`` (the default, the lecture's target) whether that carried over to
prompts it never trained on. Prints Markdown; the figures in
docs/BENCHMARKS.md are pasted from it with the command.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

from bench.__main__ import machine
from bench.lecture import Policies, policy_effect, policy_file


def measure(run: Path, checkpoints: list[Path], settings: Any, prompts: Literal["held-out", "train"], samples: int,
            seed: int) -> list[str]:
    """Markdown lines: the SFT policy's scores and their spread, then one table row per checkpoint."""
    started = time.monotonic()
    policies = Policies(settings, run, split=prompts)
    before = policies.answers(samples, seed=seed)
    lines = [f"{len(policies.prompts)} {prompts} prompts of `{run.name}` × {samples} sampled answers "
             f"(temperature {policies.cfg.temperature}), scored by `{policies.cfg.reward_run}`.", ""]
    rows = []
    for checkpoint in checkpoints:
        policies.use(checkpoint)
        effect = policy_effect(before, policies.answers(samples, seed=seed))
        rows.append(f"| `{checkpoint.name}` | {effect['after']:+.3f} | {effect['diff']:+.3f} [{effect['low']:+.3f}, "
                    f"{effect['high']:+.3f}] | **{effect['rise_sd']:+.2f}** | {effect['kl']:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    spread = policy_effect(before, before)
    lines += [f"SFT policy: mean {spread['before']:+.3f}, SD {spread['sd']:.3f} — among one prompt's answers "
              f"{spread['sd_within']:.3f}, between the prompts' means {spread['sd_between']:.3f}. Best of its "
              f"{samples} answers to each prompt, picked by the reward model: {spread['best_of']:+.3f} = "
              f"**{spread['best_of_sd']:+.2f} SD** (KL ≤ {math.log(samples) - (samples - 1) / samples:.2f} nats).",
              "",
              "| policy | mean score | change [95 % CI] | SD of the SFT policy's | KL (nats/answer) |",
              "|---|---|---|---|---|", *rows, "", f"Measured in {time.monotonic() - started:.0f} s."]
    return lines


def main(argv: list[str] | None = None) -> int:
    from playground.core.settings import Settings, default_data_dir

    parser = argparse.ArgumentParser(prog="python -m bench.ppo_effect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the PPO run: its name in the data dir, or its folder")
    parser.add_argument("checkpoints", nargs="*", type=Path,
                        help="policy folders (checkpoint-N or adapter); default: the run's final adapter")
    parser.add_argument("--prompts", choices=("held-out", "train"), default="held-out",
                        help="the run's held-out prompts (default) or those it trained on")
    parser.add_argument("--samples", type=int, default=4, help="sampled answers per prompt (at least 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir of the runs (default: the app's, or $RLHF_PLAYGROUND_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be at least 2 (the spread within a prompt needs two answers)")
    settings = Settings(data_dir=args.data_dir or default_data_dir())
    run = Path(args.run) if Path(args.run).is_dir() else settings.runs_dir / args.run
    if not (run / "config.yaml").is_file():
        parser.error(f"{args.run}: no run there (no config.yaml in {run})")
    checkpoints = args.checkpoints or [run / "adapter"]
    for folder in checkpoints:
        if not policy_file(folder).is_file():
            parser.error(f"{folder}: neither policy.safetensors nor adapter_model.safetensors in it")
    command = "HF_HUB_OFFLINE=1 python -m bench.ppo_effect " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = measure(run, checkpoints, settings, args.prompts, args.samples, args.seed)
    print(f"Command: `{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{machine()}\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
