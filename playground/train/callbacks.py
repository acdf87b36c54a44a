"""TrainerCallback for runs: metrics.jsonl lines, a heartbeat in status.json, Stop → checkpoint → end, and an
evaluation before the first step that leaves the training's random draws alone."""

from __future__ import annotations

import random
import time
from typing import Any

from transformers import TrainerCallback

from playground.core.distributed import from_main_process
from playground.runs.run_folder import RunFolder
from playground.train.common import gpu_memory_peaks

IGNORED = frozenset({"epoch", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
                     "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "num_tokens",
                     "eval_num_tokens", "num_input_tokens_seen"})
"""Trainer log entries the Runs tab has no use for (timings it measures itself)."""


class RunCallback(TrainerCallback):
    """Writes what the Runs tab shows, and turns the Stop button (a STOP file) into a graceful stop.

    On Stop the current step finishes, a checkpoint is saved (``should_save``) and training ends; the stage then
    saves the adapter and marks the run "stopped", and Resume continues from that checkpoint.
    """

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.first_tokens = 0
        self.stopped = False
        self.before_evaluation: dict[str, Any] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()
        self.first_step = state.global_step  # > 0 when resuming: ETA and tokens/s count this session only
        self.first_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        self.folder.update_status(state="running", step=state.global_step, max_steps=state.max_steps)
        # The trainer evaluates next (eval_on_start, see trl_stage.run_training). Iterating its eval data draws a
        # seed from torch's random state, and GRPO's and RLOO's evaluations sample answers: on_evaluate puts the
        # state back, so the dropout masks and samples of the training that follows are those of a run without it.
        self.before_evaluation = random_states() if args.eval_on_start else None

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.before_evaluation is not None:
            set_random_states(self.before_evaluation)
            self.before_evaluation = None
            self.started = time.monotonic()  # the ETA and tokens/s are the training's, the evaluation left out

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        elapsed = time.monotonic() - self.started
        done = state.global_step - (self.first_step or 0)
        eta = elapsed / done * (state.max_steps - state.global_step) if done else None
        self.folder.update_status(step=state.global_step, max_steps=state.max_steps, eta_s=eta, elapsed_s=elapsed)
        # Every process of a multi-process run stops at the same step, as the main one read the STOP file: one that
        # stopped alone would leave the others waiting for it in their next gradient sync.
        if from_main_process(self.folder.stop_requested()):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        logs = dict(logs or {})
        elapsed = time.monotonic() - self.started
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0) - self.first_tokens
        row = {
            "step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch, "time": time.time(),
            "elapsed_s": round(elapsed, 3),
            "tokens_per_s": round(tokens / elapsed, 1) if tokens and elapsed > 0 else None,
        } | gpu_memory_peaks()
        # Every number the trainer logs (loss, eval_loss, learning_rate, accuracy, margin, rewards/chosen, …): the
        # Runs tab picks its charts per stage, so a metric a stage adds needs no change here.
        row |= {key: value for key, value in logs.items() if key not in row and key not in IGNORED
                and isinstance(value, (int, float)) and not isinstance(value, bool)}
        self.folder.append_metrics(row)


def random_states() -> dict[str, Any]:
    """Every random state training draws from: Python's, NumPy's, torch's CPU one and each CUDA device's.

    By hand because what the libraries offer doesn't fit: ``torch.random.fork_rng`` is a context manager (it can't
    span two callbacks) and forks torch only; transformers saves these states to a checkpoint file only."""
    import numpy as np
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` returned."""
    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
