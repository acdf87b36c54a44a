"""The checks a run passes before it is queued: its base model, its data and its start exist and can be read, so
the Train form can say what is wrong next to the field instead of a run failing minutes later.

It sits above the stages (it asks PPO, GRPO and RLOO about their prompts and reward run) so that no stage imports
another's checks back.
"""

from __future__ import annotations

import os

from playground.core.settings import Settings
from playground.data import instructions, preference_pairs
from playground.models.catalog import CatalogError
from playground.models.loading import ModelLoadError, check_available
from playground.train.common import base_spec, sft_adapter
from playground.train.config import ConfigError, TrainConfig


def check_inputs(cfg: TrainConfig, settings: Settings) -> None:
    """Before a run is queued: its data and its SFT start exist and can be read, so the form can say what is wrong
    next to the field instead of a run failing minutes later. Raises :class:`ConfigError` naming the field."""
    try:
        check_available(base_spec(cfg, settings))
    except ModelLoadError as error:
        raise ConfigError("base_model", str(error)) from error
    if cfg.stage == "ppo":
        from playground.train import ppo  # here, not at the top: ppo imports torch, which the page must not wait for

        ppo.check_prompts(cfg, settings)
        ppo.reward_run_for(cfg, settings)
    if cfg.stage in ("grpo", "rloo"):
        from playground.train import group_rl  # here, not at the top, as ppo

        group_rl.check_tasks(cfg, settings)  # type: ignore[arg-type]
        if cfg.reward_source == "reward_run":  # type: ignore[attr-defined]
            group_rl.reward_run_for(cfg, settings)  # type: ignore[arg-type]
        if cfg.reward_source == "judge":  # type: ignore[attr-defined]
            judge = group_rl.judge_for(cfg, settings)  # type: ignore[arg-type]
            try:
                if judge.spec.source_type != "endpoint":  # a server judges over HTTP: no weights to check here
                    check_available(judge.spec)
            except ModelLoadError as error:
                raise ConfigError("judge_model", str(error)) from error
    for name in cfg.datasets if cfg.stage not in ("ppo", "grpo", "rloo") else []:
        try:
            if cfg.stage == "sft":
                instructions.resolve(name, settings, for_training=True)
            else:
                preference_pairs.load_pairs(name, settings)
        except (instructions.DatasetError, preference_pairs.PreferenceDataError) as error:
            raise ConfigError("datasets", str(error)) from error
    try:
        sft_adapter(cfg, settings)
    except CatalogError as error:
        raise ConfigError("sft_run", str(error).removeprefix("sft_run: ")) from error
    if cfg.processes > 1:  # one GPU each: more would fail at once in the run (local rank without a GPU of its own)
        import torch  # here, not at the top, as ppo

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0  # 0: CPU processes
        if 0 < gpus < cfg.processes:
            raise ConfigError("processes", f"must be at most {gpus}: this machine has {gpus} GPU(s) and each process "
                                           f"trains on one of its own")
        cores = os.cpu_count() or 1
        if gpus == 0 and cfg.processes > cores:  # more would only share the cores, each with a whole model copy
            raise ConfigError("processes", f"must be at most {cores}: this machine has no GPU, so each process "
                                           f"trains on the CPU, and it has {cores} CPU core(s)")
