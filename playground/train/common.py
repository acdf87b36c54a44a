"""What every training stage does the same way, PPO's loop included: settings, the base model (4-bit for QLoRA),
the LoRA config, the SFT adapter a later stage starts from, the reward run an RL stage maximises, float32 master
weights, and saving the final adapter.
(What only the TRL stages share — their trainer arguments and runner — is :mod:`playground.train.trl_stage`.)

Every adapter a run saves sits directly on the base model the user picked (a stage that "starts from an SFT run"
starts its LoRA weights from that run's adapter rather than stacking a second adapter), so the catalog, the
Reward tab and PPO can all load any run's adapter the same way: base + one adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.core.distributed import is_main_process
from playground.core.files import staged_folder
from playground.core.settings import Settings
from playground.models.adapters import AdapterError, adapter_config
from playground.models.catalog import CatalogError, ModelSpec, list_models, resolve_choice
from playground.models.loading import (
    Head,
    LoadOptions,
    build_model,
    pick_device,
    resolve_dtype,
)
from playground.runs.run_folder import RunFolder
from playground.train.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from playground.runs.reward_model import RewardRun

ADAPTER_INFO = "playground.json"
"""Written beside adapter_config.json: which run made the adapter, its stage and the prompt format it used."""


def settings_for(cfg: TrainConfig) -> Settings:
    """The app's settings for the data folder the config names (or the default one)."""
    settings = Settings(data_dir=Path(cfg.data_dir)) if cfg.data_dir else Settings()
    settings.ensure_dirs()
    return settings


def base_spec(cfg: TrainConfig, settings: Settings) -> ModelSpec:
    """The catalog model a run trains on. A base + adapter is refused: a run trains a new adapter on a bare base, so
    loading only the base would drop the picked adapter without a word. Raises :class:`ConfigError`."""
    entries = list_models(settings)
    try:
        spec = resolve_choice(cfg.base_model, entries)
    except CatalogError as error:
        raise ConfigError("base_model", str(error)) from error
    if spec.adapter:
        base = next((e.label for e in entries if e.spec.source == spec.source and not e.spec.adapter), spec.source)
        start = "pick the run as sft_run to start from its adapter" if hasattr(cfg, "sft_run") else \
            "SFT trains a new adapter on the bare base"
        raise ConfigError("base_model", f"{cfg.base_model} is a base model plus a trained adapter. Pick the base "
                                        f"({base}) as base model; {start}.")
    return spec


def uses_4bit(cfg: TrainConfig) -> bool:
    """QLoRA or not: ``auto`` means 4-bit NF4 on a CUDA GPU and full precision on a CPU."""
    import torch

    return cfg.quantization == "4bit" or (cfg.quantization == "auto" and torch.cuda.is_available())


def load_options(cfg: TrainConfig) -> LoadOptions:
    """How a run loads its base model: the automatic dtype, 4-bit NF4 when QLoRA (:func:`uses_4bit`)."""
    return LoadOptions(dtype="auto", quant="4bit" if uses_4bit(cfg) else "none")


def load_base(cfg: TrainConfig, settings: Settings, head: Head = "causal") -> tuple[Any, Any, dict[str, Any]]:
    """The base model (a causal LM, or with ``head="score"`` a one-output classifier) built by the one loader
    (:func:`playground.models.loading.build_model`), prepared for k-bit training when QLoRA; its tokenizer (with a pad
    token); and the precision flags for the trainer."""
    import torch
    from transformers import set_seed

    set_seed(cfg.seed)  # a new score head or LoRA is initialised from this: the same seed, the same run
    spec = base_spec(cfg, settings)
    options = load_options(cfg)
    model, tokenizer = build_model(spec, settings, options, head=head, training=True, progress=print)
    quantize = options.quant == "4bit"
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    device = pick_device()
    cuda, dtype = device.startswith("cuda"), resolve_dtype(options.dtype, device, model.config.model_type)
    print(f"Base model {spec.name}: {'4-bit NF4 (QLoRA)' if quantize else dtype}, "
          f"{'CUDA' if cuda else 'CPU'}", flush=True)
    return model, tokenizer, {"bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16, "use_cpu": not cuda}


def lora_config(cfg: TrainConfig, task_type: str) -> Any:
    """The LoRA adapter the run trains. For ``SEQ_CLS`` PEFT also trains and saves the score head
    (``modules_to_save``), which a reward model needs: a fresh head is random."""
    from peft import LoraConfig

    targets = cfg.target_modules.strip()
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type=task_type,
                      target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None)


def sft_adapter(cfg: Any, settings: Settings) -> Path | None:
    """The adapter folder of the SFT run a stage starts from (``cfg.sft_run``: a run name or a folder), checked to
    be a causal-LM adapter trained on the same base model; None when the stage starts from the base."""
    text = getattr(cfg, "sft_run", "")
    if not text:
        return None
    candidates = [settings.runs_dir / text / "adapter", Path(text).expanduser() / "adapter", Path(text).expanduser()]
    folder = next((c for c in candidates if (c / "adapter_config.json").is_file()), None)
    if folder is None:
        raise CatalogError(f"sft_run: no adapter for {text!r}: name a finished or stopped SFT run (its adapter is "
                           f"saved when it ends) or an adapter folder.")
    try:
        config = adapter_config(folder)
    except AdapterError as error:
        raise CatalogError(f"sft_run: {error}. Pick another SFT run.") from error
    if config.get("task_type") not in (None, "CAUSAL_LM"):
        raise CatalogError(f"sft_run: {text!r} is a {config.get('task_type')} adapter (a reward model?), not a "
                           f"language model's: pick an SFT run.")
    trained_on = config.get("base_model_name_or_path")
    if trained_on and trained_on != cfg.base_model:
        raise CatalogError(f"sft_run: {text!r} was trained on {trained_on!r}, not on {cfg.base_model!r}: pick that "
                           f"base model, or another SFT run.")
    return folder


