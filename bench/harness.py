"""The benchmarks' one harness: a side measured in a child process of its own, and the training-throughput
comparison that bench/sft.py and bench/reward.py run for their stage (a playground run vs plain TRL scripts).

A benchmark prints Markdown on stdout; ``python -m bench`` (bench/__main__.py) puts it into docs/BENCHMARKS.md between
the benchmark's markers. What a benchmark file keeps is what it measures: for a training-throughput bench, its
:class:`Throughput` (the sides, the plain TRL script, the playground config of ours) and its settings.

Child processes (:func:`run_child`): a bench runs each side as ``python -m bench.NAME --child …`` in the repository
root, so that one side's allocations, thread pools and imports don't touch another's; the child prints its figures
as JSON on its last stdout line.

Training throughput (:func:`compare`, :func:`child`): the sides take turns, each repeat in fresh processes. In the
child, ours is a run through ``Jobs`` as the Train tab starts it (its figures from the run's metrics.jsonl and
train.log); a plain side is the bench's script run from a temp file, with :data:`PLAIN_PROLOGUE` (the job it reads
and the ``Timing`` callback) before it and :data:`PLAIN_EPILOGUE` after. Tokens/s = tokens trained between the log of
warm-up step W and the log of the last step, over the wall time between those two events; peak memory is the
training process's max RSS (``getrusage(RUSAGE_CHILDREN)`` in the child, whose only child it is); the report gives
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED = 42


# ------------------------------------------------------------------------------------------ child processes


def run_child(module: str, arguments: list[str], what: str, *, timeout: float | None = None,
              env: dict[str, str] | None = None) -> Any:
    """Run ``python -m MODULE --child ARGUMENTS…`` in the repository root; the JSON of its last stdout line.
    Raises RuntimeError naming ``what`` with the end of its stderr when it fails or runs past ``timeout``."""
    try:
        done = subprocess.run([sys.executable, "-m", module, "--child", *arguments], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{what}: still running after {timeout:.0f} s (stopped)") from error
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{what} failed: {last}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reap(pid: int | None) -> None:
    """Wait for a finished child process (``Jobs``' training process) unless it was reaped already, so that
    ``getrusage(RUSAGE_CHILDREN)`` counts it. Other OS errors are raised."""
    if pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # already reaped by Jobs, which still counts it


def train_run(jobs: Any, kind: str, cfg: Any, timeout: float) -> Any:
    """Start a ``kind`` run through ``Jobs`` (its own process, as the Train tab starts it) and wait for it; its
    :class:`~playground.runs.run_folder.RunFolder`. Raises RuntimeError with its error and log tail unless it
    finished."""
    folder = jobs.create(kind, cfg)
    state = jobs.wait(cfg.name, timeout=timeout)
    if state != "finished":
        raise RuntimeError(f"{kind} run {cfg.name} {state}: {folder.status().get('error')}\n{folder.log_tail(30)}")
    return folder


def summary(runs: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over the runs."""
    return statistics.median(r[key] for r in runs)


# ------------------------------------------------------------------------------------------ the model


def tiny_model(folder: Path) -> Path:
    """A random Llama of ~20M parameters with the tests' byte-level tokenizer, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=12,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def model_folder(choice: str, work: Path) -> tuple[str, str]:
    """(what the playground config names, the folder both sides load) for ``--model``."""
    if choice == "tiny":
        folder = str(tiny_model(work / "tiny-llama"))
        return folder, folder
    from playground.core.settings import Settings
    from playground.models.catalog import resolve_choice
    from playground.models.loading import weights_location

    return choice, weights_location(resolve_choice(choice, []), Settings())


# ------------------------------------------------------------------------------------------ training throughput

#: Before each plain script: the job it reads, and its only addition to what a user would write — a callback noting
#: the time and token count at each logged step, as the playground's RunCallback does. Measurement only.
PLAIN_PROLOGUE = '''
import json, sys, time

from transformers import TrainerCallback

job = json.load(open(sys.argv[1]))


class Timing(TrainerCallback):  # measurement only: what the playground's RunCallback notes at each log
    rows = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "loss" in (logs or {}):  # a training step's log, not the end-of-training summary
            self.rows.append({"step": state.global_step, "time": time.time(),
                              "tokens": state.num_input_tokens_seen, "loss": logs["loss"]})
'''

#: After each plain script (which trains with ``callbacks=[Timing()]``): the rows for the child to read.
PLAIN_EPILOGUE = '''
json.dump(Timing.rows, open(job["result"], "w"))
'''

_TOKENS = re.compile(r"'num_input_tokens_seen': '?(\d+)")


@dataclass(frozen=True)
class Throughput:
    """What a training-throughput bench measures; the rest is this module's."""

    kind: str  # the stage: ``python -m bench.KIND`` and ``python -m playground.train KIND``
    sides: dict[str, tuple[str, dict[str, Any]]]  # side → (its row's label, its trl config options); "ours" is ours
    plain_script: str  # what a user would write with TRL directly (between PLAIN_PROLOGUE and PLAIN_EPILOGUE)
    config: Callable[[dict[str, Any]], Any]  # the job → ours's playground config


def run_ours(bench: Throughput, job: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """A run through ``Jobs``, as the Train tab starts it; its run folder lives in the bench's temp dir."""
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs

    jobs = Jobs(Settings(data_dir=Path(job["work"]) / "app"), poll=False)
    folder = train_run(jobs, bench.kind, bench.config(job), job["timeout"])
    steps = [line for line in folder.log.read_text().splitlines() if "'loss':" in line]  # not the train summary
    tokens = [int(t) for line in steps for t in _TOKENS.findall(line)]
    metrics = [m for m in folder.metrics() if "loss" in m]
    if len(tokens) != len(metrics):
        raise RuntimeError(f"{len(tokens)} token counts in train.log for {len(metrics)} metrics rows")
    return [{"step": m["step"], "time": m["time"], "tokens": t, "loss": m["loss"]}
            for m, t in zip(metrics, tokens)], folder.status().get("pid")


def run_plain(bench: Throughput, job: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """The plain script from a temp file, in its own process."""
    work = Path(job["work"]) / job["name"]
    work.mkdir()
    script, spec = work / "train_plain.py", work / "job.json"
    script.write_text(PLAIN_PROLOGUE + bench.plain_script + PLAIN_EPILOGUE)
    spec.write_text(json.dumps(job | {"model": job["folder"], "out": str(work / "out"),
                                      "result": str(work / "rows.json")}))
    with (work / "stderr.txt").open("w") as errors:
        done = subprocess.run([sys.executable, str(script), str(spec)], cwd=work, stdout=subprocess.DEVNULL,
                              stderr=errors)
    if done.returncode:
        raise RuntimeError(f"the plain script failed:\n{(work / 'stderr.txt').read_text()[-3000:]}")
    return json.loads((work / "rows.json").read_text()), None


def child(bench: Throughput, side: str, job_json: str) -> None:
    """Run one side and print its figures as JSON; this process's only child is the training process."""
    job = json.loads(job_json)
    load_before = os.getloadavg()[0]
    started = time.time()
    rows, pid = (run_ours if side == "ours" else run_plain)(bench, job)
    reap(pid)  # if Jobs hasn't yet, so RUSAGE_CHILDREN includes it
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


def parse_option(text: str) -> tuple[str, Any]:
    """``padding_free=true`` → ("padding_free", True): the value is read as YAML."""
    import yaml

    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


def setting_arguments(parser: argparse.ArgumentParser, *, steps: int, examples: str,
                      batch_size: str | None = None) -> None:
    """The options every training-throughput bench takes for its settings: ``steps`` is the default of ``--steps``,
    ``examples`` and ``batch_size`` the help of ``--examples`` and ``--batch-size``."""
    parser.add_argument("--model", default="gemma-3-270m", help='"gemma-3-270m" (packaged) or "tiny" (random ~20M)')
    parser.add_argument("--steps", type=int, default=steps, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps before timing starts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4, help=batch_size)
    parser.add_argument("--accumulation", type=int, default=2, help="gradient accumulation (the app's default)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--examples", type=int, default=128, help=examples)


def side_arguments(parser: argparse.ArgumentParser, sides: dict[str, Any], trl_config: str) -> None:
    """``--sides``, ``--plain-option`` (an option of ``trl_config``) and the hidden ``--child SIDE JOB``."""
    parser.add_argument("--sides", default=",".join(sides), help=f"which of {', '.join(sides)} to run")
    parser.add_argument("--plain-option", action="append", default=[], metavar="KEY=VALUE",
                        help=f"extra {trl_config} option for the plain scripts only (repeatable)")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "JOB"), help=argparse.SUPPRESS)


def compare(bench: Throughput, parser: argparse.ArgumentParser, args: argparse.Namespace, data: Path, setting: str,
            losses: bool = False, **settings: Any) -> None:
    """Every side of ``--sides``, each repeat in fresh processes (``python -m bench.KIND --child``), then the report.
    ``data`` is the bundled file both sides train on, ``settings`` go into the job besides the common ones, and
    ``setting`` / ``losses`` shape the report (see :func:`report`)."""
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1 (timing starts at the log of the last warm-up step)")

    import torch

    extra = dict(parse_option(o) for o in args.plain_option)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in args.sides.split(",")}
    if set(runs) - set(bench.sides):
        parser.error(f"--sides: choose from {', '.join(bench.sides)}")
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.kind}-") as temporary:
        work = Path(temporary)
        base_model, folder = model_folder(args.model, work)
        job = {"work": str(work), "base_model": base_model, "folder": folder, "data": str(data),
               "examples": args.examples, "steps": args.steps, "warmup": args.warmup,
               "max_steps": args.steps + args.warmup, "batch_size": args.batch_size,
               "accumulation": args.accumulation, "max_length": args.max_length, **settings, "seed": SEED,
               "timeout": 3600}
        for repeat in range(args.repeats):
            for side in runs:
                options = {**bench.sides[side][1], **extra}
                result = run_child(f"bench.{bench.kind}", [side, json.dumps(job | {"name": f"{side}-{repeat}",
                                                                                    "options": options})], side)
                runs[side].append(result)
                print(f"# {side} {repeat}: {json.dumps(result)}", file=sys.stderr, flush=True)

    report(bench, runs, args, extra, torch.__version__, setting, losses)


