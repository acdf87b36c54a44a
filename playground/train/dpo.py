"""DPO stage: the same preference pairs straight into the policy, no reward model (TRL's DPOTrainer).

Direct Preference Optimization (Rafailov et al. 2023) shows the RLHF objective — maximize reward under a KL
penalty β — has a closed-form optimum, so the policy can be trained on the pairs directly:
loss = −log σ(β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]).

The policy is a LoRA adapter on the base (4-bit on CUDA). The reference π_ref is the starting model: the base with
the adapter switched off, or — when starting from an SFT run — the SFT model: its adapter is loaded as the
trainable one and TRL keeps a frozen copy of it (``ref``) as the reference, so one base model serves both.
Prompts are rendered as Compare prompts the tuned model, so the saved adapter answers there the way it was trained.
"""

from __future__ import annotations

from typing import Any

from playground.core.settings import Settings
from playground.data.preference_pairs import Pair, run_pairs
from playground.models.prompting import render
from playground.runs.run_folder import RunFolder
from playground.train import trl_stage
from playground.train.callbacks import RunCallback
from playground.train.common import load_base, lora_config, settings_for, sft_adapter
from playground.train.config import DPOConfig


def preference_dataset(pairs: list[Pair], tokenizer: Any, cfg: DPOConfig) -> Any:
    """A ``datasets.Dataset`` of prompt / chosen / rejected for DPOTrainer (which tokenizes it itself and appends
    EOS): the prompt rendered in the ### Instruction frame as text, or as messages that TRL renders with the chat
    template — either way as Compare prompts the tuned model."""
    from datasets import Dataset

    rows = []
    for pair in pairs:
        if cfg.prompt_format == "chat":
            system = [{"role": "system", "content": pair.system}] if pair.system else []
            rows.append({"prompt": system + pair.messages,
                         "chosen": [{"role": "assistant", "content": pair.chosen.strip()}],
                         "rejected": [{"role": "assistant", "content": pair.rejected.strip()}]})
        else:
            prompt = render(pair.messages, "instruction", "base", tokenizer, system=pair.system).text
            rows.append({"prompt": prompt, "chosen": pair.chosen.strip(), "rejected": pair.rejected.strip()})
    return Dataset.from_list(rows)


def build_model(cfg: DPOConfig, settings: Settings) -> tuple[Any, Any, dict[str, Any], Any]:
    """(model, tokenizer, precision flags, peft_config): the base with a fresh LoRA config, or a PEFT model whose
    trainable adapter starts as the SFT run's (peft_config None; TRL adds the frozen reference copy)."""
    from peft import PeftModel

    start = sft_adapter(cfg, settings)
    model, tokenizer, precision = load_base(cfg, settings)
    if start is None:
        return model, tokenizer, precision, lora_config(cfg, "CAUSAL_LM")
    model = PeftModel.from_pretrained(model, str(start), is_trainable=True)
    print(f"Policy and reference start from the SFT adapter {start} (the rank fields are ignored)", flush=True)
    return model, tokenizer, precision, None


def build_trainer(cfg: DPOConfig, folder: RunFolder, resume: bool = False) -> tuple[Any, RunCallback]:
    """The DPOTrainer for ``cfg`` (policy, the run's pair split, callback), ready to train
    (:func:`trl_stage.build_trainer`)."""
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    settings = settings_for(cfg)
    model, tokenizer, precision, peft_config = build_model(cfg, settings)
    train_pairs, eval_pairs = run_pairs(cfg, settings, folder.path / "data", resume)
    print(f"{len(train_pairs)} training pairs, {len(eval_pairs)} held out", flush=True)
    train = preference_dataset(train_pairs, tokenizer, cfg)
    evaluation = preference_dataset(eval_pairs, tokenizer, cfg) if eval_pairs else None
    return trl_stage.build_trainer(DPOTrainer, TrlDPOConfig, cfg, folder, model=model, tokenizer=tokenizer,
                                   precision=precision, peft_config=peft_config, train=train, evaluation=evaluation,
                                   beta=cfg.beta, loss_type=[cfg.loss_type])


def main(cfg: DPOConfig, folder: RunFolder, resume: bool = False) -> str:
    """Run DPO in ``folder``; returns the final state ("finished" or "stopped"). Held-out figures are measured at
    the last step too."""
    return trl_stage.run_stage(*build_trainer(cfg, folder, resume), cfg, folder, resume, final_eval=True,
                               beta=cfg.beta)
