"""Benchmark: the one prepared GPU check — 4-bit QLoRA SFT, reward, DPO and PPO steps and Compare's answers on
random-weight models of real size: peak GPU memory, step time, tokens/s, and whether the trained parameters stay
float32.

Run:  HF_HUB_OFFLINE=1 python -m bench.gpu [--models qwen2.5-0.5b,gemma-3-270m] [--steps 8] [--ppo-steps 3]
                                           [--warmup 2] [--out DIR] [--timeout 300] [--dry-run]

One command, no network, meant to take well under 10 minutes on one GPU (an H200 or a consumer card). It prints a
Markdown table for docs/BENCHMARKS.md, whose targets are ≤ 6 GB for SFT and ≤ 8 GB for PPO with the 0.5B model.
``--dry-run`` (any machine, well under a minute) lists what it would run — models, stages, configs, commands —
builds every model on the meta device (checking its parameter count against the published one, and that its
vocabulary covers the tokenizer), writes every stage's config.yaml and reads it back through the config validation
the training command uses, and counts the data each stage would read. Without CUDA it refuses to run, except with
``--cpu --models tiny``, which runs the whole flow on a tiny model: a check of this script, not a measurement.

* Models (:mod:`bench.random_models`): Qwen2.5-0.5B's and Gemma 3 270M's published configs with random weights,
  saved in bfloat16 with a tokenizer under ``--out`` (a temporary folder by default); a local model folder is a
  catalog model like any other.
* Stages: each stage's shipped GPU recipe (``assets/recipes/<stage>-qwen-0.5b-qlora-gpu.yaml``: 4-bit NF4, LoRA r 16
  on every linear layer, gradient checkpointing, batch 8 × accumulation 2 of up to 512 tokens; PPO 8 answers of up
  to 64 tokens a step, 4 PPO epochs) with the random model as base, ``max_steps`` = warm-up + timed steps (one
  checkpoint, at the end), no held-out split (the check times training steps), only as many examples as those steps
  read, and the bundled data only (a fresh data dir holds no votes). They chain as in the lecture: reward and DPO
  start from the SFT run's adapter, PPO from it too, maximising the reward run. Each stage runs as the Train tab runs
  it: ``python -m playground.train STAGE runs/NAME/config.yaml``, in its own process (its peak memory is its own).
* Figures, read from the run folder: peak GPU memory allocated and reserved = the largest ``gpu_allocated_gb`` and
  ``gpu_reserved_gb`` in metrics.jsonl (where a stage logs only ``gpu_memory_gb``, torch's peak allocated, that one,
  and no reserved figure); s / step between the logs of the last warm-up step and the last step; tokens/s over the
  same steps — SFT, reward and DPO: non-padding tokens trained; PPO: answer tokens sampled, per second of whole PPO
  steps (sampling, scoring and the updates). "Trainable fp32" reads the saved weights of what the run trained (its
  adapter — LoRA, and the reward model's score head; PPO: its final checkpoint's value LoRA and head too): every
  tensor float32, as the trainable parameters were when the run ended.
* Compare: the random base and base + the SFT run's adapter, both panes at once through ``comparison.run_turn`` as
  the Compare tab answers, 128 new tokens each (EOS ignored), in the training dtype (bf16) and in 4-bit; a first turn
  loads the models and warms up, the second is timed. Its own process; peak memory over both turns. s / step is
  the turn's wall time, tokens/s each pane's decoding rate (mean of the two).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import ROOT, run_child
from bench.lecture import recipe
from bench.random_models import SHAPES, Shape, meta_build, model_config, save_random_model, shape_tokenizer

STAGES = ("sft", "reward", "dpo", "ppo")
"""In the order they run: each one's start comes before it (:data:`NEEDS`)."""
NEEDS = {"sft": (), "reward": ("sft",), "dpo": ("sft",), "ppo": ("sft", "reward"), "compare": ("sft",)}
RECIPE = "qwen-0.5b-qlora-gpu"
"""The shipped recipes the stages run (``assets/recipes/<stage>-<RECIPE>.yaml``)."""
DATA = {"sft": ["instructions"], "reward": ["preferences"], "dpo": ["preferences"], "ppo": ["prompts", "instructions"]}
"""What each stage trains on: the recipes' datasets without "votes" (a fresh data dir holds none)."""
DEFAULT_MODELS = ("qwen2.5-0.5b", "gemma-3-270m")
TARGETS_GB = {("qwen2.5-0.5b", "sft"): 6.0, ("qwen2.5-0.5b", "ppo"): 8.0}
"""docs/BENCHMARKS.md's targets: peak GPU memory of the 0.5B model's QLoRA SFT and PPO."""
COMPARE_TOKENS = 128
TITLES = {"sft": "SFT", "reward": "reward model", "dpo": "DPO", "ppo": "PPO", "compare": "Compare"}
REFUSAL = ("No CUDA GPU here: this check measures GPU memory and speed, so it runs only where torch sees a CUDA "
           "device. Use --dry-run to list and validate what it would run; --cpu --models tiny runs the whole flow "
           "on a tiny model, to check this script (its figures measure nothing).")


