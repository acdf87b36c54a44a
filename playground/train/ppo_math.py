"""The arithmetic of PPO for language models, as small pure functions: tensors in, tensors out, no model code.

Where each piece comes from:

- Schulman et al. 2017, "Proximal Policy Optimization Algorithms": the clipped surrogate objective
  (:func:`policy_loss`) and the clipped value loss used by its reference implementation (:func:`value_loss`).
- Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation": :func:`gae`.
- Ouyang et al. 2022, "Training language models to follow instructions with human feedback" (InstructGPT): the
  objective is the reward model's score minus β·KL(policy ‖ reference), spent per token (:func:`shape_rewards`).
- Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences": the per-token KL penalty and the
  adaptive KL coefficient (:class:`AdaptiveKLController`, their §2.2).
- Schulman 2020, "Approximating KL Divergence" (blog post): the k1 and k3 estimators (:func:`kl_k1`, :func:`kl_k3`).

Shapes: B = batch of answers, T = answer tokens, V = vocabulary. A mask is a float or bool (B, T) tensor holding 1 for
the answer's real tokens (up to and including the first EOS) and 0 for padding after it. Positions where the mask is 0
never influence a result, even when they hold huge numbers: every function selects with ``torch.where`` before any
arithmetic, so garbage there can give neither a wrong value nor a NaN gradient.
"""

from __future__ import annotations

from typing import Literal

import torch

Tensor = torch.Tensor


def _keep(mask: Tensor, like: Tensor) -> Tensor:
    """The mask as a bool tensor broadcast to ``like``'s shape."""
    return mask.to(torch.bool).expand_as(like)


def _zero_outside(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with masked-out positions replaced by 0 (a select, not a product: 0·inf would be NaN)."""
    return torch.where(_keep(mask, x), x, torch.zeros_like(x))


# --- log-probabilities and entropy -------------------------------------------------------------------------------


def logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(token) under softmax(logits): (B, T, V) logits and (B, T) long tokens → (B, T) float32.

    Computed as logit[token] − logsumexp(logits) in float32, so bf16 logits do not lose precision in the normaliser,
    and without materialising a full (B, T, V) log-softmax beside the logits.
    """
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1).float()
    return picked - torch.logsumexp(logits.float(), dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) at each position: (B, T, V) → (B, T) float32.

    H = logsumexp(z) − Σ p·z, which equals −Σ p·log p but avoids log of underflowed probabilities. Logged to watch
    the policy collapse (entropy falling to 0) during PPO.
    """
    z = logits.float()
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(dim=-1)


def answer_mask(tokens: Tensor, eos_token_id: int | list[int] | None) -> tuple[Tensor, Tensor]:
    """Which generated tokens belong to the answer: (B, T) long → (mask (B, T) float32, has_eos (B,) bool).

    The mask is 1 up to and including the first EOS token and 0 after it. Only the first EOS counts, because the pad
    token is often the EOS token. An answer with no EOS keeps all T positions: generation was cut at the length limit
    (``has_eos`` False lets :func:`penalize_missing_eos` penalise it). With ``eos_token_id`` None every position is kept.
    The mask is never all zero for T ≥ 1: an answer that starts with EOS keeps that one token.
    """
    if eos_token_id is None:
        everything = torch.ones(tokens.shape, dtype=torch.float32, device=tokens.device)
        return everything, torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    is_eos = torch.isin(tokens, torch.tensor(ids, dtype=tokens.dtype, device=tokens.device))
    eos_before = is_eos.long().cumsum(dim=1) - is_eos.long()  # how many EOS strictly before each position
    return (eos_before == 0).float(), is_eos.any(dim=1)


# --- masked statistics -------------------------------------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over positions where ``mask`` is 1: over everything (dim None, a 0-dim tensor) or along ``dim``."""
    kept = _zero_outside(x, mask)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (dim None: over all). A row with no such position gives 0
    rather than NaN: the count is clamped to at least 1."""
    count = masked_sum(torch.ones_like(x), mask, dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over all positions where ``mask`` is 1, a 0-dim tensor. Bessel-corrected (÷(n−1)) when
    ``unbiased`` and there are at least 2 entries; a single entry has variance 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = masked_sum(torch.ones_like(x), mask)
        var = torch.where(n > 1, var * n / (n - 1).clamp(min=1), var)
    return var


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise ``x`` (B, T) to mean 0 and variance 1 over the masked entries: (x − mean) / sqrt(var + 1e-8).

    Used on advantages so the policy step size does not depend on the reward scale. With ``shift_mean`` False the mean
    is added back (only the spread is normalised), as TRL does for rewards. Masked-out positions come back as 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return _zero_outside(out, mask)


# --- KL to the reference model -----------------------------------------------------------------------------------


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k1 = log p(x) − log q(x) per token, (B, T) → (B, T): unbiased for KL(p ‖ q) on samples x ~ p, but any single
    token can be negative. p is the policy, q the reference model."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k3 = (r − 1) − log r with r = q(x)/p(x), per token, (B, T) → (B, T): unbiased for KL(p ‖ q) on samples from
    p like k1, but never negative and of lower variance (Schulman 2020)."""
    log_r = ref_logprobs - logprobs
    return torch.expm1(log_r) - log_r


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, estimator: Literal["k1", "k3"]) -> Tensor:
    """The per-token KL estimate, (B, T), with the estimator the run's config names."""
    if estimator == "k1":
        return kl_k1(logprobs, ref_logprobs)
    if estimator == "k3":
        return kl_k3(logprobs, ref_logprobs)
    raise ValueError(f"unknown KL estimator {estimator!r}: expected 'k1' or 'k3'")


