"""Benchmark: PPO (ours) vs GRPO vs RLOO from the same start — held-out reward before and after, against wall time,
peak memory and KL.

Run:  HF_HUB_OFFLINE=1 python -m bench.rl [--model gemma-3-270m] [--steps 12] [--prompts-per-step 2]
                                          [--answers-per-prompt 4] [--response 48] [--samples 4] [--quick]
                                          [--sft-run RUN --reward-run RUN] [--data-dir DIR]
                                          [--doc docs/BENCHMARKS.md]

The three runs share everything but the algorithm: the same SFT run (the policy's start and, for all three, the
frozen reference), the same reward run (PPO shares one base among its roles; GRPO and RLOO load the reward model as a
second copy of the base), the same prompts and held-out split (the bundled prompts, ``eval_fraction`` 0.2, seed 42:
PPO's and GRPO/RLOO's splits are the same seeded shuffle) and the same token budget: ``answers per step`` (prompts
per step × answers per prompt) × ``answer length`` × ``steps``, at the same temperature, LoRA and learning rate. PPO
runs with ``answers_per_prompt`` answers to each prompt too (its leave-one-out baseline, a fresh value model), so
the comparison is about the critic and the update, not about the sampling. The SFT and reward runs come from the
CPU recipes (``assets/recipes/*-gemma-cpu-demo.yaml``), cut to ``--sft-steps`` / ``--reward-steps``, unless
``--sft-run`` / ``--reward-run`` name finished runs of the data dir to start from.

Each RL run is a real run through ``Jobs`` (its own training process, as the Train tab starts it), started from a
child process of this bench (``--child``) whose only child it is, so its peak memory is that process's max RSS
(``getrusage(RUSAGE_CHILDREN)``), and on CUDA the run's logged peak GPU memory. Wall time is from the run's creation
to its end, model loading included. Then, in this process: K answers to each held-out prompt from the SFT policy
(before) and from each run's adapter (after), sampled at the runs' temperature and scored by the reward model with
PPO's own code (``bench.lecture.Policies``), give each run's mean reward rise with a 95 % paired bootstrap interval
over prompts, and KL(π ‖ π_SFT) per answer.

``--quick`` runs the whole bench on the tests' tiny random model (a few hundred tokens of vocabulary, 2 layers) with
tiny steps: it checks the bench end to end in well under a few minutes and measures nothing about real models. The
Markdown goes into ``--doc`` between ``<!-- bench:rl -->`` markers (``--doc ''`` prints it only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT, reap, run_child, train_run

ALGORITHMS = ("ppo", "grpo", "rloo")
TITLE = "PPO vs GRPO vs RLOO"
NAMES = {"ppo": "PPO (ours: value model, GAE, clipped updates)", "grpo": "GRPO (TRL: group-normalised advantage)",
         "rloo": "RLOO (TRL: leave-one-out baseline)"}


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run gets alike."""

    steps: int
    prompts_per_step: int
    answers_per_prompt: int
    response: int
    temperature: float = 0.7
    learning_rate: float = 1e-4
    """PPO's CPU recipe's rate (GRPO's and RLOO's recipes use 5e-5; one rate for all keeps the comparison fair)."""
    kl_coef: float = 0.05

    @property
    def answers_per_step(self) -> int:
        return self.prompts_per_step * self.answers_per_prompt

    @property
    def tokens(self) -> int:
        """The token budget: answers per step × answer length × steps (at most: an answer may end sooner)."""
        return self.answers_per_step * self.response * self.steps


def rl_config(algorithm: str, name: str, model: str, data_dir: Path, sft_run: str, reward_run: str,
              budget: Budget) -> Any:
    """The CPU demo recipe of ``algorithm`` with the shared budget, start, reward run and prompts filled in."""
    from bench.lecture import recipe

    shared = dict(sft_run=sft_run, reward_run=reward_run, datasets=["prompts"], eval_fraction=0.2, seed=42,
                  batch_size=budget.answers_per_step, answers_per_prompt=budget.answers_per_prompt,
                  response_length=budget.response, temperature=budget.temperature,
                  learning_rate=budget.learning_rate, kl_coef=budget.kl_coef, samples_per_step=2,
                  save_steps=budget.steps, warmup_ratio=0.0, gradient_accumulation=1)
    if algorithm == "ppo":
        shared |= dict(mini_batch_size=budget.answers_per_step, value_init="fresh", missing_eos_penalty=0.0)
    else:
        shared |= dict(reward_source="reward_run")
    return recipe(algorithm, name, model, data_dir, budget.steps, **shared)


