"""PPO stage: maximise a reward model's score with reinforcement learning, held near the start by a KL penalty.

The lecture's step three (Ouyang et al. 2022, "Training language models to follow instructions with human feedback";
Stiennon et al. 2020; Ziegler et al. 2019): maximise E[r(x, y)] − β·KL(π(·|x) ‖ π_ref(·|x)) over prompts x with
PPO (Schulman et al. 2017). TRL removed its PPOTrainer in 1.13, so the loop is ours and reads top to bottom:

    for each step:
        rollout     sample answers_per_prompt answers to each prompt from the policy (the whole tempered
                    distribution)
        score       the reward model's r(x, y) for each answer (less an optional missing-EOS penalty); with several
                    answers to a prompt, less the mean of its siblings' scores (leave-one-out baseline)
        reference   log π_ref per answer token (the reference role) → per-token KL
        values      V(s_t) per answer token (the value role)
        advantages  rewards = −β·KL per token + score at the last token; GAE(γ, λ); whitened
        update      ppo_epochs passes over minibatches: clipped policy loss + vf_coef · clipped value loss,
                    gradient clipping, AdamW on the policy and value adapters only; no dropout anywhere
        log         metrics.jsonl (reward, KL, entropy, length, losses, clip fractions, timings) and a few answers
                    in samples.jsonl, so reward hacking shows when it happens; with held-out prompts, their score
                    before the first step (step 0) and every save_steps steps, from one seed each time
        checkpoint  every save_steps steps and on Stop; Resume continues the step count

The four roles share one base model (:mod:`playground.train.ppo_roles`); the maths is in
:mod:`playground.train.ppo_math`. A checkpoint holds the adapters and value head as safetensors and the optimizer,
scheduler and RNG states as tensors (read back with ``weights_only=True``: nothing is unpickled).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from playground.core.files import staged_folder
from playground.core.settings import Settings
from playground.data import prompt_sets
from playground.data.preference_pairs import encode, encode_prompt
from playground.data.prompt_sets import Prompt
from playground.runs.reward_model import RewardRun
from playground.runs.run_folder import RunFolder
from playground.train import common, ppo_math
from playground.train.common import gpu_memory_peaks, save_adapter, settings_for, uses_4bit
from playground.train.config import ConfigError, PPOConfig
from playground.train.ppo_roles import POLICY, REFERENCE, VALUE, SharedBase

Scorer = Callable[[Sequence[Prompt], list[str], Any, Any], Any]
"""score(prompts, answer texts, answer tokens (B, T), answer mask (B, T)) → scores (B,): the reward to maximise.
The run uses the reward model; tests pass a programmatic one."""

KEEP_CHECKPOINTS = 2


@dataclass
class Rollout:
    """One batch of sampled answers and everything PPO needs about them; tensors are (B, ·) on the model's device."""

    prompts: list[Prompt]
    ids: Any            # (B, P + T) left-padded prompt + answer
    attention: Any      # (B, P + T) 1 on prompt tokens and on answer tokens up to EOS
    answer: Any         # (B, T) answer tokens (padding after EOS)
    mask: Any           # (B, T) 1 up to and including the first EOS
    has_eos: Any        # (B,)
    texts: list[str]
    logprobs: Any = None      # (B, T) log π_old(y_t | ·) under the sampling temperature
    ref_logprobs: Any = None  # (B, T) log π_ref
    values: Any = None        # (B, T) V_old
    scores: Any = None        # (B,) reward model's score (with the missing-EOS penalty)
    entropy: Any = None       # (B, T)

    def rows(self, index: Any) -> Rollout:
        """The answers at ``index`` (a LongTensor of rows), every field sliced alike."""
        picked = index.tolist()
        return Rollout(**{f.name: ([getattr(self, f.name)[i] for i in picked] if f.name in ("prompts", "texts")
                                   else getattr(self, f.name)[index] if getattr(self, f.name) is not None else None)
                          for f in fields(self)})


# ---------------------------------------------------------------------------------------------- data