# --- rewards and advantages --------------------------------------------------------------------------------------


def penalize_missing_eos(scores: Tensor, has_eos: Tensor, penalty: float) -> Tensor:
    """The score to maximise: (B,) scores less ``penalty`` for each answer without an EOS (cut at the length limit;
    ``has_eos`` (B,)), discouraging rambling until the limit. The one place the penalty is applied: the logged
    score, the shaped rewards and the held-out figures all use its result."""
    if penalty <= 0:
        return scores
    return scores - penalty * (~has_eos.to(torch.bool)).to(scores.dtype)


def leave_one_out(scores: Tensor, group: int) -> Tensor:
    """Each answer's score less the mean score of the other answers to its prompt: (B,) scores whose consecutive
    runs of ``group`` answers share a prompt → (B,) centred scores (``group`` 1: unchanged).

    A baseline that depends only on the prompt and the *other* answers leaves the policy gradient unbiased and takes
    the prompt's difficulty out of the advantage, so an answer is pushed up or down for being better or worse than
    its siblings, not for having drawn an easy prompt (RLOO's baseline, Ahmadian et al. 2024 "Back to Basics";
    Kool et al. 2019). Written here because it is one line of arithmetic on our (B,) layout."""
    if group <= 1:
        return scores
    if scores.shape[0] % group:
        raise ValueError(f"{scores.shape[0]} scores don't split into groups of {group}")
    grouped = scores.reshape(-1, group)
    others = (grouped.sum(1, keepdim=True) - grouped) / (group - 1)
    return (grouped - others).reshape(-1)


