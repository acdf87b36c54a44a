"""The one runner of the stages TRL trains (SFT, reward, DPO, KTO, GRPO, RLOO): arguments → trainer → train → save.

Each stage keeps what is its own — its data, its model (a fresh LoRA or the SFT run's), its TRL trainer class and
the arguments only it sets — and hands them to :func:`build_trainer`; its ``main`` is :func:`run_stage`. Everything
else is done here once, the same way for every stage: the arguments they share, the run's callback (metrics,
heartbeat, Stop), float32 master weights, the LM head run only where a token is learned
(:func:`head_on_labelled_tokens`), training from step 0 or the newest checkpoint, and saving the adapter. PPO has
its own loop (:mod:`playground.train.ppo`): TRL has no PPO trainer since 1.13.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from playground.runs.run_folder import RunFolder
from playground.train.callbacks import RunCallback
from playground.train.common import gathered_weights, keep_trainable_fp32, save_adapter, uses_4bit
from playground.train.config import TrainConfig


def head_on_labelled_tokens() -> None:
    """Make TRL's fused LM head project only the positions that have a label (not -100) on a CPU too, as it does on
    CUDA: the prompt's and the padding's positions are never projected through the vocabulary.

    Why by hand: TRL 1.16 trains SFT, DPO, KTO, GRPO and RLOO through ``trl.trainer.utils.add_fused_lm_head``, which
    compacts to the labelled positions only when ``_use_triton(device)`` (CUDA, XPU) and otherwise scores every
    position, so that XLA devices (Neuron) see one tile shape and don't recompile on every batch. A CPU compiles
    nothing, and there the skipped work is most of a step: Gemma 3 270M's head is 168M of its 270M weights, and an
    instruction's prompt is most of its tokens (the answer is a few words). Same losses and gradients, 2× faster
    SFT steps on Gemma 3 270M on 2 cores (docs/BENCHMARKS.md, SFT). TRL has no setting for it: the choice is that
    module-level ``_use_triton``, read at every call, which this replaces with one that also says yes for a CPU
    (the kernel module's own ``_use_triton``, which picks Triton kernels, is left alone). Idempotent; if TRL no
    longer has the name, it says so and changes nothing (steps are slower, not wrong)."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if getattr(original, "__qualname__", "").startswith(f"{_also_on_cpu.__qualname__}."):
        return  # already replaced
    if original is None or not hasattr(trl_utils, "add_fused_lm_head"):
        print("This TRL has no trl.trainer.utils._use_triton: its LM head scores every position on a CPU (slower, "
              "same result).", flush=True)
        return

    trl_utils._use_triton = _also_on_cpu(original)


def _also_on_cpu(original: Any) -> Any:
    """``original(device)``, and True for a CPU (see :func:`head_on_labelled_tokens`)."""
    def use_compact(device: Any) -> bool:
        return device.type == "cpu" or bool(original(device))
    return use_compact


def trainer_kwargs(cfg: TrainConfig, folder: RunFolder, precision: dict[str, Any], has_eval: bool) -> dict[str, Any]:
    """The TRL config arguments every stage sets the same way (each stage adds its own and picks the class)."""
    return dict(
        output_dir=str(folder.checkpoints), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing, seed=cfg.seed, data_seed=cfg.seed, logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        eval_strategy="steps" if has_eval else "no", eval_steps=cfg.save_steps, report_to="none",
        include_num_input_tokens_seen="non_padding", disable_tqdm=False, dataloader_num_workers=0, **precision)


def build_trainer(trainer_class: type[Any], args_class: type[Any], cfg: TrainConfig, folder: RunFolder, *,
                  model: Any, tokenizer: Any, precision: dict[str, Any], peft_config: Any, train: Any,
                  evaluation: Any, trainer_args: dict[str, Any] | None = None,
                  **stage_args: Any) -> tuple[Any, RunCallback]:
    """A stage's TRL trainer, ready to train: ``trainer_class`` (``SFTTrainer``, ``RewardTrainer``, ``DPOTrainer``)
    on ``model`` (with ``peft_config``, or None when the model already holds its adapter), the ``train`` and
    ``evaluation`` datasets (None: no eval), the stage's ``args_class`` built from :func:`trainer_kwargs` and the
    stage's own ``stage_args``, the trainer's own ``trainer_args`` (GRPO's and RLOO's reward functions), and the
    run's callback; every trainable parameter in float32
    (:func:`playground.train.common.keep_trainable_fp32`). Returns (trainer, callback)."""
    shared = trainer_kwargs(cfg, folder, precision, evaluation is not None)
    if "max_length" not in {f.name for f in dataclasses.fields(args_class)}:
        del shared["max_length"]  # GRPO and RLOO bound the answer alone (max_completion_length); their stage the prompt
    args = args_class(**stage_args, **shared)
    callback = RunCallback(folder)
    head_on_labelled_tokens()
    trainer = trainer_class(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=[callback],
                            **(trainer_args or {}))
    keep_trainable_fp32(trainer.model)
    return trainer, callback


def run_training(trainer: Any, folder: RunFolder, resume: bool, final_eval_every: int = 0) -> None:
    """Train from step 0, or on resume from the folder's newest checkpoint (the step count goes on). With
    ``final_eval_every`` (the eval interval), held-out figures are measured at the last step too, unless the last
    step already was an eval step."""
    checkpoint = folder.last_checkpoint() if resume else None
    print(f"Resuming from {checkpoint.name}" if checkpoint else "Starting from step 0", flush=True)
    # Steps logged after the start run again: the charts and the answer viewer must not hold them twice. That
    # includes a run killed before its first checkpoint, which the app starts over (without --resume).
    folder.forget_after(int(checkpoint.name.split("-")[-1]) if checkpoint is not None else 0)
    # The untrained model's held-out figures at step 0 (TRL's eval_on_start), the "before" every later eval is read
    # against, as PPO checks its held-out prompts before its first step. Once only: not on a resume from a
    # checkpoint (the trainer would evaluate again at the checkpoint's step), nor when a run started over has them
    # (the same model, the same figures). The run's callback puts the random state back after it, so the run trains
    # exactly as it would without it (tests/test_trl_stage.py).
    trainer.args.eval_on_start = checkpoint is None and trainer.eval_dataset is not None \
        and not folder.evaluated_at_start()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if final_eval_every and trainer.eval_dataset is not None and trainer.state.global_step % final_eval_every:
        trainer.evaluate()


def run_stage(trainer: Any, callback: RunCallback, cfg: TrainConfig, folder: RunFolder, resume: bool,
              final_eval: bool = False, **info: Any) -> str:
    """Train a built stage (:func:`build_trainer`) in ``folder`` and save its adapter with ``info`` (and whether
    the base was 4-bit); with ``final_eval``, held-out figures are measured at the last step too. Returns the final
    state: "stopped" (Stop was pressed) or "finished"."""
    run_training(trainer, folder, resume, final_eval_every=cfg.save_steps if final_eval else 0)
    save_adapter(trainer.model, cfg, folder, state_dict=gathered_weights(trainer), **info, quantized=uses_4bit(cfg))
    return "stopped" if callback.stopped else "finished"