def prompt_order(count: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Which prompts step ``step`` answers (0-based): consecutive slices of seeded shuffles, one shuffle per pass
    over the prompts. A pure function of the step, so a resumed run continues with the same prompts."""
    start = step * batch_size
    picked = []
    for k in range(start, start + batch_size):
        epoch, position = divmod(k, count)
        order = list(range(count))
        random.Random(seed + epoch).shuffle(order)
        picked.append(order[position])
    return picked


def step_prompts(count: int, cfg: PPOConfig, step: int) -> list[int]:
    """The prompt of each answer step ``step`` samples: batch_size / answers_per_prompt prompts from
    :func:`prompt_order`, each repeated answers_per_prompt times in a row (the groups :func:`ppo_math.leave_one_out`
    centres)."""
    group = cfg.answers_per_prompt
    return [i for i in prompt_order(count, cfg.batch_size // group, step, cfg.seed) for _ in range(group)]


def split_prompts(prompts: list[Prompt], eval_fraction: float, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """A seeded held-out split of the prompts (none when ``eval_fraction`` is 0)."""
    held = int(len(prompts) * eval_fraction)
    if held == 0:
        return prompts, []
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    return [prompts[i] for i in order[held:]], [prompts[i] for i in order[:held]]


def total_steps(cfg: PPOConfig, prompts: int) -> int:
    """max_steps, or enough steps for ``epochs`` passes over the prompts."""
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * prompts * cfg.answers_per_prompt / cfg.batch_size))


# ---------------------------------------------------------------------------------------------- rollout


def generation_config(cfg: PPOConfig, tokenizer: Any) -> Any:
    """The sampler: the whole tempered distribution and nothing else. PPO's ratio π/π_old and its KL use the
    log-probabilities of exactly this distribution (:meth:`SharedBase.logprobs` at ``cfg.temperature``), so top-k and
    top-p are off, and there is no ``min_new_tokens`` (it would ban EOS at the first position, which the recomputed
    log-probabilities don't). :class:`SharedBase` also empties the model's own generation_config, whose fields
    transformers would otherwise fill in (e.g. a repetition penalty)."""
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0,
                            max_new_tokens=cfg.response_length, pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id)


def encode_queries(prompts: Sequence[Prompt], tokenizer: Any, cfg: PPOConfig, device: Any) -> tuple[Any, Any]:
    """Left-padded prompt ids and mask (B, P), rendered as Compare prompts the tuned model; long prompts keep their
    first token (BOS) and their last tokens, leaving room for the answer."""
    room = cfg.max_length - cfg.response_length
    rows = []
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt.messages, prompt.system, cfg.prompt_format)
        rows.append(ids if len(ids) <= room else ids[:1] + ids[len(ids) - room + 1:])
    padded = tokenizer.pad({"input_ids": rows}, padding_side="left", return_tensors="pt")
    return padded["input_ids"].to(device), padded["attention_mask"].to(device)


def rollout(roles: SharedBase, prompts: list[Prompt], cfg: PPOConfig, gen_config: Any) -> Rollout:
    """Sample one answer per prompt with the policy."""
    import torch

    tokenizer = roles.tokenizer
    query, query_mask = encode_queries(prompts, tokenizer, cfg, roles.device)
    chunks = []
    micro = cfg.mini_batch_size // cfg.gradient_accumulation
    for start in range(0, len(prompts), micro):
        part = roles.generate(query[start:start + micro], query_mask[start:start + micro], gen_config)
        chunks.append(part)
    # the micro-batches' answers end at different lengths: right-padded to the longest (with the pad token, as
    # generate pads a micro-batch's shorter answers after their EOS), on the device they were sampled on
    answer = torch.nn.utils.rnn.pad_sequence([row for part in chunks for row in part], batch_first=True,
                                             padding_value=tokenizer.pad_token_id, padding_side="right")
    mask, has_eos = ppo_math.answer_mask(answer, tokenizer.eos_token_id)
    texts = [tokenizer.decode(row[: int(m.sum())], skip_special_tokens=True).strip()
             for row, m in zip(answer.tolist(), mask)]
    return Rollout(prompts, torch.cat([query, answer], 1), torch.cat([query_mask, mask.long()], 1), answer, mask,
                   has_eos, texts)


def reward_scorer(roles: SharedBase, run: RewardRun, micro: int) -> Scorer:
    """The reward run as a scorer: each answer re-encoded exactly as the reward model trained and as the Reward tab
    scores (:func:`playground.data.preference_pairs.encode`, the run's prompt format and length)."""
    import torch

    def score(prompts: Sequence[Prompt], texts: list[str], answer: Any, mask: Any) -> Any:
        scores = []
        for start in range(0, len(texts), micro):
            ids = [encode(roles.tokenizer, p.messages, p.system, text, run.prompt_format, run.max_length)
                   for p, text in zip(prompts[start:start + micro], texts[start:start + micro])]
            batch = roles.tokenizer.pad({"input_ids": ids}, padding_side="right", return_tensors="pt")["input_ids"]
            scores.append(roles.reward(batch.to(roles.device)))
        return torch.cat(scores)

    return score


def evaluate_rollout(roles: SharedBase, batch: Rollout, scorer: Scorer, cfg: PPOConfig) -> Rollout:
    """Fill in scores, old and reference log-probs, entropy and values (no gradients), a micro-batch at a time."""
    import torch

    batch.scores = ppo_math.penalize_missing_eos(scorer(batch.prompts, batch.texts, batch.answer, batch.mask).float(),
                                                 batch.has_eos, cfg.missing_eos_penalty)
    width = batch.answer.shape[1]
    micro = cfg.mini_batch_size // cfg.gradient_accumulation
    parts: dict[str, list[Any]] = {"logprobs": [], "ref": [], "entropy": [], "values": []}
    roles.model.eval()
    with torch.no_grad():
        for start in range(0, batch.ids.shape[0], micro):
            ids, attention = batch.ids[start:start + micro], batch.attention[start:start + micro]
            tokens = batch.answer[start:start + micro]
            logprobs, entropy = roles.logprobs(POLICY, ids, attention, tokens, cfg.temperature, entropy=True)
            parts["logprobs"].append(logprobs)
            parts["entropy"].append(entropy)
            parts["ref"].append(roles.logprobs(REFERENCE, ids, attention, tokens, cfg.temperature)[0])
            parts["values"].append(roles.values(ids, attention, width))
    batch.logprobs, batch.ref_logprobs = torch.cat(parts["logprobs"]), torch.cat(parts["ref"])
    batch.entropy, batch.values = torch.cat(parts["entropy"]), torch.cat(parts["values"])
    return batch


# ---------------------------------------------------------------------------------------------- update


def advantages(batch: Rollout, cfg: PPOConfig, kl_coef: float) -> tuple[Any, Any, Any, Any]:
    """(advantages, returns, per-token KL estimate, non-score reward), each (B, T): InstructGPT's reward shaped
    per token (from each answer's score less its siblings' mean when a prompt has several answers), GAE,
    advantages whitened over the batch."""
    kl = ppo_math.kl_estimate(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator)
    scores = ppo_math.leave_one_out(batch.scores, cfg.answers_per_prompt)
    rewards, non_score = ppo_math.shape_rewards(scores, kl, batch.mask, kl_coef)
    if cfg.whiten_rewards:
        rewards = ppo_math.whiten(rewards, batch.mask, shift_mean=False)
    adv, returns = ppo_math.gae(rewards, batch.values, batch.mask, cfg.gamma, cfg.lam)
    return ppo_math.whiten(adv, batch.mask), returns, kl, non_score


def backward_minibatch(roles: SharedBase, part: Rollout, adv: Any, returns: Any, cfg: PPOConfig,
                       weight: float, scaler: Any) -> dict[str, float]:
    """One forward and backward pass over ``part`` (a micro-batch of the rollout, with its (b, T) advantages and
    returns): the clipped policy loss through the policy, then ``vf_coef`` × the clipped value loss through the
    value model, each scaled by ``weight`` (1 / gradient_accumulation) and by ``scaler`` (fp16's loss scale; a
    no-op otherwise). Gradients accumulate in the trainable parameters; returns the losses and statistics."""
    width = part.answer.shape[1]
    logprobs = roles.logprobs(POLICY, part.ids, part.attention, part.answer, cfg.temperature)[0]
    pg_loss, pg_stats = ppo_math.policy_loss(logprobs, part.logprobs, adv, part.mask, cfg.cliprange)
    scaler.scale(pg_loss * weight).backward()
    values = roles.values(part.ids, part.attention, width)
    vf_loss, vf_stats = ppo_math.value_loss(values, part.values, returns, part.mask, cfg.cliprange_value)
    scaler.scale(cfg.vf_coef * vf_loss * weight).backward()
    return {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(), "clipfrac": pg_stats["clipfrac"].item(),
            "approx_kl": pg_stats["approx_kl"].item(), "ratio": pg_stats["ratio"].item(),
            "ratio_max_dev": pg_stats["ratio_max_dev"].item(), "value_clipfrac": vf_stats["clipfrac"].item()}


def make_optimizer(roles: SharedBase, cfg: PPOConfig) -> Any:
    """AdamW over the policy and value adapters and the value head (``roles.trainable``, picked by their LoRA names),
    with the config's weight decay (0 by default: decay would pull the policy's LoRA towards the bare base)."""
    import torch

    return torch.optim.AdamW(roles.trainable, lr=cfg.learning_rate, eps=1e-5, weight_decay=cfg.weight_decay)


def make_scaler(roles: SharedBase) -> Any:
    """fp16's gradient scaler (small fp16 gradients would flush to zero without it), as accelerate gives the TRL
    stages; disabled, a pass-through, in bf16 and float32."""
    import torch

    return torch.amp.GradScaler(roles.device.type, enabled=bool(roles.precision.get("fp16")))


def make_scheduler(optimizer: Any, warmup: int) -> Any:
    """The learning rate, stepped once per PPO step: warmed up linearly from 0 over ``warmup`` steps, then constant
    (transformers' schedule, a ``LambdaLR``: a checkpoint's scheduler state loads into it whatever its lambda)."""
    from transformers import get_constant_schedule_with_warmup

    return get_constant_schedule_with_warmup(optimizer, warmup)


def ppo_update(roles: SharedBase, batch: Rollout, adv: Any, returns: Any, cfg: PPOConfig, optimizer: Any,
               scheduler: Any, generator: Any, scaler: Any) -> dict[str, float]:
    """``ppo_epochs`` passes over the batch in shuffled minibatches; returns the mean losses and statistics (and
    ``ratio_max_dev``, the largest |π/π_old − 1| of any token in any pass). With fp16 the gradients are unscaled
    before clipping, and a step whose gradients overflowed is skipped (:func:`make_scaler`)."""
    import torch

    size = batch.ids.shape[0]
    micro = cfg.mini_batch_size // cfg.gradient_accumulation
    sums: dict[str, float] = {}
    count = applied = skipped = 0
    norms = 0.0
    roles.model.train()  # activation checkpointing runs in training mode only; every dropout is off (SharedBase)
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(size, generator=generator).to(batch.ids.device)
        for start in range(0, size, cfg.mini_batch_size):
            optimizer.zero_grad(set_to_none=True)
            for micro_start in range(start, start + cfg.mini_batch_size, micro):
                rows = order[micro_start:micro_start + micro]
                stats = backward_minibatch(roles, batch.rows(rows), adv[rows], returns[rows], cfg,
                                           1.0 / cfg.gradient_accumulation, scaler)
                for key, value in stats.items():
                    sums[key] = max(sums.get(key, 0.0), value) if key == "ratio_max_dev" \
                        else sums.get(key, 0.0) + value
                count += 1
            scaler.unscale_(optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(roles.trainable, cfg.max_grad_norm))
            if math.isfinite(norm):  # an fp16 overflow's inf/NaN: the scaler skips that update (counted below)
                norms += norm
                applied += 1
            else:
                skipped += 1
            scaler.step(optimizer)
            scaler.update()
    scheduler.step()
    roles.model.eval()
    result = {key: value if key == "ratio_max_dev" else value / count for key, value in sums.items()}
    if applied:  # before clipping, the mean over the optimizer updates that were applied
        result["grad_norm"] = norms / applied
    if scaler.is_enabled():  # fp16: the loss scale, and how many of this step's updates overflowed and were skipped
        result |= {"loss_scale": float(scaler.get_scale()), "skipped_updates": float(skipped)}
    return result


# ---------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(roles: SharedBase, folder: RunFolder, step: int, optimizer: Any, scheduler: Any,
                    kl: Any, generator: Any, scaler: Any) -> Path:
    """checkpoints/checkpoint-<step>/: policy and value adapters + value head (safetensors), optimizer, scheduler
    and RNG states (tensors only), step and β (JSON). Written whole into a temporary folder that then takes the
    checkpoint's place (:func:`playground.core.files.staged_folder`); keeps two."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = folder.checkpoints / f"checkpoint-{step}"
    policy = get_peft_model_state_dict(roles.model, adapter_name=POLICY)
    value = get_peft_model_state_dict(roles.model, adapter_name=VALUE) | {
        f"value_head.{k}": v for k, v in roles.value_head.state_dict().items()}
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    with staged_folder(target) as staging:
        save_file({k: v.detach().contiguous().cpu() for k, v in policy.items()}, str(staging / "policy.safetensors"))
        save_file({k: v.detach().contiguous().cpu() for k, v in value.items()}, str(staging / "value.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
                    "scaler": scaler.state_dict()}, staging / "state.pt")
        (staging / "state.json").write_text(json.dumps({"step": step, "kl": kl.state_dict()}))
    old = sorted((p for p in folder.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    for stale in old[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(stale, ignore_errors=True)
    return target


def load_checkpoint(roles: SharedBase, checkpoint: Path, optimizer: Any, scheduler: Any, kl: Any,
                    generator: Any, scaler: Any) -> int:
    """Restore what :func:`save_checkpoint` wrote; returns the step to continue after."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(roles.model, load_file(str(checkpoint / "policy.safetensors")), adapter_name=POLICY)
    value = load_file(str(checkpoint / "value.safetensors"))
    set_peft_model_state_dict(roles.model, {k: v for k, v in value.items() if not k.startswith("value_head.")},
                              adapter_name=VALUE)
    roles.value_head.load_state_dict({k.removeprefix("value_head."): v.to(roles.device)
                                      for k, v in value.items() if k.startswith("value_head.")})
    state = torch.load(checkpoint / "state.pt", weights_only=True, map_location="cpu")  # tensors only
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):  # empty when the scaler was disabled; absent in checkpoints from before fp16
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    generator.set_state(state["rng"]["generator"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["rng"]["cuda"])
    info = json.loads((checkpoint / "state.json").read_text())
    kl.load_state_dict(info["kl"])
    return int(info["step"])


# ---------------------------------------------------------------------------------------------- the run


def reward_run_for(cfg: PPOConfig, settings: Settings) -> RewardRun:
    """The reward run named in the config, checked to share the policy's base model and its 4-bit setting."""
    run = common.reward_run_for(cfg, settings, "PPO shares one base model among its roles")
    if run.quantized != uses_4bit(cfg):
        trained, here, setting = ("4-bit (QLoRA)", "in full precision", "4bit") if run.quantized else \
            ("full-precision", "in 4-bit", "none")
        raise ConfigError("reward_run", f"{run.name!r} was trained on a {trained} base and this run loads the base "
                                        f"{here}; PPO scores with the reward adapter on its own base, so the scores "
                                        f"would not be the ones the reward model learned. Set quantization to "
                                        f"{setting}, or pick a reward model trained {here}.")
    return run


def check_prompts(cfg: PPOConfig, settings: Settings) -> list[Prompt]:
    """The config's prompts, or a :class:`ConfigError` on ``datasets`` saying what is wrong."""
    try:
        prompts = prompt_sets.load_all(cfg.datasets, settings, cfg.max_examples)
    except prompt_sets.PromptSetError as error:
        raise ConfigError("datasets", str(error)) from error
    per_step = cfg.batch_size // cfg.answers_per_prompt
    training = len(prompts) - int(len(prompts) * cfg.eval_fraction)  # what split_prompts leaves to train on
    if training < per_step:
        held = f" once {len(prompts) - training} are held out (eval_fraction)" if training < len(prompts) else ""
        raise ConfigError("datasets", f"{training} prompts to train on{held}, fewer than the {per_step} a step "
                                      f"answers (batch_size / answers_per_prompt): a step would ask a prompt twice.")
    return prompts


def _sample_rows(step: int, batch: Rollout, kl: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` answers of the step for the sample viewer: prompt, answer, score, KL (nats), length."""
    from playground.data.instructions import short

    rows = []
    for i in range(min(count, len(batch.texts))):
        prompt = batch.prompts[i].messages[-1]["content"] if batch.prompts[i].messages else ""
        rows.append({"step": step, "prompt": short(prompt, 300), "answer": batch.texts[i],
                     "score": round(float(batch.scores[i]), 4),
                     "kl": round(float(ppo_math.masked_sum(kl[i], batch.mask[i])), 4),
                     "tokens": int(batch.mask[i].sum()), "eos": bool(batch.has_eos[i])})
    return rows


def train(cfg: PPOConfig, folder: RunFolder, resume: bool = False, scorer: Scorer | None = None,
          roles: SharedBase | None = None) -> str:
    """Run PPO in ``folder``; returns "finished" or "stopped". ``scorer`` replaces the reward model (tests); the
    roles are built from the config unless given (the benchmark's four-copies baseline)."""
    import torch

    settings = settings_for(cfg)
    reward = None if scorer is not None else reward_run_for(cfg, settings)
    train_prompts, held_prompts = split_prompts(check_prompts(cfg, settings), cfg.eval_fraction, cfg.seed)
    roles = roles or SharedBase(cfg, settings, reward)
    if scorer is None:
        scorer = reward_scorer(roles, reward, cfg.mini_batch_size // cfg.gradient_accumulation)  # type: ignore[arg-type]
    gen_config = generation_config(cfg, roles.tokenizer)
    steps = total_steps(cfg, len(train_prompts))
    optimizer, scaler = make_optimizer(roles, cfg), make_scaler(roles)
    scheduler = make_scheduler(optimizer, int(steps * cfg.warmup_ratio))
    kl = (ppo_math.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
          else ppo_math.FixedKLController(cfg.kl_coef))
    generator = torch.Generator().manual_seed(cfg.seed)
    step = 0
    checkpoint = folder.last_checkpoint() if resume else None
    if checkpoint is not None:
        step = load_checkpoint(roles, checkpoint, optimizer, scheduler, kl, generator, scaler)
    # Steps logged after the start run again: the charts must not double them. That includes a run killed before
    # its first checkpoint, which the app starts over (without --resume); its step-0 check stays (the same policy).
    folder.forget_after(step)
    print(f"{len(train_prompts)} prompts ({len(held_prompts)} held out); "
          f"{f'resuming from {checkpoint.name}' if checkpoint else 'starting from step 0'}; {steps} PPO steps of "
          f"{cfg.batch_size} answers", flush=True)
    folder.update_status(state="running", step=step, max_steps=steps)
    if held_prompts and step == 0 and not folder.evaluated_at_start():
        # the starting policy's held-out score: the "before" that every later held-out check is read against
        folder.append_metrics({"step": 0, "max_steps": steps, "time": time.time(), "elapsed_s": 0.0,
                               **evaluate_held_out(roles, held_prompts, scorer, cfg, gen_config)})
    started, first_step, stopped = time.monotonic(), step, False
    while step < steps:
        t0 = time.monotonic()
        prompts = [train_prompts[i] for i in step_prompts(len(train_prompts), cfg, step)]
        batch = rollout(roles, prompts, cfg, gen_config)
        t1 = time.monotonic()
        batch = evaluate_rollout(roles, batch, scorer, cfg)
        adv, returns, kl_tokens, non_score = advantages(batch, cfg, kl.value)
        t2 = time.monotonic()
        beta = kl.value
        stats = ppo_update(roles, batch, adv, returns, cfg, optimizer, scheduler, generator, scaler)
        t3 = time.monotonic()
        step += 1
        kl_per_answer = ppo_math.masked_sum(ppo_math.kl_k1(batch.logprobs, batch.ref_logprobs), batch.mask, 1)
        kl.update(float(kl_per_answer.mean()), cfg.batch_size)
        elapsed = time.monotonic() - started
        lengths = batch.mask.sum(1)
        row = {"step": step, "max_steps": steps, "time": time.time(), "elapsed_s": round(elapsed, 3),
               "score": float(batch.scores.mean()), "score_std": float(batch.scores.std(unbiased=False)),
               "reward": float((batch.scores + ppo_math.masked_sum(non_score, batch.mask, 1)).mean()),
               "kl": float(kl_per_answer.mean()), "kl_coef": beta,
               "entropy": float(ppo_math.masked_mean(batch.entropy, batch.mask)),
               "response_length": float(lengths.mean()), "eos_share": float(batch.has_eos.float().mean()),
               "loss": stats["policy_loss"] + cfg.vf_coef * stats["value_loss"], **stats,
               "learning_rate": optimizer.param_groups[0]["lr"],
               "time_generate": round(t1 - t0, 3), "time_score": round(t2 - t1, 3),
               "time_optimize": round(t3 - t2, 3),
               "tokens_per_s": round(float(lengths.sum()) / max(t3 - t0, 1e-9), 1)}
        row["score_low"], row["score_high"] = row["score"] - row["score_std"], row["score"] + row["score_std"]
        if held_prompts and (step % cfg.save_steps == 0 or step == steps):
            row |= evaluate_held_out(roles, held_prompts, scorer, cfg, gen_config)
        row |= gpu_memory_peaks()  # this step's, held-out answers included
        folder.append_metrics(row)
        with folder.samples_file.open("a") as out:
            for sample in _sample_rows(step, batch, kl_tokens, cfg.samples_per_step):
                out.write(json.dumps(sample) + "\n")
        done = step - first_step
        folder.update_status(step=step, max_steps=steps, elapsed_s=elapsed,
                             eta_s=elapsed / done * (steps - step))
        print(f"step {step}/{steps}: score {row['score']:.3f} ± {row['score_std']:.3f}, KL {row['kl']:.3f}, "
              f"length {row['response_length']:.1f}, policy loss {stats['policy_loss']:.4f}, value loss "
              f"{stats['value_loss']:.4f} ({t1 - t0:.1f}s generate, {t2 - t1:.1f}s score, {t3 - t2:.1f}s update)",
              flush=True)
        stopped = folder.stop_requested()
        if stopped or step % cfg.save_steps == 0 or step == steps:
            save_checkpoint(roles, folder, step, optimizer, scheduler, kl, generator, scaler)
        if stopped:
            break
    save_adapter(roles.model, cfg, folder, reward_run=cfg.reward_run, max_length=cfg.max_length,
                 quantized=uses_4bit(cfg))
    return "stopped" if stopped else "finished"


def evaluate_held_out(roles: SharedBase, prompts: list[Prompt], scorer: Scorer, cfg: PPOConfig,
                      gen_config: Any) -> dict[str, float]:
    """Mean score and KL of the policy's answers to the held-out prompts (sampled as in training), and how many
    prompts were answered. Every check samples from the same seed (common random numbers: a difference between two
    checks is less the luck of the draw and more the policy's change) on a forked random state, so the checks leave
    the training's sampling exactly as it would be without them."""
    import torch

    scores, kls = [], []
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        for start in range(0, len(prompts), cfg.batch_size):
            batch = evaluate_rollout(roles, rollout(roles, prompts[start:start + cfg.batch_size], cfg, gen_config),
                                     scorer, cfg)
            scores.append(batch.scores)
            kls.append(ppo_math.masked_sum(ppo_math.kl_k1(batch.logprobs, batch.ref_logprobs), batch.mask, 1))
    return {"eval_score": float(torch.cat(scores).mean()), "eval_kl": float(torch.cat(kls).mean()),
            "eval_prompts": len(prompts)}


def main(cfg: PPOConfig, folder: RunFolder, resume: bool = False) -> str:
    """The stage's entry point (``python -m playground.train ppo config.yaml``). One process only: the loop has no
    distributed code, so under ``accelerate launch`` each process would run a whole PPO of its own; it is refused
    (:class:`playground.core.distributed.DistributedError`, recorded as the run's failure by the main process)."""
    from playground.core.distributed import require_single_process

    require_single_process("PPO")
    return train(cfg, folder, resume)
