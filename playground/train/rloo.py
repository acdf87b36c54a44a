"""RLOO stage: REINFORCE with a leave-one-out baseline, on TRL's RLOOTrainer — critic-free like GRPO.

RLOO (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback
in LLMs"; Kool et al. 2019): sample ``answers_per_prompt`` answers to each prompt, score them (a reward run, or the
task's check: :mod:`playground.train.group_rl`), subtract β × each answer's KL to the reference from its reward (as
PPO does), and give each answer the advantage r − mean of the *other* answers' rewards. The leave-one-out mean is an
unbiased baseline (an answer's own reward doesn't lower its advantage), and with no value model there is no critic
to train or to trust.
"""

from __future__ import annotations

from playground.runs.run_folder import RunFolder
from playground.train import group_rl
from playground.train.config import RLOOConfig


def main(cfg: RLOOConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run RLOO in ``folder``; returns the final state ("finished" or "stopped")."""
    from trl import RLOOConfig as TrlRLOOConfig
    from trl import RLOOTrainer

    return group_rl.main(RLOOTrainer, TrlRLOOConfig, cfg, folder, resume,
                         normalize_advantages=cfg.normalize_advantages)