def reward_run_for(cfg: Any, settings: Settings, why_same_base: str, or_else: str = "") -> RewardRun:
    """The reward run ``cfg.reward_run`` names, checked to be trained on ``cfg.base_model``; ConfigError (field
    ``reward_run``) when none is named, none has that name, or it learnt on another base. ``why_same_base`` says in
    the refusal why the stage needs the same base; ``or_else`` ends the "choose one" message with the stage's other
    way to get a reward. The one check PPO, GRPO and RLOO share (PPO adds its own on 4-bit)."""
    # Imported here: the reward-model module brings the ratings and pandas, which the other stages never need.
    from playground.runs.reward_model import RewardModelError, find_run

    if not cfg.reward_run:
        raise ConfigError("reward_run", f"choose a reward model (train one first: stage Reward model){or_else}")
    try:
        run = find_run(cfg.reward_run, settings)
    except RewardModelError as error:
        raise ConfigError("reward_run", str(error)) from error
    if run.base_model != cfg.base_model:
        raise ConfigError("reward_run", f"{run.name!r} was trained on {run.base_model!r}, not on "
                                        f"{cfg.base_model!r}: {why_same_base}, so pick a reward model trained on "
                                        f"{cfg.base_model!r} (or that base model).")
    return run


def gpu_memory_peaks() -> dict[str, float]:
    """The peak GPU memory (GiB) this process's tensors took since the last call — ``gpu_allocated_gb`` — and the
    peak PyTorch's allocator held from the driver — ``gpu_reserved_gb`` (what ``nvidia-smi`` shows, less the CUDA
    context) — then starts the next interval; empty without CUDA. Logged with every metrics row, so each row's peak
    is its own interval's (a peak since the start would hide a later fall and repeat the first spike forever)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    peaks = {"gpu_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3),
             "gpu_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3)}
    torch.cuda.reset_peak_memory_stats()
    return peaks


def keep_trainable_fp32(model: Any) -> None:
    """Every trainable parameter (LoRA, score head) in float32: master weights, with autocast doing the matmuls in
    the training precision. TRL 1.16's SFT, reward and DPO trainers cast the trainable parameters of a quantized
    model to bf16, which on a CPU (float32 activations) breaks the score head's matmul, and anywhere loses LoRA
    updates smaller than bf16's precision at the weight's size."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def save_adapter(model: Any, cfg: TrainConfig, folder: RunFolder, *, state_dict: dict[str, Any] | None = None,
                 **info: Any) -> None:
    """Save the trained LoRA adapter (only the run's own: ``default``), naming the base as the user chose it, with
    what the playground needs to use it; written whole into a temporary folder that then takes the adapter's place
    (:func:`playground.core.files.staged_folder`). Only the main process of a multi-process run saves it (the others
    hold the same weights, and would race it on the rename). ``state_dict``: the model's weights gathered from every
    process when each holds only a shard of them (DeepSpeed ZeRO-3: :func:`gathered_weights`)."""
    if not is_main_process():
        return
    with staged_folder(folder.adapter) as staging:
        model.save_pretrained(str(staging), selected_adapters=["default"],
                              **({"state_dict": state_dict} if state_dict is not None else {}))
        config_file = staging / "adapter_config.json"
        data = json.loads(config_file.read_text())
        data["base_model_name_or_path"] = cfg.base_model  # the catalog resolves it (a packaged key stays offline)
        config_file.write_text(json.dumps(data, indent=2))
        (staging / ADAPTER_INFO).write_text(json.dumps({"run": cfg.name, "stage": cfg.stage,
                                                        "base_model": cfg.base_model,
                                                        "prompt_format": cfg.prompt_format, **info}, indent=2))


def gathered_weights(trainer: Any) -> dict[str, Any] | None:
    """Under DeepSpeed ZeRO-3, where each process holds only a shard of every weight (the LoRA's too), the trainable
    weights (LoRA, score head) gathered whole from all processes — every process must call this, as it is a
    collective; the main process gets the dict, the others None — for :func:`save_adapter`; None otherwise (each
    process holds the whole adapter). Done as transformers' ``Trainer.save_model`` does for a PEFT model under
    ZeRO-3: the stage read from the DeepSpeed engine's own config (which holds it however it was given: the
    accelerate config's ``zero_stage`` or a DeepSpeed JSON), and only the trainable parameters gathered
    (``exclude_frozen_parameters``) — gathering the frozen base too would put the whole model on one GPU."""
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return None
    engine = trainer.deepspeed
    if engine.config.get("zero_optimization", {}).get("stage") != 3:
        return None
    return engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)
