"""PPO arithmetic on small hand-made tensors; every expected number is worked out by hand in a comment."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from playground.train.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    answer_mask,
    entropy_from_logits,
    gae,
    kl_estimate,
    kl_k1,
    kl_k3,
    leave_one_out,
    logprobs_from_logits,
    masked_mean,
    masked_sum,
    masked_var,
    penalize_missing_eos,
    policy_loss,
    shape_rewards,
    value_loss,
    whiten,
)

GARBAGE = 1e6
"""What padded positions hold in the invariance checks: huge, but finite."""


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def scalar(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# --- log-probabilities and entropy -------------------------------------------------------------------------------


def test_logprobs_and_entropy_on_a_two_token_vocab():
    # Position 0: logits (0, 0) → p = (1/2, 1/2): log p = log 1/2 = −0.693147, entropy = log 2 = 0.693147.
    # Position 1: logits (log 3, 0) → p = (3/4, 1/4): log p(0) = log 0.75 = −0.287682,
    #   entropy = −(0.75·log 0.75 + 0.25·log 0.25) = 0.215762 + 0.346574 = 0.562335.
    # Position 2: logits (log 3 + 5, 5): the same distribution (a shift changes nothing); token 1 → log 0.25 = −1.386294.
    logits = t([[[0.0, 0.0], [math.log(3), 0.0], [math.log(3) + 5, 5.0]]])
    tokens = torch.tensor([[1, 0, 1]])
    assert_close(logprobs_from_logits(logits, tokens), t([[-0.693147, -0.287682, -1.386294]]))
    assert_close(entropy_from_logits(logits), t([[0.693147, 0.562335, 0.562335]]))


def test_logprobs_and_entropy_come_back_in_float32_from_bf16_logits():
    logits = torch.zeros(1, 2, 2, dtype=torch.bfloat16)  # uniform: log p = −log 2, entropy = log 2
    logp = logprobs_from_logits(logits, torch.tensor([[0, 1]]))
    entropy = entropy_from_logits(logits)
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    assert_close(logp, t([[-0.693147, -0.693147]]))
    assert_close(entropy, t([[0.693147, 0.693147]]))


# --- answer_mask -------------------------------------------------------------------------------------------------


def test_answer_mask_keeps_tokens_up_to_and_including_the_first_eos():
    eos = 2
    tokens = torch.tensor([[5, 2, 7, 7],   # EOS in the middle → 1 1 0 0
                           [2, 5, 5, 5],   # EOS first → only the EOS itself
                           [5, 6, 7, 8],   # no EOS: cut at the length limit, all kept
                           [5, 2, 2, 2]])  # pad == EOS repeated: only the first counts
    mask, has_eos = answer_mask(tokens, eos)
    assert mask.dtype == torch.float32
    assert_close(mask, t([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]))
    assert_close(has_eos, torch.tensor([True, True, False, True]))


def test_answer_mask_with_several_eos_ids_or_none():
    # EOS ids {2, 3}: the first of either ends the answer (the 3 at index 1).
    mask, has_eos = answer_mask(torch.tensor([[5, 3, 2, 7]]), [2, 3])
    assert_close(mask, t([[1, 1, 0, 0]]))
    assert_close(has_eos, torch.tensor([True]))
    # No EOS id: every position is kept and no row has an EOS.
    mask, has_eos = answer_mask(torch.tensor([[5, 2, 2]]), None)
    assert_close(mask, t([[1, 1, 1]]))
    assert_close(has_eos, torch.tensor([False]))


# --- masked statistics -------------------------------------------------------------------------------------------


X = t([[1.0, 2.0, GARBAGE], [4.0, GARBAGE, GARBAGE]])
M = t([[1, 1, 0], [1, 0, 0]])
# The kept entries are 1, 2, 4: sum 7, mean 7/3. Deviations −4/3, −1/3, 5/3; squares 16/9 + 1/9 + 25/9 = 42/9.
# Biased variance 42/9 / 3 = 14/9 = 1.555556; unbiased 42/9 / 2 = 7/3 = 2.333333.


def test_masked_sum_and_mean_ignore_padding():
    assert_close(masked_sum(X, M), scalar(7.0))
    assert_close(masked_sum(X, M, dim=1), t([3.0, 4.0]))
    assert_close(masked_mean(X, M), scalar(7 / 3))
    assert_close(masked_mean(X, M, dim=1), t([1.5, 4.0]))  # (1 + 2) / 2 and 4 / 1
    assert_close(masked_mean(X, M.bool()), scalar(7 / 3))  # a bool mask works the same


def test_masked_mean_of_nothing_is_zero_not_nan():
    assert_close(masked_mean(X, torch.zeros_like(M)), scalar(0.0))
    assert_close(masked_mean(X, t([[1, 1, 0], [0, 0, 0]]), dim=1), t([1.5, 0.0]))


def test_masked_var_biased_unbiased_and_single_entry():
    assert_close(masked_var(X, M), scalar(7 / 3))
    assert_close(masked_var(X, M, unbiased=False), scalar(14 / 9))
    assert_close(masked_var(X, t([[0, 0, 0], [1, 0, 0]])), scalar(0.0))  # one entry: no Bessel correction, 0


def test_whiten_by_hand_and_with_mean_kept():
    # Kept 2, 4, 6: mean 4, unbiased var (4 + 0 + 4) / 2 = 4, std 2 → (−1, 0, 1); padding → 0.
    x = t([[2.0, 4.0, 6.0, GARBAGE]])
    mask = t([[1, 1, 1, 0]])
    assert_close(whiten(x, mask), t([[-1.0, 0.0, 1.0, 0.0]]))
    # shift_mean=False adds the mean 4 back: (3, 4, 5); padding still 0.
    assert_close(whiten(x, mask, shift_mean=False), t([[3.0, 4.0, 5.0, 0.0]]))


def test_whiten_gives_mean_zero_variance_one_unaffected_by_padding():
    x = t([[0.3, -1.2, 2.5, 0.0], [4.0, 1.1, 0.0, 0.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]])
    white = whiten(x, mask)
    assert_close(masked_mean(white, mask), scalar(0.0))
    assert_close(masked_var(white, mask), scalar(1.0))
    assert_close(white * (1 - mask), torch.zeros_like(x))
    padded = torch.where(mask.bool(), x, torch.full_like(x, GARBAGE))
    assert_close(whiten(padded, mask), white)


# --- KL estimators -----------------------------------------------------------------------------------------------


def test_k1_and_k3_by_hand():
    # Token 0: p = 1/2, q = 1/4. k1 = log 2 = 0.693147; log r = log q/p = −log 2, r = 1/2:
    #   k3 = (1/2 − 1) + log 2 = 0.193147.
    # Token 1: p = 1/4, q = 1/2. k1 = −log 2 = −0.693147; r = 2: k3 = (2 − 1) − log 2 = 0.306853.
    # Token 2: p = q. Both 0.
    logp = t([[math.log(0.5), math.log(0.25), -1.0]])
    ref = t([[math.log(0.25), math.log(0.5), -1.0]])
    assert_close(kl_k1(logp, ref), t([[0.693147, -0.693147, 0.0]]))
    assert_close(kl_k3(logp, ref), t([[0.193147, 0.306853, 0.0]]))
    assert_close(kl_estimate(logp, ref, "k1"), t([[0.693147, -0.693147, 0.0]]))
    assert_close(kl_estimate(logp, ref, "k3"), t([[0.193147, 0.306853, 0.0]]))
    with pytest.raises(ValueError, match="k2"):
        kl_estimate(logp, ref, "k2")  # type: ignore[arg-type]


def test_k3_is_never_negative_while_k1_can_be():
    grid = torch.linspace(-6.0, 0.0, 13)
    logp, ref = torch.meshgrid(grid, grid, indexing="ij")
    assert bool((kl_k3(logp, ref) >= 0).all())
    assert bool((kl_k1(logp, ref) < 0).any())


# --- shape_rewards -----------------------------------------------------------------------------------------------


SCORES = t([1.0, 2.0])
KL = t([[0.1, 0.2, 0.3], [0.4, 0.5, GARBAGE]])
MASK = t([[1, 1, 1], [1, 1, 0]])
# β = 0.5: non_score = −0.5·kl inside the mask → row 0 (−0.05, −0.10, −0.15), row 1 (−0.20, −0.25, 0).
# Row 0's last real token is index 2: −0.15 + 1 = 0.85. Row 1's is index 1: −0.25 + 2 = 1.75.


def test_shape_rewards_puts_the_score_on_the_last_real_token():
    rewards, non_score = shape_rewards(SCORES, KL, MASK, kl_coef=0.5)
    assert_close(non_score, t([[-0.05, -0.10, -0.15], [-0.20, -0.25, 0.0]]))
    assert_close(rewards, t([[-0.05, -0.10, 0.85], [-0.20, 1.75, 0.0]]))


def test_a_missing_eos_lowers_the_score_and_so_the_shaped_reward():
    # Row 1 has no EOS: its score 2 − 1 = 1 → −0.25 + 1 = 0.75. Row 0 (has EOS) is unchanged.
    has_eos = torch.tensor([True, False])
    scores = penalize_missing_eos(SCORES, has_eos, 1.0)
    assert_close(scores, t([1.0, 1.0]))
    rewards, _ = shape_rewards(scores, KL, MASK, kl_coef=0.5)
    assert_close(rewards, t([[-0.05, -0.10, 0.85], [-0.20, 0.75, 0.0]]))
    assert penalize_missing_eos(SCORES, has_eos, 0.0) is SCORES  # 0 = off


def test_shape_rewards_empty_answer_gets_its_score_at_index_0():
    rewards, non_score = shape_rewards(t([3.0]), t([[0.7, 0.8, 0.9]]), t([[0, 0, 0]]), kl_coef=0.5)
    assert_close(non_score, t([[0.0, 0.0, 0.0]]))
    assert_close(rewards, t([[3.0, 0.0, 0.0]]))


def test_leave_one_out_subtracts_the_mean_of_the_other_answers_to_the_same_prompt():
    # Two prompts, three answers each. Prompt 1: 1 − (2+6)/2 = −3, 2 − (1+6)/2 = −1.5, 6 − (1+2)/2 = 4.5.
    # Prompt 2 (all 10, an easy prompt): 0, 0, 0 — its high scores alone teach nothing.
    assert_close(leave_one_out(t([1, 2, 6, 10, 10, 10]), 3), t([-3.0, -1.5, 4.5, 0.0, 0.0, 0.0]))
    scores = t([1, 2, 6])
    assert leave_one_out(scores, 1) is scores  # one answer per prompt: the raw score
    with pytest.raises(ValueError, match="groups of 2"):
        leave_one_out(scores, 2)


# --- gae ---------------------------------------------------------------------------------------------------------


def test_gae_with_gamma_and_lambda_one_is_future_reward_minus_value():
    # γ = λ = 1: A_t = Σ_{k≥t} r_k − V_t (the value after the last token is 0).
    # Row 0: rewards (0, 0, 1), V (0.5, 0.2, 0.7) → A = (1 − 0.5, 1 − 0.2, 1 − 0.7) = (0.5, 0.8, 0.3), returns 1, 1, 1.
    # Row 1: real tokens 0–1, rewards (0, 2), V (0.5, 0.3) → A = (1.5, 1.7), returns (2, 2); the padded slot → 0.
    rewards = t([[0.0, 0.0, 1.0], [0.0, 2.0, GARBAGE]])
    values = t([[0.5, 0.2, 0.7], [0.5, 0.3, GARBAGE]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert_close(advantages, t([[0.5, 0.8, 0.3], [1.5, 1.7, 0.0]]))
    assert_close(returns, t([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]]))


# γ = λ = 0.5, r = (1, 0, 2), V = (0.5, 1, 0.4), V_3 = 0:
#   δ_2 = 2 + 0.5·0 − 0.4 = 1.6          A_2 = 1.6
#   δ_1 = 0 + 0.5·0.4 − 1 = −0.8         A_1 = −0.8 + 0.25·1.6 = −0.4
#   δ_0 = 1 + 0.5·1 − 0.5 = 1.0          A_0 = 1.0 + 0.25·(−0.4) = 0.9
#   returns = A + V = (1.4, 0.6, 2.0)
HALF_ADVANTAGES = [0.9, -0.4, 1.6]
HALF_RETURNS = [1.4, 0.6, 2.0]


def test_gae_with_gamma_and_lambda_one_half_by_hand():
    advantages, returns = gae(t([[1.0, 0.0, 2.0]]), t([[0.5, 1.0, 0.4]]), t([[1, 1, 1]]), gamma=0.5, lam=0.5)
    assert_close(advantages, t([HALF_ADVANTAGES]))
    assert_close(returns, t([HALF_RETURNS]))


def test_gae_ignores_rewards_and_values_in_padding():
    # The same 3-step answer followed by two padded slots holding 1e6: the real slots are unchanged, the rest 0.
    rewards = t([[1.0, 0.0, 2.0, GARBAGE, GARBAGE]])
    values = t([[0.5, 1.0, 0.4, GARBAGE, GARBAGE]])
    mask = t([[1, 1, 1, 0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert_close(advantages, t([HALF_ADVANTAGES + [0.0, 0.0]]))
    assert_close(returns, t([HALF_RETURNS + [0.0, 0.0]]))


# --- policy_loss -------------------------------------------------------------------------------------------------


# clip_range c = 0.2, so ratios are clipped to [0.8, 1.2]. Per token: max(−A·r, −A·clip(r)).
#   0: A = +1, r = 1.1 (inside):        −1.1 vs −1.1 → −1.1, not clipped
#   1: A = +1, r = 1.5 (above):         −1.5 vs −1.2 → −1.2, clipped
#   2: A = −1, r = 0.5 (below):         0.5 vs 0.8   → 0.8,  clipped
#   3: A = −1, r = 1.5 (above):         1.5 vs 1.2   → 1.5,  not clipped (the pessimistic term is the unclipped one)
#   4: A = +2, r = 0.5 (below):         −1.0 vs −1.6 → −1.0, not clipped
#   5: padding (garbage)
# loss = (−1.1 − 1.2 + 0.8 + 1.5 − 1.0) / 5 = −1.0 / 5 = −0.2; clipfrac = 2/5 = 0.4
# ratio mean = (1.1 + 1.5 + 0.5 + 1.5 + 0.5) / 5 = 1.02
# approx_kl = mean of (r − 1) − log r: 1.1 → 0.0046898, 1.5 → 0.0945349 (×2), 0.5 → 0.1931472 (×2)
#   = (0.0046898 + 0.1890698 + 0.3862944) / 5 = 0.580054 / 5 = 0.1160108
RATIOS = [1.1, 1.5, 0.5, 1.5, 0.5]
OLD_LOGPROBS = t([[-1.0] * 5 + [-GARBAGE]])
ADVANTAGES = t([[1.0, 1.0, -1.0, -1.0, 2.0, GARBAGE]])
POLICY_MASK = t([[1, 1, 1, 1, 1, 0]])


def _new_logprobs() -> torch.Tensor:
    return t([[-1.0 + math.log(r) for r in RATIOS] + [GARBAGE]]).requires_grad_()


def test_policy_loss_clips_by_hand():
    loss, stats = policy_loss(_new_logprobs(), OLD_LOGPROBS, ADVANTAGES, POLICY_MASK, clip_range=0.2)
    assert_close(loss.detach(), scalar(-0.2))
    assert_close(stats["clipfrac"], scalar(0.4))
    assert_close(stats["ratio"], scalar(1.02))
    assert_close(stats["ratio_max_dev"], scalar(0.5))  # |0.5 − 1| and |1.5 − 1|, masked tokens excluded
    assert_close(stats["approx_kl"], scalar(0.1160108))
    assert all(not s.requires_grad and s.dim() == 0 for s in stats.values())


def test_policy_loss_gradient_flows_only_through_unclipped_real_tokens():
    # d/d logp of −A·r is −A·r (r = exp(logp − old)), divided by the 5 real tokens; clipped terms have no gradient:
    #   0: −1·1.1/5 = −0.22   1: clipped 0   2: clipped 0   3: 1·1.5/5 = 0.3   4: −2·0.5/5 = −0.2   5: padding 0
    logprobs = _new_logprobs()
    loss, _ = policy_loss(logprobs, OLD_LOGPROBS, ADVANTAGES, POLICY_MASK, clip_range=0.2)
    loss.backward()
    assert_close(logprobs.grad, t([[-0.22, 0.0, 0.0, 0.3, -0.2, 0.0]]))


# --- value_loss --------------------------------------------------------------------------------------------------


def test_value_loss_clipped_and_unclipped_by_hand():
    # c = 0.2, old values all 1. Per token (values − R)² vs (v_clipped − R)²:
    #   0: v = 1.1, R = 2: v_clipped = 1.1 → 0.81 vs 0.81 → 0.81, not clipped (equal)
    #   1: v = 1.5, R = 0: v_clipped = 1.2 → 2.25 vs 1.44 → 2.25, not clipped
    #   2: v = 1.9, R = 2: v_clipped = 1.2 → 0.01 vs 0.64 → 0.64, clipped
    #   3: padding (garbage)
    # loss = 0.5·(0.81 + 2.25 + 0.64)/3 = 0.5·3.7/3 = 0.616667; clipfrac 1/3; error (0.81 + 2.25 + 0.01)/3 = 1.023333
    values = t([[1.1, 1.5, 1.9, GARBAGE]])
    old_values = t([[1.0, 1.0, 1.0, -GARBAGE]])
    returns = t([[2.0, 0.0, 2.0, GARBAGE]])
    loss, stats = value_loss(values, old_values, returns, t([[1, 1, 1, 0]]), clip_range_value=0.2)
    assert_close(loss, scalar(0.616667))
    assert_close(stats["clipfrac"], scalar(1 / 3))
    assert_close(stats["error"], scalar(1.023333))


# --- KL controllers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kl", "expected"), [
    (6.6, 0.101),  # e = 6.6/6 − 1 = +0.1 → β·(1 + 0.1·1000/10000) = 0.1·1.01
    (9.0, 0.102),  # e = +0.5, clipped to +0.2 → 0.1·1.02
    (5.4, 0.099),  # e = −0.1 → 0.1·0.99
    (3.0, 0.098),  # e = −0.5, clipped to −0.2 → 0.1·0.98
])
def test_adaptive_kl_controller_moves_towards_the_target(kl, expected):
    controller = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    assert controller.update(kl, n_steps=1000) == pytest.approx(expected)
    assert controller.value == pytest.approx(expected)


def test_fixed_kl_controller_stays_put():
    controller = FixedKLController(0.1)
    assert controller.update(100.0, n_steps=1000) == pytest.approx(0.1)
    assert controller.value == pytest.approx(0.1)


def test_kl_controllers_state_round_trip():
    adaptive = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    adaptive.update(9.0, n_steps=1000)  # 0.102
    resumed = AdaptiveKLController(init_kl_coef=0.5, target=6.0, horizon=10000)
    resumed.load_state_dict(adaptive.state_dict())
    assert resumed.value == pytest.approx(0.102)
    fixed = FixedKLController(0.3)
    fixed.load_state_dict({"value": 0.05})
    assert fixed.state_dict() == {"value": pytest.approx(0.05)}