# ------------------------------------------------------------------------------------------ the plan


@dataclasses.dataclass
class Plan:
    """One model's part of the check: its folder, the runs' data dir, each stage's config and warm-up steps."""

    shape: Shape
    folder: Path
    """The random model's folder; its path is the runs' ``base_model``."""
    data_dir: Path
    configs: dict[str, Any]
    warmup: int

    def run_dir(self, stage: str) -> Path:
        from playground.core.settings import Settings

        return Settings(data_dir=self.data_dir).runs_dir / self.configs[stage].name

    def config_file(self, stage: str) -> Path:
        return self.run_dir(stage) / "config.yaml"

    def command(self, stage: str) -> list[str]:
        """The stage's training command, as the Train tab launches it."""
        from playground.runs.jobs import command

        return command(stage, self.config_file(stage))


def run_name(shape: Shape, stage: str) -> str:
    return f"gpu-{shape.key}-{stage}"


def make_plan(shape: Shape, out: Path, steps: int, ppo_steps: int, warmup: int) -> Plan:
    """The stage configs for ``shape``: the GPU recipes with this check's base model, runs, steps and data
    (see the module docstring). Raises :class:`playground.train.config.ConfigError` on a value the stage refuses."""
    folder, data_dir = out / "models" / shape.key, out / "app"
    configs: dict[str, Any] = {}
    for stage in STAGES:
        total = (ppo_steps if stage == "ppo" else steps) + warmup
        links = {"sft_run": run_name(shape, "sft")} if stage != "sft" else {}
        if stage == "ppo":
            links["reward_run"] = run_name(shape, "reward")
        cfg = recipe(stage, run_name(shape, stage), str(folder), data_dir, total, kind=RECIPE, eval_fraction=0.0,
                     datasets=DATA[stage], **links)
        per_step = cfg.batch_size // cfg.answers_per_prompt if stage == "ppo" else \
            cfg.batch_size * cfg.gradient_accumulation
        configs[stage] = dataclasses.replace(cfg, save_steps=total, max_examples=per_step * total)
    return Plan(shape, folder, data_dir, configs, warmup)


def write_configs(plan: Plan) -> dict[str, Path]:
    """Each stage's config.yaml in its run folder (as the Train tab writes it); {stage: path}."""
    paths = {}
    for stage, cfg in plan.configs.items():
        path = plan.config_file(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cfg.to_yaml())
        paths[stage] = path
    return paths


def validate(paths: dict[str, Path]) -> dict[str, Any]:
    """Read each config.yaml back through the validation ``python -m playground.train`` applies
    (:func:`playground.train.config.load`); {stage: config}. Raises ``ConfigError`` naming the bad field."""
    from playground.train.config import load

    return {stage: load(stage, path) for stage, path in paths.items()}


def data_counts(plan: Plan) -> dict[str, tuple[int, int]]:
    """{stage: (examples a run reads, examples its datasets hold)}: the training data exists and is large enough.
    Pairs for reward and DPO, prompts for PPO (read as each stage reads them)."""
    from playground.core.settings import Settings
    from playground.data import instructions, preference_pairs, prompt_sets

    settings = Settings(data_dir=plan.data_dir)
    counts = {}
    for stage, cfg in plan.configs.items():
        if stage == "sft":
            held = sum(len(instructions.load_examples(instructions.resolve(name, settings, for_training=True)))
                       for name in cfg.datasets)
        elif stage == "ppo":
            held = len(prompt_sets.load_all(cfg.datasets, settings))
        else:
            held = sum(len(preference_pairs.load_pairs(name, settings)) for name in cfg.datasets)
        counts[stage] = (min(cfg.max_examples or held, held), held)
    return counts