def child(job_json: str) -> None:
    """Train one run through ``Jobs`` and print its wall time and peak memory as JSON; this process's only child is
    the training process."""
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs
    from playground.train.config import from_dict

    job = json.loads(job_json)
    jobs = Jobs(Settings(data_dir=Path(job["data_dir"])), poll=False)
    cfg = from_dict(job["stage"], job["config"])
    started = time.monotonic()
    folder = train_run(jobs, job["stage"], cfg, job["timeout"])
    seconds = time.monotonic() - started
    reap(folder.status().get("pid"))  # if Jobs hasn't yet, so RUSAGE_CHILDREN includes it
    gpu = [m["gpu_allocated_gb"] for m in folder.metrics() if m.get("gpu_allocated_gb") is not None]
    print(json.dumps({"seconds": seconds, "rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
                      "gpu_gb": max(gpu) if gpu else None, "folder": str(folder.path)}))


def train_measured(stage: str, cfg: Any, data_dir: Path, timeout: float) -> dict[str, Any]:
    """One run in a child process of its own (:func:`child`): wall seconds, peak RSS and GPU memory, run folder."""
    job = {"stage": stage, "config": cfg.to_dict(), "data_dir": str(data_dir), "timeout": timeout}
    result = run_child("bench.rl", [json.dumps(job)], f"{stage} run {cfg.name}", timeout=timeout + 120)
    print(f"# {stage} {cfg.name}: {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


def logged_kl(folder: Path) -> float | None:
    """The run's own KL at its last training step, as it logs it (PPO: nats per answer; GRPO and RLOO: TRL's)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    kls = [m["kl"] for m in rows if m.get("kl") is not None]
    return kls[-1] if kls else None


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Train the SFT and reward runs, the three RL runs from them, then measure before and after."""
    from bench.lecture import Policies, policy_effect, recipe
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs

    settings = Settings(data_dir=args.data_dir)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    stamp = time.strftime("%m%d-%H%M%S")
    sft = recipe("sft", f"rl-{stamp}-sft", args.model, args.data_dir, args.sft_steps)
    rm = recipe("reward", f"rl-{stamp}-reward", args.model, args.data_dir, args.reward_steps)
    if args.quick:  # tiny batches: the tiny model's runs take seconds
        sft = dataclasses.replace(sft, batch_size=4, gradient_accumulation=1, eval_fraction=0.0)
        rm = dataclasses.replace(rm, batch_size=4, gradient_accumulation=1, eval_fraction=0.0)
    sft_name, reward_name = args.sft_run or sft.name, args.reward_run or rm.name
    if not args.sft_run:
        train_run(jobs, "sft", sft, args.timeout)
    if not args.reward_run:
        train_run(jobs, "reward", rm, args.timeout)
    budget = Budget(args.steps, args.prompts_per_step, args.answers_per_prompt, args.response,
                    learning_rate=args.learning_rate)
    runs = {}
    for algorithm in ALGORITHMS:
        cfg = rl_config(algorithm, f"rl-{stamp}-{algorithm}", args.model, args.data_dir, sft_name, reward_name,
                        budget)
        runs[algorithm] = train_measured(algorithm, cfg, args.data_dir, args.timeout)
    policies = Policies(settings, Path(runs["ppo"]["folder"]))
    before = policies.answers(args.samples, seed=args.seed)
    effects = {}
    for algorithm in ALGORITHMS:
        policies.use(Path(runs[algorithm]["folder"]) / "adapter")
        effects[algorithm] = policy_effect(before, policies.answers(args.samples, seed=args.seed))
        effects[algorithm]["logged_kl"] = logged_kl(Path(runs[algorithm]["folder"]))
    return {"model": args.model, "budget": budget, "runs": runs, "effects": effects,
            "prompts": len(policies.prompts), "samples": args.samples, "sft": sft_name, "reward": reward_name}


def report(result: dict[str, Any]) -> str:
    """The Markdown section body: the shared budget, then one row per algorithm."""
    budget: Budget = result["budget"]
    lines = [f"Model `{result['model']}`; start: SFT run `{result['sft']}`, reward: run `{result['reward']}`. Each "
             f"run: {budget.steps} steps × {budget.answers_per_step} answers ({budget.prompts_per_step} prompts × "
             f"{budget.answers_per_prompt}) × up to {budget.response} tokens = {budget.tokens:,} answer tokens at "
             f"most; temperature {budget.temperature}, learning rate {budget.learning_rate:g}, β {budget.kl_coef}. "
             f"Held-out: {result['prompts']} prompts × {result['samples']} answers, scored by the reward model; "
             f"before = the SFT policy, mean reward {result['effects']['ppo']['before']:+.3f} "
             f"(SD {result['effects']['ppo']['sd']:.3f}).", "",
             "| algorithm | held-out reward after | rise [95 % interval] | rise in SD | KL(π ‖ π_SFT) per answer "
             "| KL logged at the last step | wall time | peak RSS | peak GPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for algorithm in ALGORITHMS:
        e, run = result["effects"][algorithm], result["runs"][algorithm]
        gpu = f"{run['gpu_gb']:.2f} GiB" if run.get("gpu_gb") is not None else "—"
        kl = f"{e['logged_kl']:.3f}" if e.get("logged_kl") is not None else "—"
        lines.append(f"| {NAMES[algorithm]} | {e['after']:+.3f} | {e['diff']:+.3f} [{e['low']:+.3f}, "
                     f"{e['high']:+.3f}] | {e['rise_sd']:+.2f} | {e['kl']:.2f} | {kl} | {run['seconds']:.0f} s | "
                     f"{run['rss_gb']:.2f} GiB | {gpu} |")
    lines += ["", "KL logged: PPO logs nats per answer (k1), GRPO TRL's k3 estimate per token, RLOO k1 per token; the "
              "KL column before it is measured alike for all three (k1, summed over each held-out answer)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="base model: a catalog name or a model folder")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir for the runs (default: a temporary one, deleted after)")
    parser.add_argument("--steps", type=int, default=12, help="RL steps of each run")
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--answers-per-prompt", type=int, default=4)
    parser.add_argument("--response", type=int, default=48, help="most tokens per answer")
    parser.add_argument("--sft-steps", type=int, default=None, help="cut the SFT run (default: the recipe's)")
    parser.add_argument("--reward-steps", type=int, default=None, help="cut the reward run (default: the recipe's)")
    parser.add_argument("--learning-rate", type=float, default=Budget.learning_rate,
                        help="the LoRA learning rate of all three runs")
    parser.add_argument("--sft-run", default="", help="start from this finished SFT run instead of training one")
    parser.add_argument("--reward-run", default="", help="maximise this finished reward run instead of training one")
    parser.add_argument("--samples", type=int, default=4, help="answers per held-out prompt, before and after")
    parser.add_argument("--seed", type=int, default=0, help="seed of the before/after sampling")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a run may take before it fails")
    parser.add_argument("--quick", action="store_true",
                        help="the tests' tiny random model and tiny steps: checks the bench end to end in minutes")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "BENCHMARKS.md"),
                        help="the Markdown file to write the section into ('' = print only)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as work:
        if args.quick:
            from tests.tiny_models import build_model

            args.model = str(build_model(Path(work) / "tiny-base", chat=False, initializer_range=0.3))
            args.steps, args.response, args.samples = min(args.steps, 2), min(args.response, 8), min(args.samples, 2)
            args.sft_steps, args.reward_steps = 2, 2
        if args.data_dir is None:
            args.data_dir = Path(work) / "data"
        load_before, started = os.getloadavg(), time.monotonic()
        result = run_bench(args)
    command = "HF_HUB_OFFLINE=1 python -m bench.rl " + " ".join(argv)
    body = (f"Command: `{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{time.monotonic() - started:.0f} s in all; load average (1 min) before {load_before[0]:.2f}, after "
            f"{os.getloadavg()[0]:.2f}\n\n" + report(result))
    print(body)
    if args.doc and not args.quick:  # quick figures are a check of the bench, not results worth keeping
        from bench.__main__ import replace_block

        doc = Path(args.doc)
        doc.write_text(replace_block(doc.read_text() if doc.exists() else "# Benchmarks\n", "rl", body, TITLE))
        print(f"wrote {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
