"""SFT stage: instruction-tune a LoRA adapter (QLoRA on CUDA) with TRL's SFTTrainer; setup → train → save.

Reads top to bottom like a recipe. Each example becomes a (prompt, completion) pair rendered exactly as the
Compare tab prompts the tuned model (``prompt_format``), and by default only the completion tokens are learned.
The final adapter goes to ``<run>/adapter`` with the base named as the user picked it (``gemma-3-270m``), so the
model lists show it as ``gemma-3-270m + <run name>``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from playground.catalog import list_models, resolve_choice
from playground.datasets import load_examples, resolve
from playground.loading import weights_location
from playground.prompting import render
from playground.run_folder import RunFolder, write_atomic
from playground.settings import Settings
from playground.train.callbacks import RunCallback
from playground.train.config import SFTConfig

ADAPTER_INFO = "playground.json"
"""Written beside adapter_config.json: which run made the adapter and the prompt format it was trained on."""


def settings_for(cfg: Any) -> Settings:
    """The app's settings for the data folder the config names (or the default one)."""
    settings = Settings(data_dir=Path(cfg.data_dir)) if cfg.data_dir else Settings()
    settings.ensure_dirs()
    return settings


def build_dataset(cfg: SFTConfig, settings: Settings, tokenizer: Any) -> tuple[Any, Any]:
    """(train, eval) ``datasets.Dataset`` of prompt/completion text; eval is None when eval_fraction is 0."""
    from datasets import Dataset

    examples = [e for name in cfg.datasets for e in load_examples(resolve(name, settings, for_training=True))]
    random.Random(cfg.seed).shuffle(examples)  # bundled files are grouped by task
    if cfg.max_examples:
        examples = examples[: cfg.max_examples]
    rows = [{"prompt": render(e.messages, cfg.prompt_format, "base", tokenizer).text if e.messages else "",
             "completion": e.completion} for e in examples]
    held = int(len(rows) * cfg.eval_fraction)
    train = Dataset.from_list(rows[held:])
    return train, (Dataset.from_list(rows[:held]) if held else None)


def load_model(cfg: SFTConfig, settings: Settings) -> tuple[Any, Any, dict[str, Any]]:
    """The base model (4-bit NF4 when QLoRA), its tokenizer, and the precision flags for the trainer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    spec = resolve_choice(cfg.base_model, list_models(settings))
    location = weights_location(spec, settings, progress=print)
    cuda = torch.cuda.is_available()
    quantize = cfg.quantization == "4bit" or (cfg.quantization == "auto" and cuda)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else (torch.float16 if cuda else torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantize:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True)
    if cuda:
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    print(f"Base model {spec.name} from {location}: {'4-bit NF4 (QLoRA)' if quantize else dtype}, "
          f"{'CUDA' if cuda else 'CPU'}", flush=True)
    return model, tokenizer, {"bf16": bf16, "fp16": cuda and not bf16, "use_cpu": not cuda}


def trainer_args(cfg: SFTConfig, folder: RunFolder, precision: dict[str, Any], has_eval: bool) -> Any:
    from trl import SFTConfig as TrlSFTConfig

    return TrlSFTConfig(
        output_dir=str(folder.checkpoints), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", max_length=cfg.max_length,
        completion_only_loss=cfg.completion_only_loss, gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed, data_seed=cfg.seed, logging_steps=1, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=2, eval_strategy="steps" if has_eval else "no", eval_steps=cfg.save_steps,
        report_to="none", include_num_input_tokens_seen="non_padding", disable_tqdm=False,
        # Batches of similar lengths waste less compute on padding (instructions are 18–101 tokens; random batches
        # were ~30 % padding: see docs/BENCHMARKS.md, SFT). Only the order changes, not what is learned.
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=0, **precision)


def save_adapter(trainer: Any, cfg: SFTConfig, folder: RunFolder) -> None:
    """Save the LoRA adapter, naming the base as the user chose it, and what the playground needs to use it."""
    staging = folder.path / ".adapter-tmp"
    trainer.model.save_pretrained(str(staging))
    adapter_config = staging / "adapter_config.json"
    data = json.loads(adapter_config.read_text())
    data["base_model_name_or_path"] = cfg.base_model  # the catalog resolves it (a packaged key stays offline)
    adapter_config.write_text(json.dumps(data, indent=2))
    write_atomic(staging / ADAPTER_INFO, json.dumps({"run": cfg.name, "stage": "sft", "base_model": cfg.base_model,
                                                     "prompt_format": cfg.prompt_format}, indent=2))
    if folder.adapter.exists():
        import shutil

        shutil.rmtree(folder.adapter)
    staging.rename(folder.adapter)


def main(cfg: SFTConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run SFT in ``folder``; returns the final state ("finished" or "stopped")."""
    from peft import LoraConfig
    from trl import SFTTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision = load_model(cfg, settings)
    train, evaluation = build_dataset(cfg, settings, tokenizer)
    print(f"{len(train)} training examples, {len(evaluation) if evaluation else 0} held out for eval loss",
          flush=True)
    targets = cfg.target_modules.strip()
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
                      target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")])
    callback = RunCallback(folder)
    trainer = SFTTrainer(model=model, args=trainer_args(cfg, folder, precision, evaluation is not None),
                         train_dataset=train, eval_dataset=evaluation, processing_class=tokenizer,
                         peft_config=lora, callbacks=[callback])
    checkpoint = folder.last_checkpoint() if resume else None
    print(f"Resuming from {checkpoint.name}" if checkpoint else "Starting from step 0", flush=True)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_adapter(trainer, cfg, folder)
    return "stopped" if callback.stopped else "finished"