def dry_run(plans: list[Plan]) -> str:
    """What the check would run, checked as far as a machine without a GPU can: every model built on the meta
    device (parameters vs the published count, vocabulary vs tokenizer), every config written and validated, every
    stage's data counted. Raises on the first problem."""
    from playground.runs.jobs import shell_command

    lines = []
    for plan in plans:
        tokenizer, source = shape_tokenizer(plan.shape)
        config = model_config(plan.shape, tokenizer)
        architecture, count = meta_build(config)
        published = plan.shape.parameters
        if published is not None and count != published:
            raise ValueError(f"{plan.shape.key}: the config builds {count:,} parameters, not the published "
                             f"{published:,}")
        check = f"(published: {published:,} ✓)" if published else "(not a published model)"
        lines += [f"## {plan.shape.title} — `{plan.shape.key}`", "",
                  f"- {architecture}, random weights "
                  f"(bfloat16), {count:,} parameters {check}; vocabulary {config.vocab_size:,} ≥ tokenizer "
                  f"{len(tokenizer):,} tokens, {source}",
                  f"- saved to {plan.folder}; runs in {plan.data_dir / 'runs'}", ""]
        loaded = validate(write_configs(plan))
        counts = data_counts(plan)
        for stage in STAGES:
            cfg = loaded[stage]
            changed = {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k in ("name", "base_model", "datasets", "max_steps", "save_steps", "max_examples",
                                "eval_fraction", "sft_run", "reward_run", "data_dir")}
            reads, held = counts[stage]
            batch = f"{cfg.batch_size} answers of ≤ {cfg.response_length} tokens, minibatches of " \
                    f"{cfg.mini_batch_size}, {cfg.ppo_epochs} PPO epochs" if stage == "ppo" else \
                f"batch {cfg.batch_size} × {cfg.gradient_accumulation}"
            lines += [f"- {TITLES[stage]}: `{shell_command(stage, plan.config_file(stage))}`",
                      f"  - {cfg.max_steps} steps ({plan.warmup} warm-up), {batch}, max_length {cfg.max_length}, "
                      f"quantization {cfg.quantization}, "
                      f"LoRA r {cfg.lora_r} on {cfg.target_modules}, gradient checkpointing "
                      f"{cfg.gradient_checkpointing}; reads {reads} of {held} examples",
                      f"  - assets/recipes/{stage}-{RECIPE}.yaml with "
                      + ", ".join(f"{k}={v}" for k, v in changed.items()) + " — validated"]
        lines += [f"- {TITLES['compare']}: `python -m bench.gpu --child '{{…}}'` — {plan.shape.key} vs "
                  f"{plan.shape.key} + {run_name(plan.shape, 'sft')}, both panes at once, {COMPARE_TOKENS} new "
                  f"tokens each, bf16 then 4-bit", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ running and reading


@dataclasses.dataclass
class Figures:
    """One row of the table; ``error`` says why a row has no figures."""

    allocated_gb: float | None = None
    reserved_gb: float | None = None
    s_per_step: float | None = None
    tokens_per_s: float | None = None
    trainable: dict[str, int] | None = None
    """Tensor count per dtype of what the run trained (None: nothing trained, Compare)."""
    wall_s: float | None = None
    error: str = ""

    @property
    def fp32(self) -> bool | None:
        return None if self.trainable is None else bool(self.trainable) and set(self.trainable) == {"F32"}


def run_stage(plan: Plan, stage: str, timeout: float) -> float:
    """Train one stage in its own process (output in the run's train.log); wall seconds. Raises RuntimeError with the
    run's error and the end of its log when it doesn't finish."""
    from playground.runs.jobs import shell_command
    from playground.runs.run_folder import RunFolder

    folder = RunFolder(plan.run_dir(stage))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    started = time.monotonic()
    with folder.log.open("a") as log:
        log.write(f"$ {shell_command(stage, plan.config_file(stage))}\n")
        log.flush()
        try:
            subprocess.run(plan.command(stage), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{stage}: still running after {timeout:.0f} s (stopped)\n{folder.log_tail(20)}") \
                from error
    status = folder.status()
    if status.get("state") != "finished":
        raise RuntimeError(f"{stage}: {status.get('state')}: {status.get('error')}\n{folder.log_tail(30)}")
    return time.monotonic() - started


def _peak(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return max(values) if values else None


def read_figures(stage: str, run_dir: Path, warmup: int) -> Figures:
    """A finished run's figures from its folder (see the module docstring): memory from every metrics row, time and
    tokens between the log of step ``warmup`` and the last step's, dtypes from the weights it saved."""
    from playground.runs.run_folder import RunFolder
    from playground.train.config import load

    folder = RunFolder(run_dir)
    rows = folder.metrics()
    allocated = _peak(rows, "gpu_allocated_gb")
    figures = Figures(allocated_gb=allocated if allocated is not None else _peak(rows, "gpu_memory_gb"),
                      reserved_gb=_peak(rows, "gpu_reserved_gb"), trainable=trainable_dtypes(stage, run_dir))
    steps = [r for r in rows if "loss" in r]  # the training steps' rows: not an eval's or the trainer's summary
    if len(steps) <= warmup:
        figures.error = f"{len(steps)} steps logged, none after the {warmup} warm-up"
        return figures
    first, last = steps[warmup - 1], steps[-1]
    figures.s_per_step = (last["time"] - first["time"]) / (last["step"] - first["step"])
    if stage == "ppo":  # each row: the mean answer length of that step's batch
        batch = load(stage, folder.config).batch_size
        tokens = sum(r["response_length"] * batch for r in steps[warmup:])
        figures.tokens_per_s = tokens / (last["time"] - first["time"])
    else:  # RunCallback logs the tokens trained so far as a rate since the start of training
        seen = [(r.get("tokens_per_s") or 0.0) * r["elapsed_s"] for r in (first, last)]
        figures.tokens_per_s = (seen[1] - seen[0]) / (last["elapsed_s"] - first["elapsed_s"])
    return figures


def trainable_dtypes(stage: str, run_dir: Path) -> dict[str, int]:
    """How many tensors of each dtype ("F32", "BF16"…) the run saved of what it trained: its adapter (LoRA, and a
    reward model's score head), and for PPO its last checkpoint's value LoRA and head. Read from the safetensors
    headers (nothing is loaded)."""
    from safetensors import safe_open

    from playground.runs.run_folder import RunFolder

    folder = RunFolder(run_dir)
    files = [folder.adapter / "adapter_model.safetensors"]
    if stage == "ppo" and (checkpoint := folder.last_checkpoint()) is not None:
        files.append(checkpoint / "value.safetensors")
    counts: Counter[str] = Counter()
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the run saved no {path.stem}")
        with safe_open(str(path), "pt") as weights:
            counts.update(weights.get_slice(key).get_dtype() for key in weights.keys())
    return dict(counts)


def compare_child(job: dict[str, Any]) -> None:
    """In its own process: two Compare turns (load + warm-up, then timed) of base vs base + adapter with each load
    option; prints {option: figures} as JSON."""
    import threading

    import torch

    from bench.generation import PROMPT
    from playground.core.settings import Settings
    from playground.models.catalog import list_models
    from playground.models.generation import GenerationParams
    from playground.models.loading import LoadOptions, ModelCache, free_memory, pick_device, resolve_dtype
    from playground.ratings import comparison

    cuda = torch.cuda.is_available()
    settings = Settings(data_dir=Path(job["data_dir"]))
    entries = list_models(settings)
    params = GenerationParams(max_new_tokens=job["tokens"], ignore_eos=True, seed=0)
    dtype = str(resolve_dtype("auto", pick_device())).removeprefix("torch.")
    results = {}
    for label, options in ((dtype, LoadOptions()), ("4-bit NF4", LoadOptions(quant="4bit"))):
        cache = ModelCache(settings, budget_bytes=2**40, gpu_budget_bytes=2**40)  # both panes' models stay loaded
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):  # the first turn loads both models; the second is timed
            chat = comparison.start(job["base"], job["adapter"], blind=False)
            started = time.monotonic()
            *_, (left, right) = comparison.run_turn(chat, PROMPT[0]["content"], cache, entries,
                                                    ("instruction", "instruction"), "", params, options,
                                                    threading.Event())
            seconds = time.monotonic() - started
            errors = [side.error for side in (left, right) if side.error]
            errors += [f"{side.stats.new_tokens} of {job['tokens']} tokens" for side in (left, right)
                       if side.stats.new_tokens != job["tokens"]]  # the rate would be of a shorter answer
            if errors:
                raise RuntimeError(f"Compare ({label}): {'; '.join(errors)}")
        rates = [side.stats.tokens_per_second or 0.0 for side in (left, right)]
        results[label] = {"allocated_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                          "reserved_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
                          "s_per_step": seconds, "tokens_per_s": sum(rates) / len(rates)}
        cache.unload()
        free_memory()
    print(json.dumps(results))


def run_compare(plan: Plan, timeout: float) -> dict[str, Figures]:
    """:func:`compare_child` in its own process, for the base and the SFT run's adapter; {option: figures}."""
    job = {"data_dir": str(plan.data_dir), "base": str(plan.folder),
           "adapter": str(plan.run_dir("sft") / "adapter"), "tokens": COMPARE_TOKENS}
    started = time.monotonic()
    results = run_child("bench.gpu", [json.dumps(job)], "compare", timeout=timeout,
                        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    wall = time.monotonic() - started
    return {label: Figures(allocated_gb=r["allocated_gb"], reserved_gb=r["reserved_gb"], s_per_step=r["s_per_step"],
                           tokens_per_s=r["tokens_per_s"], wall_s=wall) for label, r in results.items()}


def measure(plan: Plan, timeout: float) -> tuple[dict[str, Any], dict[str, Figures]]:
    """Build the model, train every stage and run Compare; (the model's record, {row label: figures}). A stage that
    fails gets its error in its row, and the stages that start from it are skipped."""
    note = lambda text: print(f"# {plan.shape.key}: {text}", file=sys.stderr, flush=True)  # noqa: E731
    started = time.monotonic()
    record = save_random_model(plan.shape, plan.folder)
    note(f"random model saved ({time.monotonic() - started:.0f} s): {json.dumps(record)}")
    for stage in STAGES:  # an earlier check's runs in --out: their metrics and adapters would be read as this one's
        shutil.rmtree(plan.run_dir(stage), ignore_errors=True)
    validate(write_configs(plan))
    rows: dict[str, Figures] = {}
    for stage in (*STAGES, "compare"):
        failed = [need for need in NEEDS[stage] if rows[need].error]
        if failed:
            rows[stage] = Figures(error=f"skipped: {failed[0]} failed")
            continue
        try:
            if stage == "compare":
                rows |= {f"compare {label}": figures for label, figures in run_compare(plan, timeout).items()}
                continue
            wall = run_stage(plan, stage, timeout)
            rows[stage] = read_figures(stage, plan.run_dir(stage), plan.warmup)
            rows[stage].wall_s = wall
        except Exception as error:  # noqa: BLE001 - the row says what failed; the log has the rest
            print(f"# {plan.shape.key} {stage} failed: {error}", file=sys.stderr, flush=True)
            rows[stage] = Figures(error=str(error).splitlines()[0][:200])
        note(f"{stage} done, {time.monotonic() - started:.0f} s in all")
    return record, rows


# ------------------------------------------------------------------------------------------ the report


def _gb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _target(key: str, row: str, figures: Figures) -> str:
    limit = TARGETS_GB.get((key, row))
    if limit is None:
        return ""
    peak = figures.reserved_gb if figures.reserved_gb is not None else figures.allocated_gb
    if peak is None:
        return f"≤ {limit:.0f} GB: not measured"
    gigabytes = peak * 2**30 / 1e9  # the runs log GiB; the targets are in GB (6 GB = 5.59 GiB)
    return f"≤ {limit:.0f} GB: **{'met' if gigabytes <= limit else 'missed'}** ({gigabytes:.2f} GB)"


def table(results: dict[str, tuple[dict[str, Any], dict[str, Figures]]]) -> str:
    """The Markdown table: one row per model and stage (and Compare load option)."""
    lines = ["| model | stage | peak allocated GiB | peak reserved GiB | s / step | tokens/s | trainable fp32 | "
             "run s | target |", "|---|---|---|---|---|---|---|---|---|"]
    for key, (_, rows) in results.items():
        for row, f in rows.items():
            stage = TITLES.get(row, row.replace("compare", "Compare,"))
            if f.error and f.s_per_step is None:
                lines.append(f"| {key} | {stage} | {f.error} | | | | | | |")
                continue
            fp32 = "—" if f.fp32 is None else "yes" if f.fp32 else \
                "**no**: " + ", ".join(f"{n} {dtype}" for dtype, n in sorted(f.trainable.items()))
            rate = "n/a" if f.tokens_per_s is None else f"{f.tokens_per_s:,.0f}"
            wall = "" if f.wall_s is None else f"{f.wall_s:.0f}"
            lines.append(f"| {key} | {stage} | {_gb(f.allocated_gb)} | {_gb(f.reserved_gb)} | "
                         f"{f.s_per_step:.3f} | {rate} | {fp32} | {wall} | "
                         f"{_target(key, row, f)} |")
    return "\n".join(lines)


def report(results: dict[str, tuple[dict[str, Any], dict[str, Figures]]], args: argparse.Namespace,
           seconds: float) -> str:
    """The command, machine, models and settings, then :func:`table`."""
    from bench.__main__ import machine

    command = "HF_HUB_OFFLINE=1 python -m bench.gpu " + " ".join(args.argv)
    models = [f"- {r['title']} (`{key}`): random weights, {r['parameters']:,} parameters in {r['dtype']}, "
              f"vocabulary {r['vocabulary']:,}; tokenizer {r['tokenizer']}, {r['tokenizer_size']:,} tokens"
              for key, (r, _) in results.items()]
    return (f"Command: `{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds:.0f} s "
            f"in all\n\n{machine()}\n" + "\n".join(models) + "\n\n"
            f"Stages: the GPU recipes (`assets/recipes/<stage>-{RECIPE}.yaml`), 4-bit QLoRA; {args.warmup} warm-up "
            f"step{'s' if args.warmup > 1 else ''}, then {args.steps} timed (PPO {args.ppo_steps}); Compare: {COMPARE_TOKENS} new tokens per pane, "
            f"both panes at once.\n\n{table(results)}\n")


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps of SFT, reward and DPO")
    parser.add_argument("--ppo-steps", type=int, default=3, help="timed PPO steps")
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing starts (every stage)")
    parser.add_argument("--out", type=Path, help="folder for the models and runs (default: a temporary one, deleted)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a stage (or Compare) may take")
    parser.add_argument("--dry-run", action="store_true", help="list and validate what would run; runs nothing")
    parser.add_argument("--cpu", action="store_true",
                        help="run without CUDA (with --models tiny only: checks this script's flow, measures nothing)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.child:
        compare_child(json.loads(args.child))
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(SHAPES):
        parser.error(f"--models: choose from {', '.join(SHAPES)}")
    if min(args.steps, args.ppo_steps, args.warmup) < 1:
        parser.error("--steps, --ppo-steps and --warmup must be at least 1 (timing starts at the last warm-up step)")
    if args.cpu and models != ["tiny"]:
        parser.error("--cpu runs only --models tiny: a real-size model's steps take far too long on a CPU")
    if not args.dry_run and not args.cpu:
        import torch

        if not torch.cuda.is_available():
            print(REFUSAL, file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as temporary:
        out = (args.out or Path(temporary)).resolve()
        plans = [make_plan(SHAPES[m], out, args.steps, args.ppo_steps, args.warmup) for m in models]
        if args.dry_run:
            print(dry_run(plans))
            return 0
        started = time.monotonic()
        results = {plan.shape.key: measure(plan, args.timeout) for plan in plans}
        print(report(results, args, time.monotonic() - started))
    failed = [f"{key} {row}" for key, (_, rows) in results.items() for row, f in rows.items() if f.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
