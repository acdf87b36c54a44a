"""Benchmark: PPO's memory with one shared base model vs the same four roles as four separate model copies, and the
time of a PPO step split into generation, scoring and optimisation.

Run:  HF_HUB_OFFLINE=1 python -m bench.ppo [--model gemma-3-270m|tiny] [--steps 2] [--warmup 1] [--batch 8]
                                            [--response 32] [--sides shared,copies] [--gradient-checkpointing]
Prints a Markdown table and a ratio line. Target: peak memory shared / copies ≤ 0.5. With Gemma 3 270M on 2 CPU
cores the default run takes about 10 minutes.

* Shared (ours): :class:`playground.train.ppo_roles.SharedBase` — one base model; the policy, reference, reward and
  value roles are LoRA adapters switched on it (the reference is the base with adapters off).
* Copies (:class:`FourCopies`, the baseline): what TRL's PPOTrainer up to 1.12 held — a policy model with its LoRA,
  a separate reference model, a separate reward model (``AutoModelForSequenceClassification`` + the reward run's
  LoRA and score head, loaded as the Reward tab loads it) and a separate value model with its LoRA and head.

Both sides run the very same step — :func:`playground.train.ppo.rollout`, ``evaluate_rollout``, ``advantages``,
``ppo_update`` — on the same prompts, config and seed; only the roles object differs. Each side runs in its own
process; its peak memory is that process's max RSS (``getrusage(RUSAGE_SELF)``), which includes the Python and
torch runtime both sides share (measured alone: the ``runtime`` row). The reward model is a reward run made for the
benchmark: a fresh LoRA and score head on the base, saved as the Train tab saves one (scores are random, which
changes nothing about memory or time). Times are medians over the steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sft import ROOT, SEED, model_folder

SIDES = {"shared": "one base model, four adapters (ours: `SharedBase`)",
         "copies": "four separate models (policy, reference, reward, value), as TRL's PPOTrainer ≤ 1.12"}


class FourCopies:
    """The baseline: PPO's four roles as four models, with the interface of ``SharedBase`` that the step uses."""

    def __init__(self, cfg: Any, settings: Any, reward: Any) -> None:
        import torch
        from peft import get_peft_model

        from playground.runs.reward_model import RewardModel
        from playground.train.common import load_base, lora_config

        base, self.tokenizer, self.precision = load_base(cfg, settings)
        self.model = get_peft_model(base, lora_config(cfg, "CAUSAL_LM"))  # the policy
        self.reference = load_base(cfg, settings)[0].eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.reward_model = RewardModel(reward, settings).model
        self.value_model = get_peft_model(load_base(cfg, settings)[0], lora_config(cfg, "CAUSAL_LM"))
        if cfg.gradient_checkpointing:  # as SharedBase: the trained models recompute activations in backward
            for trained in (self.model, self.value_model):
                trained.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        from transformers import GenerationConfig

        from playground.train.ppo_roles import disable_dropout

        for model in (self.model, self.reference, self.value_model):  # as SharedBase: no dropout, neutral sampler
            disable_dropout(model)
        self.model.get_base_model().generation_config = GenerationConfig()
        self.device = next(self.model.parameters()).device
        hidden = base.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1, device=self.device)
        self.reward_pad_id = self.tokenizer.pad_token_id
        self.trainable = [p for p in self.model.parameters() if p.requires_grad] \
            + [p for p in self.value_model.parameters() if p.requires_grad] + list(self.value_head.parameters())

    def autocast(self) -> Any:
        """As ``SharedBase.autocast``: every forward in the run's training precision."""
        from playground.train.ppo_roles import autocast_for

        return autocast_for(self.precision, self.device)

    def generate(self, query: Any, query_mask: Any, generation_config: Any) -> Any:
        import torch

        with torch.no_grad(), self.autocast():
            out = self.model.generate(input_ids=query, attention_mask=query_mask, generation_config=generation_config)
        return out[:, query.shape[1]:]

    def logprobs(self, name: str, ids: Any, mask: Any, tokens: Any, temperature: float,
                 entropy: bool = False) -> tuple[Any, Any]:
        """As ``SharedBase.logprobs`` (the LM head in chunks), on the policy model or the separate reference."""
        from playground.train.ppo_roles import POLICY, head_logprobs, position_ids

        model = self.model if name == POLICY else self.reference
        backbone = model.get_base_model().base_model if name == POLICY else model.base_model
        width = tokens.shape[1]
        with self.autocast():
            hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                              use_cache=False).last_hidden_state[:, -width - 1:-1]
            return head_logprobs(model.get_output_embeddings(), hidden, tokens, temperature, entropy)

    def values(self, ids: Any, mask: Any, answer_length: int) -> Any:
        import torch

        from playground.train.ppo_roles import position_ids

        # ppo_update switches only ``model`` (the policy) to training mode; the value model trains (and, with
        # checkpointing, recomputes its activations) whenever gradients are on, as SharedBase's value role does.
        self.value_model.train(torch.is_grad_enabled())
        backbone = self.value_model.get_base_model().base_model
        with self.autocast():
            hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                              use_cache=False).last_hidden_state[:, -answer_length - 1:-1]
            return self.value_head(hidden).squeeze(-1).float()

    def reward(self, ids: Any) -> Any:
        import torch

        with torch.no_grad(), self.autocast():
            logits = self.reward_model(input_ids=ids, attention_mask=(ids != self.reward_pad_id).long()).logits
        return logits[:, 0].float()


