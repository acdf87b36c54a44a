"""Benchmark: the whole lecture on this machine — SFT → reward model → PPO → DPO, each a real run, and its effect.

Run:  HF_HUB_OFFLINE=1 python -m bench.lecture [--model gemma-3-270m] [--data-dir DIR] [--sft-steps N]
                                               [--reward-steps N] [--ppo-steps N] [--dpo-steps N] [--heldout N]
                                               [--samples K] [--doc docs/BENCHMARKS.md] [--resume STAMP]

Each stage is a run exactly as the Train tab starts it: ``Jobs.create`` writes the run folder and config.yaml from the
shipped CPU recipe (``assets/recipes/<stage>-gemma-cpu-demo.yaml``; name, base model, data dir and the runs it starts
from filled in, ``max_steps`` only when a ``--*-steps`` option cuts it) and ``python -m playground.train`` trains it
in its own process. The stages chain as in the lecture: the reward model on the bundled preference pairs, PPO from
the SFT run maximising the reward run, DPO from the SFT run on the same pairs. Wall time per stage is from the run's
creation to its end (model loading included). Then each stage's effect is measured in this process:

* SFT: held-out accuracy of the base and base + SFT adapter (``playground.data.evaluation``: greedy answers to task
  families no training set holds), per family and overall (:func:`sft_gain`).
* Reward: accuracy on the run's own held-out pairs (``data/eval.jsonl``) and Pearson's r between answer length and
  reward over those answers — scored by :class:`playground.runs.reward_model.RewardModel`, as the Reward tab does.
* PPO: the reward model's score of answers to the PPO run's held-out prompts (its ``eval_fraction`` split), K
  samples per prompt at the run's temperature, from the SFT policy (before) and the PPO policy (after); the mean
  difference with a 95 % paired bootstrap interval over prompts, the rise in standard deviations of the SFT
  policy's scores, KL(π ‖ π_SFT) per answer, and three answers before and after. Answers are sampled and scored
  by PPO's own code (:func:`playground.train.ppo.rollout`, ``evaluate_rollout`` on a ``SharedBase`` whose policy
  adapter is swapped), so they are what the run trained on.
* DPO: the held-out preference accuracy of its implicit reward β·log(π/π_ref) (chosen above rejected), as TRL's
  DPOTrainer measures it on the run's held-out pairs at the last step (``eval_rewards/accuracies``), and the
  reward model's score of its answers to the same held-out prompts as PPO's.

The Markdown goes into ``--doc`` between ``<!-- bench:lecture -->`` markers under "The lecture on this machine"
(replacing that block if present), with the command, machine, load and date. ``--model`` takes any base the catalog
resolves (a folder too: the tests run the whole bench on tiny random models in well under a minute). A bench that
stopped (a stage past ``--timeout``, a closed terminal) goes on with ``--resume STAMP`` and the same options: the
runs ``lecture-STAMP-<stage>`` that finished with this bench's config are reused, with the wall time their status
recorded, and the rest are trained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

from bench.__main__ import DOC, machine, replace_block
from bench.harness import ROOT, train_run

RECIPES = ROOT / "assets" / "recipes"
STAGES = ("sft", "reward", "ppo", "dpo")
TITLE = "The lecture on this machine"
BOOTSTRAP_DRAWS = 10_000


# ------------------------------------------------------------------------------------------ the runs


def recipe(stage: str, name: str, model: str, data_dir: Path, steps: int | None, kind: str = "gemma-cpu-demo",
           **fields: Any) -> Any:
    """The stage's shipped recipe (``assets/recipes/<stage>-<kind>.yaml``: the CPU demo unless ``kind`` names
    another) with this bench's name, base model and data dir (and ``steps`` if given); ``fields`` override the rest.
    Built through the config's validation, so a bad value raises :class:`playground.train.config.ConfigError`."""
    from playground.train.config import load

    cfg = load(stage, RECIPES / f"{stage}-{kind}.yaml")
    changes = {"name": name, "base_model": model, "data_dir": str(data_dir), **fields}
    if steps is not None:
        changes["max_steps"] = steps
        if hasattr(cfg, "save_steps"):
            changes["save_steps"] = min(cfg.save_steps, steps)
    return dataclasses.replace(cfg, **changes)