def shape_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> tuple[Tensor, Tensor]:
    """Per-token rewards, InstructGPT style: −β·KL at every answer token plus the reward model's score at the last.

    ``scores`` (B,) is the score of each whole answer (after :func:`penalize_missing_eos`); ``kl`` (B, T) the
    per-token KL estimate. Returns (rewards (B, T), non_score (B, T)) where non_score = −kl_coef·kl inside the mask and
    0 outside, and rewards is non_score plus the score at each row's last real token (the last index where the mask
    is 1) — the only place the whole answer is known.

    A row whose mask is all zero (an empty answer) gets its score at index 0 so it still appears in reward sums; note
    that :func:`gae` ignores it there (the position is masked). :func:`answer_mask` never returns such a row.
    """
    non_score = _zero_outside(-kl_coef * kl, mask)
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = torch.where(mask.to(torch.bool), positions, torch.zeros_like(positions)).argmax(dim=1)  # all-zero row → 0
    rewards = non_score.scatter_add(1, last.unsqueeze(1), scores.to(non_score.dtype).unsqueeze(1))
    return rewards, non_score


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets: (B, T) rewards, values and mask → (advantages, returns).

    Backward recursion δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}. Rewards and values outside the mask count
    as 0, so the value after an answer's last real token is 0: the episode ends there. returns = advantages + values
    (the value head's regression target). Both are 0 outside the mask. Pass detached values: advantages are targets.
    """
    r, v = _zero_outside(rewards, mask), _zero_outside(values, mask)
    steps = rewards.shape[1]
    next_value = r.new_zeros(r.shape[0])
    next_advantage = torch.zeros_like(next_value)
    advantages = torch.zeros_like(r)
    # A Python loop over T is fine: T is an answer's length (at most a few hundred), each step is one small vector
    # operation over B, and this runs once per rollout, next to generation and forward passes costing far more.
    for t in reversed(range(steps)):
        delta = r[:, t] + gamma * next_value - v[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = v[:, t]
    advantages = _zero_outside(advantages, mask)
    return advantages, _zero_outside(advantages + v, mask)


# --- losses ------------------------------------------------------------------------------------------------------


def policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                clip_range: float) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate loss (to minimise) over the masked tokens: (B, T) inputs → (scalar, stats).

    ratio = exp(logp − old_logp); per token the loss is max(−A·ratio, −A·clamp(ratio, 1−c, 1+c)), the pessimistic
    of the two, so a step gains nothing by moving the ratio beyond 1 ± c in the advantage's direction. Stats
    (detached 0-dim tensors): "clipfrac", the share of tokens where the clipped term won; "approx_kl", the k3
    estimate of KL(old ‖ new), (ratio − 1) − log ratio; "ratio", the mean ratio; "ratio_max_dev", the largest
    |ratio − 1| of any token (0 when the policy is still the one that sampled).
    """
    log_ratio = _zero_outside(logprobs - old_logprobs, mask)
    advantages = _zero_outside(advantages, mask)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).to(ratio.dtype), mask),
                 "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
                 "ratio": masked_mean(ratio, mask),
                 "ratio_max_dev": ((ratio - 1).abs() * mask).max() if mask.any() else ratio.new_zeros(())}
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip_range_value: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss over the masked tokens: (B, T) inputs → (scalar, stats).

    v_clipped = old + clamp(values − old, −c, c); loss = ½·mean(max((values − R)², (v_clipped − R)²)), which keeps
    the value head from moving far from the values the advantages were computed with. Stats (detached 0-dim tensors):
    "clipfrac", the share of tokens where the clipped error was larger; "error", the mean of (values − R)².
    """
    values, old_values, returns = (_zero_outside(x, mask) for x in (values, old_values, returns))
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    error, error_clipped = (values - returns) ** 2, (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(error, error_clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((error_clipped > error).to(error.dtype), mask),
                 "error": masked_mean(error, mask)}
    return loss, stats


# --- the KL coefficient β ----------------------------------------------------------------------------------------


class AdaptiveKLController:
    """β that steers the measured KL towards a target (Ziegler et al. 2019, §2.2).

    e = clip(KL / target − 1, −0.2, 0.2); β ← β·(1 + e·n_steps / horizon). Too much KL raises the penalty, too little
    lowers it, by at most 20 % per ``horizon`` steps.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move β after ``n_steps`` samples whose mean KL was ``current_kl``; returns the new β."""
        proportional_error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, float]:
        """What a checkpoint needs to resume: β."""
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore β from :meth:`state_dict`."""
        self.value = float(state["value"])


class FixedKLController:
    """A constant β, with the same interface as :class:`AdaptiveKLController`."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """β does not change; returned for symmetry with the adaptive controller."""
        return self.value

    def state_dict(self) -> dict[str, float]:
        """What a checkpoint needs to resume: β."""
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore β from :meth:`state_dict`."""
        self.value = float(state["value"])
