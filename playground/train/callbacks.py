"""TrainerCallback for runs: metrics.jsonl lines, a heartbeat in status.json, and Stop → checkpoint → end."""

from __future__ import annotations

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

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()
        self.first_step = state.global_step  # > 0 when resuming: ETA and tokens/s count this session only
        self.first_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        self.folder.update_status(state="running", step=state.global_step, max_steps=state.max_steps)

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