def make_reward_run(base_model: str, folder: str, settings: Any) -> None:
    """A reward run for the benchmark: a fresh SEQ_CLS LoRA + score head on the base, saved as a run saves it."""
    import torch
    from peft import get_peft_model

    from playground.runs.run_folder import RunFolder
    from playground.train.common import load_base, lora_config, save_adapter
    from playground.train.config import RewardConfig

    cfg = RewardConfig(name="rm", base_model=base_model, data_dir=str(settings.data_dir), quantization="none")
    torch.manual_seed(SEED)
    model, _, _ = load_base(cfg, settings, head="score")
    run = RunFolder(settings.runs_dir / "rm")
    run.path.mkdir(parents=True, exist_ok=True)
    save_adapter(get_peft_model(model, lora_config(cfg, "SEQ_CLS")), cfg, run, max_length=cfg.max_length,
                 quantized=False)


def child(side: str, job: dict[str, Any]) -> None:
    """Build one side's roles, run warm-up + timed PPO steps, print the figures as JSON."""
    import torch

    from playground.core.settings import Settings
    from playground.data import prompt_sets
    from playground.runs.reward_model import find_run
    from playground.train import ppo
    from playground.train.config import PPOConfig
    from playground.train.ppo_roles import SharedBase

    torch.set_num_threads(os.cpu_count() or 1)
    settings = Settings(data_dir=Path(job["work"]) / "app")
    cfg = PPOConfig(name=f"ppo-{side}", base_model=job["base_model"], reward_run="rm", data_dir=str(settings.data_dir),
                    quantization="none", batch_size=job["batch"], mini_batch_size=job["batch"] // 2,
                    response_length=job["response"], max_length=job["response"] + 224, seed=SEED,
                    gradient_checkpointing=job.get("checkpointing", False))
    started = time.monotonic()
    run = find_run("rm", settings)
    roles = SharedBase(cfg, settings, run) if side == "shared" else FourCopies(cfg, settings, run)
    load_s = time.monotonic() - started
    scorer = ppo.reward_scorer(roles, run, cfg.mini_batch_size)  # type: ignore[arg-type]
    prompts = prompt_sets.load_all(cfg.datasets, settings)
    gen_config = ppo.generation_config(cfg, roles.tokenizer)
    optimizer = ppo.make_optimizer(roles, cfg)
    scheduler = ppo.make_scheduler(optimizer, 0)  # constant: no warm-up
    generator, scaler = torch.Generator().manual_seed(SEED), ppo.make_scaler(roles)
    torch.manual_seed(SEED)
    rows = []
    for step in range(job["warmup"] + job["steps"]):
        t0 = time.monotonic()
        batch = ppo.rollout(roles, [prompts[i] for i in ppo.prompt_order(len(prompts), cfg.batch_size, step, SEED)],
                            cfg, gen_config)
        t1 = time.monotonic()
        batch = ppo.evaluate_rollout(roles, batch, scorer, cfg)
        adv, returns, _, _ = ppo.advantages(batch, cfg, cfg.kl_coef)
        t2 = time.monotonic()
        ppo.ppo_update(roles, batch, adv, returns, cfg, optimizer, scheduler, generator, scaler)
        t3 = time.monotonic()
        rows.append({"generate": t1 - t0, "score": t2 - t1, "optimize": t3 - t2,
                     "tokens": int(batch.mask.sum()), "length": float(batch.mask.sum(1).float().mean())})
    timed = rows[job["warmup"]:]
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "load_s": load_s,
                      **{key: statistics.median(r[key] for r in timed)
                         for key in ("generate", "score", "optimize", "length")},
                      "step": statistics.median(r["generate"] + r["score"] + r["optimize"] for r in timed)}))


