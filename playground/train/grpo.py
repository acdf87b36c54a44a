"""GRPO stage: critic-free RL with TRL's GRPOTrainer — the group's own answers are the baseline.

Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath"): sample ``answers_per_prompt`` answers to each
prompt, score them (a reward run, or the task's check: :mod:`playground.train.group_rl`), and give each answer the
advantage (r − mean of its group) / std of its group. No value model learns a baseline, as PPO's does: the other
answers to the same prompt are the baseline. The loss is PPO's clipped objective on those advantages plus β·KL to the
reference as a term of the loss (not of the reward). With ``scale_rewards: none`` it is Dr. GRPO (Liu et al. 2025),
which drops the division that favours groups whose answers barely differ.
"""

from __future__ import annotations

from playground.runs.run_folder import RunFolder
from playground.train import group_rl
from playground.train.config import GRPOConfig


def main(cfg: GRPOConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run GRPO in ``folder``; returns the final state ("finished" or "stopped")."""
    from trl import GRPOConfig as TrlGRPOConfig
    from trl import GRPOTrainer

    return group_rl.main(GRPOTrainer, TrlGRPOConfig, cfg, folder, resume, scale_rewards=cfg.scale_rewards,
                         loss_type=cfg.loss_type)
