"""Benchmark: does instruction tuning generalize? The shipped CPU SFT recipe, then base vs tuned on held-out families.

Run:  HF_HUB_OFFLINE=1 python -m bench.heldout [--recipe assets/recipes/sft-gemma-cpu-demo.yaml] [--per-family N]
                                              [--max-steps N] [--json PATH]

One command, the whole claim: it trains the recipe exactly as the Train tab would (``Jobs.create`` → ``python -m
playground.train sft`` in its own process, run folder under the data dir), then evaluates the base model and the
base + adapter on the bundled held-out set (``assets/datasets/heldout.jsonl``: task families from clusters no
training row belongs to) with :func:`playground.data.evaluation.evaluate_heldout` — the Runs tab's Evaluate — and prints
a Markdown table: per family base / tuned / change with 95 % bootstrap intervals (paired for the change), the wall
time of training and of evaluation, and the machine's load. Target: change on all held-out tasks ≥ +20 points and
training + evaluation ≤ 10 minutes on 2 idle CPU cores.

The evaluation is saved into the run folder (``eval.json``), so the Runs tab shows the same table. ``--per-family``
and ``--max-steps`` make a quick check (figures then say so); ``--base`` swaps the recipe's base model (tests use a
tiny local one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from bench.harness import ROOT, reap

RECIPE = ROOT / "assets" / "recipes" / "sft-gemma-cpu-demo.yaml"
TARGET_POINTS = 20.0
TARGET_SECONDS = 600.0


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min) / {five:.2f} (5 min)"


def _reaped_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) of the finished training process, if it was this process's child: reap it
    first, so that RUSAGE_CHILDREN counts it (as the training benches do). None when it can't be counted."""
    if not pid:
        return None
    try:
        reap(pid)
    except OSError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fmt(seconds: float | None) -> str:
    return "not counted" if seconds is None else f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heldout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="an SFT recipe (YAML)")
    parser.add_argument("--per-family", type=int, default=0, help="first N held-out examples per family (0 = all)")
    parser.add_argument("--max-steps", type=int, default=0, help="override the recipe's steps (quick check)")
    parser.add_argument("--base", default="", help="override the recipe's base model (a catalog name or folder)")
    parser.add_argument("--name", default="", help="run name (default: the recipe's name + '-heldout-' + time)")
    parser.add_argument("--json", type=Path, help="also write every answer and figure here")
    args = parser.parse_args(argv)

    from playground.core.settings import Settings
    from playground.data import evaluation
    from playground.models.catalog import list_models, resolve_choice, spec_for_folder
    from playground.models.loading import ModelCache
    from playground.runs.jobs import Jobs
    from playground.train.config import load

    recipe = load("sft", args.recipe)
    changes = {"name": args.name or f"{recipe.name}-heldout-{time.strftime('%Y%m%d-%H%M%S')}"}
    if args.max_steps:
        changes["max_steps"] = args.max_steps
    if args.base:
        changes["base_model"] = args.base
    cfg = dataclasses.replace(recipe, **changes)
    examples = evaluation.load_heldout()
    if args.per_family:
        examples = [e for task in dict.fromkeys(e.task for e in examples)
                    for e in [x for x in examples if x.task == task][: args.per_family]]
    settings = Settings()
    load_before = _load()

    jobs = Jobs(settings, poll=False)
    started = time.monotonic()
    folder = jobs.create("sft", cfg)
    state = jobs.wait(cfg.name, timeout=3 * 3600)
    train_seconds = time.monotonic() - started
    train_cpu = _reaped_cpu_seconds(folder.status().get("pid"))
    if state != "finished":
        print(f"run {cfg.name} {state}: {folder.status().get('error')}\n{folder.log_tail(30)}", file=sys.stderr)
        return 1
    print(f"# trained {cfg.name} in {train_seconds:.0f} s", file=sys.stderr, flush=True)

    cache = ModelCache(settings)
    tuned = spec_for_folder(folder.adapter)
    base = resolve_choice(tuned.source, list_models(settings))
    started, cpu_started = time.monotonic(), time.process_time()
    outcome = evaluation.evaluate_heldout(
        cache, base, tuned, examples, cfg.prompt_format,
        progress=lambda fraction, message: print(f"# {fraction:.0%} {message}", file=sys.stderr, flush=True))
    eval_seconds = time.monotonic() - started
    eval_cpu = time.process_time() - cpu_started
    evaluation.save([outcome.base, outcome.tuned], folder.path)
    load_after = _load()

    overall = outcome.table.iloc[-1]
    total = train_seconds + eval_seconds
    quick = " — **quick settings, not the shipped recipe**" if args.per_family or args.max_steps or args.base else ""
    families = outcome.table["task"].iloc[:-1].tolist()
    print(f"Recipe `{args.recipe.relative_to(ROOT) if args.recipe.is_relative_to(ROOT) else args.recipe}` "
          f"(base {cfg.base_model}, {cfg.max_steps} steps × {cfg.batch_size * cfg.gradient_accumulation} examples, "
          f"lr {cfg.learning_rate}, max_length {cfg.max_length}){quick}; held-out set: {len(examples)} examples, "
          f"{len(families)} families, greedy, first line checked, ≤ {evaluation.MAX_NEW_TOKENS} new tokens, "
          f"prompt format `{cfg.prompt_format}` for both models. {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f" · {platform.machine()}, {os.cpu_count()} CPUs · load average before {load_before}, after {load_after}\n")
    print(evaluation.markdown_table(outcome.table))
    print(f"\n- wall time: training {train_seconds:.0f} s, evaluation {eval_seconds:.0f} s (base "
          f"{outcome.base.seconds:.0f} s, tuned {outcome.tuned.seconds:.0f} s), total {total:.0f} s "
          f"(target ≤ {TARGET_SECONDS:.0f} s on 2 idle cores); CPU time (all threads, independent of other "
          f"processes' load): training {_fmt(train_cpu)}, evaluation {eval_cpu:.0f} s")
    print(f"- gain on all held-out tasks: **{overall['change']:+.1f} points** "
          f"[{overall['change low']:+.1f}, {overall['change high']:+.1f}] (target ≥ +{TARGET_POINTS:.0f}); "
          f"run folder `{folder.path}` (eval.json: every answer)")
    if args.json:
        args.json.write_text(json.dumps({
            "recipe": str(args.recipe), "run": cfg.name, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds, "train_cpu_seconds": train_cpu, "eval_cpu_seconds": eval_cpu,
            "load_before": load_before, "load_after": load_after,
            "table": outcome.table.to_dict("records"),
            "results": [dataclasses.asdict(outcome.base), dataclasses.asdict(outcome.tuned)]},
            ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