def runtime_mb() -> float:
    """Max RSS of a process that imports what a side imports and loads nothing: the floor under both sides."""
    code = ("import resource, torch, transformers, peft, playground.train.ppo; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="a packaged model key, or 'tiny'")
    parser.add_argument("--steps", type=int, default=2, help="timed PPO steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed PPO steps first")
    parser.add_argument("--batch", type=int, default=8, help="answers per step (minibatches of half)")
    parser.add_argument("--response", type=int, default=32, help="most tokens per answer")
    parser.add_argument("--sides", default="shared,copies")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass, on both sides")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(Path(args.job).read_text()))
        return

    from playground.core.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-ppo-") as work:
        _, base_model = model_folder(args.model, Path(work))  # the imported folder: no GGUF import per side
        settings = Settings(data_dir=Path(work) / "app")
        settings.ensure_dirs()
        make_reward_run(base_model, work, settings)
        job = {"work": work, "base_model": base_model, "steps": args.steps, "warmup": args.warmup,
               "batch": args.batch, "response": args.response, "checkpointing": args.gradient_checkpointing}
        (Path(work) / "job.json").write_text(json.dumps(job))
        results = {}
        for side in args.sides.split(","):
            done = subprocess.run([sys.executable, "-m", "bench.ppo", "--child", side, "--job",
                                   str(Path(work) / "job.json")], cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"side {side} failed:\n{done.stderr[-3000:]}")
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
        floor = runtime_mb()

    print(f"Model {args.model}, float32 on {'CPU' if not _cuda() else 'CUDA'}, batch {args.batch} answers of up to "
          f"{args.response} tokens, minibatches of {args.batch // 2}, 2 PPO epochs"
          f"{', gradient checkpointing on both sides' if args.gradient_checkpointing else ''}; {args.warmup} warm-up + "
          f"{args.steps} timed steps per side, each side in its own process.\n")
    print("| side | peak memory (MB) | above the runtime (MB) | load (s) | generate (s/step) | score (s/step) "
          "| optimize (s/step) | step (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for side, r in results.items():
        print(f"| {SIDES[side]} | {r['peak_mb']:.0f} | {r['peak_mb'] - floor:.0f} | {r['load_s']:.1f} "
              f"| {r['generate']:.2f} | {r['score']:.2f} | {r['optimize']:.2f} | {r['step']:.2f} |")
    print(f"| runtime (torch, transformers, peft imported; no model) | {floor:.0f} | 0 | | | | | |")
    if {"shared", "copies"} <= set(results):
        shared, copies = results["shared"], results["copies"]
        print(f"\nratio peak memory shared / copies: {shared['peak_mb'] / copies['peak_mb']:.2f} "
              f"(target ≤ 0.5; above the runtime: {(shared['peak_mb'] - floor) / (copies['peak_mb'] - floor):.2f})")
        print(f"ratio step time shared / copies: {shared['step'] / copies['step']:.2f}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