def finished_run(jobs: Any, stage: str, cfg: Any) -> tuple[Path, float] | None:
    """A finished run of this stage under ``cfg.name`` (a ``--resume`` of a bench that stopped), with the wall time
    its status recorded from creation to its end; None when there is none to reuse. A run with another config (the
    recipe or the steps changed since) is refused rather than reused."""
    from playground.runs.jobs import JobError
    from playground.train.config import load

    try:
        folder = jobs.folder(cfg.name)
    except JobError:  # no such run: train it
        return None
    status = folder.status()
    if status.get("state") != "finished":
        raise RuntimeError(f"{cfg.name} exists but is {status.get('state')}: delete it (Runs tab) to train it again.")
    if load(stage, folder.config) != cfg:
        raise RuntimeError(f"{cfg.name} was trained with another config than this bench's: not reused.")
    seconds = float(status.get("finished", 0)) - float(status.get("created", 0))
    print(f"# {stage} {cfg.name}: finished before, {seconds:.0f} s", file=sys.stderr, flush=True)
    return folder.path, seconds


def train(jobs: Any, stage: str, cfg: Any, timeout: float) -> tuple[Path, float]:
    """Run one stage through ``Jobs`` (its own process, as the Train tab starts it); (run folder, wall seconds)."""
    started = time.monotonic()
    folder = train_run(jobs, stage, cfg, timeout)
    seconds = time.monotonic() - started
    print(f"# {stage} {cfg.name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    return folder.path, seconds


# ------------------------------------------------------------------------------------------ SFT


def sft_gain(settings: Any, base_model: str, adapter: Path, limit: int) -> dict[str, Any]:
    """Held-out accuracy of the base and base + adapter, as the Runs tab's Evaluate makes it
    (``evaluation.evaluate_heldout``: the run's prompt format, both models on one backend): ``{"table": per-family
    DataFrame (base %, tuned %, change with 95 % intervals, n; last row all tasks), "examples": n}``."""
    from playground.data import evaluation
    from playground.models.catalog import list_models, resolve_choice, spec_for_folder
    from playground.models.loading import LoadOptions, ModelCache, shared_backend

    examples = evaluation.load_heldout()
    if limit and limit < len(examples):  # a seeded sample keeps every family's share about right
        examples = random.Random(0).sample(examples, limit)
    cache = ModelCache(settings)
    tuned = spec_for_folder(adapter)
    base = resolve_choice(base_model, list_models(settings))
    options = shared_backend([base, tuned], LoadOptions())
    outcome = evaluation.evaluate_heldout(cache, base, tuned, examples, tuned.trained_format or "instruction", options)
    return {"table": outcome.table, "examples": len(examples)}


# ------------------------------------------------------------------------------------------ reward


def reward_checks(settings: Any, run: Path) -> dict[str, Any]:
    """Held-out pair accuracy and Pearson's r of reward vs answer length (words) over the held-out answers, with
    the Reward tab's model and correlation."""
    import pandas as pd

    from playground.data.preference_pairs import read_pairs
    from playground.runs.reward_model import RewardModel, find_run, length_correlation

    pairs = read_pairs(run / "data" / "eval.jsonl")
    model = RewardModel(find_run(run.name, settings), settings)
    scores = model.score([(p.messages, p.system, answer) for p in pairs for answer in (p.chosen, p.rejected)])
    chosen, rejected = scores[0::2], scores[1::2]
    lengths = pd.DataFrame({"words": [len(a.split()) for p in pairs for a in (p.chosen, p.rejected)],
                            "reward": scores})
    r, p = length_correlation(lengths)
    logged = [(m["step"], m["eval_accuracy"]) for m in _metrics(run) if "eval_accuracy" in m]
    return {"pairs": len(pairs), "accuracy": sum(c > w for c, w in zip(chosen, rejected)) / len(pairs),
            "length_r": r, "length_p": p, "logged_accuracy": logged[-1][1] if logged else None,
            "before_accuracy": logged[0][1] if logged and logged[0][0] == 0 else None}


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# ------------------------------------------------------------------------------------------ policies


@dataclasses.dataclass
class Answers:
    """A policy's K sampled answers to each of P prompts: scores and KL per answer (P, K), and the texts."""

    scores: Any
    kl: Any
    texts: list[list[str]]


def policy_file(folder: Path) -> Path:
    """The policy's LoRA weights in ``folder``: a PPO checkpoint's policy.safetensors, else an adapter folder's
    adapter_model.safetensors (which may not exist: callers check)."""
    checkpoint = folder / "policy.safetensors"
    return checkpoint if checkpoint.is_file() else folder / "adapter_model.safetensors"


class Policies:
    """The PPO run's roles (policy, reference = the SFT adapter, reward) on one base model; the policy adapter is
    swapped to answer as the SFT model, the PPO model or the DPO model."""

    def __init__(self, settings: Any, ppo_run: Path, split: Literal["held-out", "train"] = "held-out") -> None:
        from playground.runs.reward_model import find_run
        from playground.train import ppo
        from playground.train.config import load
        from playground.train.ppo_roles import SharedBase

        # The reward model's own score is the measure: a missing-EOS penalty the run trained with is not added.
        self.cfg = dataclasses.replace(load("ppo", ppo_run / "config.yaml"), missing_eos_penalty=0.0)
        if split not in ("held-out", "train"):
            raise ValueError(f"split must be 'held-out' or 'train', not {split!r}")
        if split == "held-out" and not self.cfg.eval_fraction:
            raise ValueError(f"{ppo_run.name} holds out no prompts (eval_fraction 0): nothing to measure on.")
        trained, held_out = ppo.split_prompts(ppo.check_prompts(self.cfg, settings), self.cfg.eval_fraction,
                                              self.cfg.seed)
        self.prompts = held_out if split == "held-out" else trained
        """The prompts answered: the run's held-out split, or its training split (all of them without a split)."""
        reward = find_run(self.cfg.reward_run, settings)
        self.roles = SharedBase(self.cfg, settings, reward)
        self.scorer = ppo.reward_scorer(self.roles, reward, self.cfg.mini_batch_size)
        self.sft_weights = self._policy_weights()

    def _policy_weights(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        from playground.train.ppo_roles import POLICY

        return {k: v.clone() for k, v in get_peft_model_state_dict(self.roles.model, adapter_name=POLICY).items()}

    def use(self, adapter: Path | None) -> None:
        """Answer as the adapter in ``adapter`` (a PPO or DPO run's adapter folder, started from the SFT run, or a PPO
        checkpoint folder, whose policy.safetensors holds the policy's LoRA), or as the SFT model (None)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        from playground.train.ppo_roles import POLICY

        weights = self.sft_weights if adapter is None else load_file(str(policy_file(adapter)))
        result = set_peft_model_state_dict(self.roles.model, weights, adapter_name=POLICY)
        missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k and f".{POLICY}." in k]
        if missing:
            raise ValueError(f"{adapter} doesn't fit the SFT adapter's LoRA ({len(missing)} weights missing).")

    def answers(self, samples: int, seed: int) -> Answers:
        """K answers to each of ``self.prompts``, sampled as PPO samples (its temperature, whole distribution) and scored
        by the reward model; KL(π ‖ π_SFT) summed over each answer's tokens (k1, as the run logs it)."""
        import torch

        from playground.train import ppo, ppo_math

        torch.manual_seed(seed)
        asked = [p for p in self.prompts for _ in range(samples)]
        gen_config = ppo.generation_config(self.cfg, self.roles.tokenizer)
        scores, kls, texts = [], [], []
        for start in range(0, len(asked), self.cfg.batch_size):
            batch = ppo.rollout(self.roles, asked[start:start + self.cfg.batch_size], self.cfg, gen_config)
            batch = ppo.evaluate_rollout(self.roles, batch, self.scorer, self.cfg)
            scores.append(batch.scores.float().cpu())
            kls.append(ppo_math.masked_sum(ppo_math.kl_k1(batch.logprobs, batch.ref_logprobs), batch.mask, 1).cpu())
            texts += batch.texts
        shape = (len(self.prompts), samples)
        return Answers(torch.cat(scores).reshape(shape).numpy(), torch.cat(kls).reshape(shape).numpy(),
                       [texts[i * samples:(i + 1) * samples] for i in range(len(self.prompts))])


def paired_bootstrap(before: Any, after: Any, seed: int = 0, draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float,
                                                                                                    float]:
    """(mean difference, 2.5 %, 97.5 %) of after − before over prompts (each prompt's mean over its samples),
    resampling prompts with replacement (percentile bootstrap, seeded numpy)."""
    import numpy as np

    diffs = np.asarray(after, dtype=float).mean(1) - np.asarray(before, dtype=float).mean(1)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (draws, len(diffs)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def policy_effect(before: Answers, after: Answers) -> dict[str, float]:
    """Mean scores, their difference with its 95 % interval, the rise in SDs of the before-scores, KL per answer;
    and how the before-scores spread: among one prompt's answers (``sd_within``: root of the mean per-prompt
    variance) and between prompts (``sd_between``: SD of the prompts' means, which holds a share of the
    within-prompt noise too). The spread between prompts is noise to an update without a baseline per prompt.
    ``best_of`` is a yardstick for the rise: how much higher the mean would be if the reward model picked the best
    of the K answers to each prompt (best-of-K sampling, whose KL from the policy is at most log K − (K − 1)/K nats;
    Stiennon et al. 2020, Gao et al. 2022)."""
    import numpy as np

    diff, low, high = paired_bootstrap(before.scores, after.scores)
    scores = np.asarray(before.scores, dtype=float)
    sd = float(scores.std(ddof=1))
    within = float(np.sqrt(scores.var(1, ddof=1).mean())) if scores.shape[1] > 1 else float("nan")
    between = float(scores.mean(1).std(ddof=1)) if scores.shape[0] > 1 else float("nan")
    best_of = float(scores.max(1).mean() - scores.mean())
    return {"before": float(scores.mean()), "after": float(after.scores.mean()), "diff": diff, "low": low,
            "high": high, "sd": sd, "rise_sd": diff / sd if sd > 0 else float("nan"), "sd_within": within,
            "sd_between": between, "best_of": best_of, "best_of_sd": best_of / sd if sd > 0 else float("nan"),
            "kl": float(after.kl.mean()), "kl_before": float(before.kl.mean())}


def dpo_accuracy(run: Path) -> float | None:
    """TRL's held-out accuracy of DPO's implicit reward at the run's last evaluation (None if it logged none)."""
    logged = [m["eval_rewards/accuracies"] for m in _metrics(run) if "eval_rewards/accuracies" in m]
    return logged[-1] if logged else None


# ------------------------------------------------------------------------------------------ report


def _quote(text: str, width: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return (flat[:width] + "…" if len(flat) > width else flat) or "(empty)"


def _interval(row: Any) -> str:
    """`` [low, high]`` of a change's 95 % interval, or nothing when there are too few examples for one."""
    low, high = row["change low"], row["change high"]
    return "" if low != low or high != high else f" [{low:+.1f}, {high:+.1f}]"  # NaN is not equal to itself


def _before(accuracy: float | None) -> str:
    """``0.50 before training → `` from the run's evaluation at step 0 (its untrained score head), or nothing when
    it logged none (no held-out pairs, or a run from before the TRL stages evaluated at step 0)."""
    return "" if accuracy is None else f"{accuracy:.2f} before training → "


def _logged_before(accuracy: float | None) -> str:
    """``0.50 at step 0 and `` when the run logged its accuracy before training: the table's before is the run's own
    figure (TRL's evaluation), the after is this bench's scoring of the same pairs."""
    return "" if accuracy is None else f"{accuracy:.2f} at step 0 (the table's before) and "


def report(result: dict[str, Any]) -> str:
    """The Markdown section body: stage table, then each stage's effect."""
    times, sft, rm, ppo, dpo = (result[k] for k in ("times", "sft", "reward", "ppo", "dpo"))
    overall = sft["table"].iloc[-1]
    lines = [f"Base model `{result['model']}`; recipes `assets/recipes/*-gemma-cpu-demo.yaml` "
             f"(steps: {result['steps']}).", "",
             "| stage | run | wall time (run) | effect |", "|---|---|---|---|",
             f"| SFT | `{result['runs']['sft']}` | {times['sft']:.0f} s | held-out accuracy "
             f"{overall['base %']:.1f} % → {overall['tuned %']:.1f} % ({overall['change']:+.1f} points"
             f"{_interval(overall)}, {sft['examples']} examples) |",
             f"| reward | `{result['runs']['reward']}` | {times['reward']:.0f} s | held-out pair accuracy "
             f"{_before(rm['before_accuracy'])}**{rm['accuracy']:.2f}** ({rm['pairs']} pairs); reward vs length "
             f"r = {rm['length_r']:.2f} |",
             f"| PPO | `{result['runs']['ppo']}` | {times['ppo']:.0f} s | held-out score {ppo['before']:+.3f} → "
             f"{ppo['after']:+.3f}: {ppo['diff']:+.3f} [95 % CI {ppo['low']:+.3f}, {ppo['high']:+.3f}] = "
             f"**{ppo['rise_sd']:+.2f} SD**; KL {ppo['kl']:.2f} nats/answer |",
             f"| DPO | `{result['runs']['dpo']}` | {times['dpo']:.0f} s | implicit-reward held-out accuracy "
             f"**{_fmt(dpo['accuracy'])}**; held-out score {dpo['before']:+.3f} → {dpo['after']:+.3f} "
             f"({dpo['diff']:+.3f} [{dpo['low']:+.3f}, {dpo['high']:+.3f}], {dpo['rise_sd']:+.2f} SD) |", "",
             f"Effects measured after the runs in {result['eval_seconds']:.0f} s.", "",
             "**SFT**, held-out accuracy per task family (greedy answers, `playground.data.evaluation`):", "",
             "| task | base % | tuned % | change [95 % interval] | n |", "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['base %']:.1f} | {r['tuned %']:.1f} | {r['change']:+.1f}{_interval(r)} | {r['n']} |"
              for _, r in sft["table"].iterrows()]
    lines += ["", f"**Reward model**: {rm['accuracy']:.3f} of {rm['pairs']} held-out pairs ranked right (the run "
              f"logged {_logged_before(rm['before_accuracy'])}{_fmt(rm['logged_accuracy'])} at its last "
              f"evaluation); Pearson's r between answer length "
              f"(words) and reward over those {2 * rm['pairs']} answers {rm['length_r']:.2f} (p = {rm['length_p']:.2g}).",
              "", f"**PPO**: {result['prompts']} held-out prompts × {result['samples']} sampled answers "
              f"(temperature {result['temperature']}), scored by the reward run. SFT policy {ppo['before']:+.3f} "
              f"(SD {ppo['sd']:.3f}{_spread(ppo)}) → PPO policy {ppo['after']:+.3f}; difference {ppo['diff']:+.3f}, "
              f"95 % paired "
              f"bootstrap interval over prompts [{ppo['low']:+.3f}, {ppo['high']:+.3f}] ({BOOTSTRAP_DRAWS} draws, "
              f"seed 0) = {ppo['rise_sd']:+.2f} SD of the SFT policy's scores. KL(π_PPO ‖ π_SFT) "
              f"{ppo['kl']:.2f} nats per answer (SFT policy against itself: {ppo['kl_before']:.2f}).", "",
              "| prompt | SFT policy (score) | PPO policy (score) |", "|---|---|---|"]
    lines += [f"| {_quote(e['prompt'], 80)} | {_quote(e['before'])} ({e['before_score']:+.2f}) | "
              f"{_quote(e['after'])} ({e['after_score']:+.2f}) |" for e in result["examples"]]
    lines += ["", f"**DPO** (β = {result['dpo_beta']}, from the SFT run, which is also its reference): TRL's "
              f"held-out accuracy of the implicit reward β·log(π/π_ref), chosen above rejected, "
              f"{_fmt(dpo['accuracy'])}; on PPO's held-out prompts the reward model scores its answers "
              f"{dpo['after']:+.3f} against the SFT policy's {dpo['before']:+.3f} (difference {dpo['diff']:+.3f}, "
              f"95 % interval [{dpo['low']:+.3f}, {dpo['high']:+.3f}]); KL(π_DPO ‖ π_SFT) {dpo['kl']:.2f} nats per "
              f"answer."]
    return "\n".join(lines)


def _spread(effect: dict[str, float]) -> str:
    """How the SFT policy's scores spread, within a prompt and between prompts (nothing with one answer each)."""
    if math.isnan(effect["sd_within"]) or math.isnan(effect["sd_between"]):
        return ""
    return (f": {effect['sd_within']:.3f} among one prompt's answers, {effect['sd_between']:.3f} between the "
            f"prompts' means; the best of its answers to each prompt, picked by the reward model, would score "
            f"{effect['best_of']:+.3f} = {effect['best_of_sd']:+.2f} SD higher")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def write_section(doc: Path, body: str) -> None:
    """Put ``body`` in the lecture block of ``doc`` (a new section at the end if it has none)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    doc.write_text(replace_block(text, "lecture", body, TITLE))


# ------------------------------------------------------------------------------------------ main


def run_lecture(args: argparse.Namespace) -> dict[str, Any]:
    """Train the four stages, then measure their effects; the figures :func:`report` prints."""
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs

    settings = Settings(data_dir=args.data_dir)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    stamp = args.resume or time.strftime("%m%d-%H%M%S")
    names = {stage: f"lecture-{stamp}-{stage}" for stage in STAGES}
    steps = {"sft": args.sft_steps, "reward": args.reward_steps, "ppo": args.ppo_steps, "dpo": args.dpo_steps}
    configs = {
        "sft": recipe("sft", names["sft"], args.model, args.data_dir, steps["sft"]),
        "reward": recipe("reward", names["reward"], args.model, args.data_dir, steps["reward"]),
        "ppo": recipe("ppo", names["ppo"], args.model, args.data_dir, steps["ppo"], sft_run=names["sft"],
                      reward_run=names["reward"]),
        "dpo": recipe("dpo", names["dpo"], args.model, args.data_dir, steps["dpo"], sft_run=names["sft"]),
    }
    runs, times = {}, {}
    for stage in STAGES:
        done = finished_run(jobs, stage, configs[stage]) if args.resume else None
        runs[stage], times[stage] = done or train(jobs, stage, configs[stage], args.timeout)

    started = time.monotonic()
    note = lambda what: print(f"# {what}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)  # noqa: E731
    sft = sft_gain(settings, args.model, runs["sft"] / "adapter", args.heldout)
    note("SFT held-out evaluation")
    reward = reward_checks(settings, runs["reward"])
    note("reward checks")
    policies = Policies(settings, runs["ppo"])
    before = policies.answers(args.samples, seed=args.seed)
    note("SFT policy's answers")
    policies.use(runs["ppo"] / "adapter")
    after = policies.answers(args.samples, seed=args.seed)
    note("PPO policy's answers")
    policies.use(runs["dpo"] / "adapter")
    dpo_answers = policies.answers(args.samples, seed=args.seed)
    note("DPO policy's answers")
    examples = [{"prompt": p.messages[-1]["content"], "before": before.texts[i][0], "after": after.texts[i][0],
                 "before_score": float(before.scores[i, 0]), "after_score": float(after.scores[i, 0])}
                for i, p in enumerate(policies.prompts[:3])]
    dpo = policy_effect(before, dpo_answers) | {"accuracy": dpo_accuracy(runs["dpo"])}
    return {"model": args.model, "runs": {s: p.name for s, p in runs.items()}, "times": times,
            "steps": ", ".join(f"{s} {configs[s].max_steps}" for s in STAGES), "sft": sft, "reward": reward,
            "ppo": policy_effect(before, after), "dpo": dpo, "examples": examples,
            "prompts": len(policies.prompts), "samples": args.samples, "temperature": policies.cfg.temperature,
            "dpo_beta": configs["dpo"].beta, "eval_seconds": time.monotonic() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lecture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="base model: a catalog name or a model folder")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir for the runs (default: the app's, or $RLHF_PLAYGROUND_DATA_DIR)")
    for stage in STAGES:
        parser.add_argument(f"--{stage}-steps", type=int, default=None,
                            help=f"cut the {stage} run to this many steps (default: the recipe's)")
    parser.add_argument("--heldout", type=int, default=0, help="SFT: held-out examples to answer (0 = all)")
    parser.add_argument("--samples", type=int, default=4, help="PPO/DPO: sampled answers per held-out prompt")
    parser.add_argument("--seed", type=int, default=0, help="seed of the before/after sampling")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a stage may take before it fails")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file to write the section into")
    parser.add_argument("--resume", default="", metavar="STAMP",
                        help="reuse the finished runs lecture-STAMP-<stage> of a bench that stopped (same options); "
                             "train the stages that have none")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        from playground.core.settings import default_data_dir

        args.data_dir = default_data_dir()
    for stage in STAGES:
        if (getattr(args, f"{stage}_steps") or 1) < 1:
            parser.error(f"--{stage}-steps must be at least 1")
    load_before, started = os.getloadavg(), time.monotonic()
    result = run_lecture(args)
    command = "HF_HUB_OFFLINE=1 python -m bench.lecture " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"Command: `{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{time.monotonic() - started:.0f} s in all; load average (1/5/15 min) before "
              f"{'/'.join(f'{x:.2f}' for x in load_before)}, after "
              f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}\n\n{machine()}\n\n")
    body = header + report(result)
    write_section(args.doc, body)
    print(body)
    print(f"wrote {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