def report(bench: Throughput, runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace,
           extra: dict[str, Any], torch_version: str, setting: str, losses: bool = False) -> None:
    """The Markdown table (medians), the ratios of ours to each baseline, and every run's rate, load and (with
    ``losses``) losses. ``setting`` describes the bench's batch in the first line."""
    print(f"model {args.model} · {args.steps} timed steps after {args.warmup} warm-up · {setting} · "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch_version} · extra plain options "
          f"{extra or 'none'}\n")
    print("| | tokens/s | s / step | peak RSS MB | to step 1 s | tokens trained (all steps) | final loss |")
    print("|---|---|---|---|---|---|---|")
    for side, r in runs.items():
        print(f"| {bench.sides[side][0]} | {summary(r, 'tokens_per_s'):.1f} | {summary(r, 's_per_step'):.2f} | "
              f"{summary(r, 'peak_mb'):.0f} | {summary(r, 'first_step_s'):.1f} | "
              f"{sorted({x['total_tokens'] for x in r})} | {summary(r, 'final_loss'):.4f} |")
    if "ours" in runs:
        for side in (s for s in runs if s != "ours"):
            rate = summary(runs["ours"], "tokens_per_s") / summary(runs[side], "tokens_per_s")
            memory = summary(runs["ours"], "peak_mb") / summary(runs[side], "peak_mb")
            print(f"\nratio ours / {side}: tokens/s **{rate:.3f}**, peak RSS {memory:.3f}")
    for side, r in runs.items():
        rates = ", ".join(f"{x['tokens_per_s']:.1f}" for x in r)
        loss = ", ".join(f"{x['first_loss']:.4f} → {x['final_loss']:.4f}" for x in r)
        loads = ", ".join(f"{x['load'][0]:.2f}/{x['load'][1]:.2f}" for x in r)
        print(f"{side} tokens/s per run: {rates}; " + (f"loss step 1 → last: {loss}; " if losses else "")
              + f"load average (1 min) before/after each run: {loads}")
