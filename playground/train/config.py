"""Run configs: one validated dataclass per training stage; the UI form, the YAML file and the CLI all build it.

Each field's help text is written once, in its metadata (``field(default=..., metadata={"help": ...})``, the way
``transformers.HfArgumentParser`` reads it): the Train tab shows it, ``python -m playground.train --help`` prints it.
Bad values are refused in ``__post_init__`` with a message that names the field, so the form can show it next to
the input.

Defaults (nanoGPT-style, the choices named): a demo that finishes in minutes on a CPU with the offline Gemma 3 270M
base model, and fits an 8 GB GPU with a 0.5B model in 4-bit (QLoRA: NF4 base weights, bf16 LoRA adapters).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

Stage = Literal["sft", "reward", "dpo", "ppo", "grpo", "rloo", "kto"]
STAGES: tuple[str, ...] = ("sft", "reward", "dpo", "ppo", "grpo", "rloo", "kto")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A config value that can't work; ``field`` names it so the form can point at it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.detail = message
        """What is wrong, without the field's name (a form puts its own label in front)."""


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise ConfigError(field_name, message)


@dataclass
class TrainConfig:
    """What every stage shares: the model, the data, the LoRA adapter and the optimisation."""

    name: str = field(default="run", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    base_model: str = field(default="gemma-3-270m", metadata={"help": (
        "The model to tune: a packaged key, a hub id or a local folder (the same choices as in Compare).")})
    datasets: list[str] = field(default_factory=lambda: ["instructions"], metadata={"help": (
        "Training data: bundled or uploaded dataset names (see the Data tab) or file paths; several are "
        "concatenated.")})
    max_examples: int = field(default=0, metadata={"help": (
        "Use at most this many examples (0 = all); handy for a quick try.")})
    prompt_format: Literal["instruction", "chat"] = field(default="instruction", metadata={"help": (
        "How each example becomes text: the ### Instruction / ### Response frame (works for any base model), or the "
        "model's chat template. Compare prompts the tuned model the same way.")})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank: the size of the low-rank update; 8–64 is usual."})
    lora_alpha: int = field(default=32, metadata={"help": (
        "LoRA scaling numerator (the update is scaled by alpha / r); 2 × r is a common choice.")})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input, for regularization."})
    target_modules: str = field(default="all-linear", metadata={"help": (
        'Which layers get adapters: "all-linear", or comma-separated module names (e.g. q_proj,v_proj).')})
    quantization: Literal["auto", "4bit", "none"] = field(default="auto", metadata={"help": (
        "4bit = QLoRA (NF4 base weights via bitsandbytes); auto = 4bit on a CUDA GPU, none on a CPU.")})
    learning_rate: float = field(default=2e-4, metadata={"help": (
        "Peak learning rate (LoRA tolerates higher rates than full fine-tuning).")})
    weight_decay: float = field(default=0.0, metadata={"help": (
        "AdamW's decoupled weight decay on the adapter (0 = none). It pulls the LoRA weights towards zero, i.e. "
        "towards the bare base model: for PPO that is towards the reference when the policy starts fresh, and away "
        "from it when the policy starts from an SFT adapter.")})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the data (ignored when max_steps > 0)."})
    max_steps: int = field(default=0, metadata={"help": "Stop after this many optimizer steps (0 = run the epochs)."})
    batch_size: int = field(default=4, metadata={"help": "Examples per forward pass."})
    gradient_accumulation: int = field(default=2, metadata={"help": (
        "Forward passes per optimizer step (effective batch = batch_size × gradient_accumulation).")})
    max_length: int = field(default=256, metadata={"help": "Longest tokenized example; longer ones are cut."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": (
        "Recompute activations in the backward pass: less memory, about 30 % slower.")})
    seed: int = field(default=42, metadata={"help": "Seed for data order, adapter initialisation and dropout."})
    eval_fraction: float = field(default=0.05, metadata={"help": (
        "Fraction of the examples held out to compute an eval loss, before the first step and every save_steps "
        "steps (0 = none).")})
    save_steps: int = field(default=25, metadata={"help": (
        "Save a checkpoint every this many steps (Stop and Resume use them).")})
    warmup_ratio: float = field(default=0.05, metadata={"help": (
        "Fraction of the steps spent warming the learning rate up from 0.")})
    processes: int = field(default=1, metadata={"help": (
        "Processes the app trains on: 1 = a normal run; N > 1 = accelerate launch --multi_gpu --num_processes N, "
        "one process per GPU (on a machine without a GPU, N CPU processes: at most one per core), each training on its share of every batch "
        "(batch size is per process). PPO runs on 1 only. A run you launch yourself uses the launcher's count.")})
    data_dir: str = field(default="", metadata={"help": (
        "The app's data folder (packaged models' import cache, uploaded datasets); empty = the default.")})

    stage: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_types(self)
        _check(bool(_NAME.match(self.name or "")), "name", "use 1–64 letters, digits, '-', '_' or '.', starting "
               "with a letter or digit")
        _check(bool((self.base_model or "").strip()), "base_model", "choose a model")
        _check(isinstance(self.datasets, list) and bool(self.datasets) and all(
            isinstance(d, str) and d.strip() for d in self.datasets), "datasets", "choose at least one dataset")
        _check(self.max_examples >= 0, "max_examples", "must be 0 (all) or positive")
        _check(self.prompt_format in ("instruction", "chat"), "prompt_format", "must be instruction or chat")
        _check(1 <= self.lora_r <= 1024, "lora_r", "must be between 1 and 1024")
        _check(self.lora_alpha > 0, "lora_alpha", "must be positive")
        _check(0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)")
        _check(bool(self.target_modules.strip()), "target_modules", 'use "all-linear" or module names')
        _check(self.quantization in ("auto", "4bit", "none"), "quantization", "must be auto, 4bit or none")
        _check(0 < self.learning_rate <= 1e-2, "learning_rate", "must be in (0, 0.01]; LoRA usually uses 1e-4–5e-4")
        _check(0 <= self.weight_decay <= 1, "weight_decay", "must be in [0, 1]; 0 = none")
        _check(self.max_steps >= 0, "max_steps", "must be 0 (use epochs) or positive")
        _check(self.max_steps > 0 or 0 < self.epochs <= 100, "epochs", "must be in (0, 100] when max_steps is 0")
        _check(1 <= self.batch_size <= 1024, "batch_size", "must be between 1 and 1024")
        _check(1 <= self.gradient_accumulation <= 1024, "gradient_accumulation", "must be between 1 and 1024")
        _check(16 <= self.max_length <= 32768, "max_length", "must be between 16 and 32768 tokens")
        _check(0 <= self.seed < 2**32, "seed", "must be between 0 and 2^32 - 1")
        _check(0 <= self.eval_fraction < 0.5, "eval_fraction", "must be in [0, 0.5)")
        _check(self.save_steps >= 1, "save_steps", "must be at least 1")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        _check(1 <= self.processes <= 64, "processes", "must be between 1 and 64 (one per GPU)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


@dataclass
class SFTConfig(TrainConfig):
    """Supervised fine-tuning (instruction tuning) of a LoRA adapter on (instruction, answer) pairs."""

    name: str = field(default="sft-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    completion_only_loss: bool = field(default=True, metadata={"help": (
        "Learn only the answer tokens, not the instruction (the usual instruction-tuning loss).")})

    stage: ClassVar[str] = "sft"


@dataclass
class _PreferenceConfig(TrainConfig):
    """What the reward and DPO stages share: preference pairs in, optionally on top of an SFT run."""

    datasets: list[str] = field(default_factory=lambda: ["preferences"], metadata={"help": (
        'Preference pairs: "votes" (people\'s votes in this app: Left/Right is better), "judge-votes" (an AI judge\'s '
        'votes), "all-votes" (both), "preferences" (bundled pairs '
        "whose rejected answer has a labelled flaw; the Data tab counts them), uploaded preference files (Data tab) "
        "or file paths.")})
    sft_run: str = field(default="", metadata={"help": (
        "Start from an SFT run's adapter (its run name or adapter folder) instead of a fresh LoRA; it must be "
        "trained on the same base model. Empty = start from the base model.")})
    eval_fraction: float = field(default=0.1, metadata={"help": (
        "Fraction of the pairs held out to measure accuracy on pairs the model never trained on, before the first "
        "step (the start's figures) and every save_steps steps (0 = none).")})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sft_run = self.sft_run.strip()


@dataclass
class RewardConfig(_PreferenceConfig):
    """A reward model r(x, y): LoRA + a one-output score head, trained so r(chosen) > r(rejected)."""

    name: str = field(default="reward-demo", metadata={"help": (
        "Run name: the run's folder and the reward model's name in the Reward tab (letters, digits, - _ .).")})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the pairs (ignored when max_steps > 0)."})
    learning_rate: float = field(default=2e-4, metadata={"help": (
        "Peak learning rate for the LoRA weights and the score head.")})
    use_margin: bool = field(default=False, metadata={"help": (
        "Use your vote's strength: the loss becomes −log σ(r_chosen − r_rejected − strength/5) (Llama 2's margin "
        "loss), so strong preferences must be separated by more. Pairs without a strength use 0.")})
    center_rewards_coefficient: float = field(default=0.01, metadata={"help": (
        "Small penalty on (r_chosen + r_rejected)² that keeps rewards centred on 0 (useful for PPO later); 0 = off.")})

    stage: ClassVar[str] = "reward"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 <= self.center_rewards_coefficient <= 1, "center_rewards_coefficient", "must be in [0, 1]")


@dataclass
class DPOConfig(_PreferenceConfig):
    """Direct preference optimization: the policy learns from the pairs directly, no reward model needed."""

    name: str = field(default="dpo-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    learning_rate: float = field(default=5e-5, metadata={"help": (
        "Peak learning rate (DPO wants a smaller one than SFT: the policy must stay near the reference).")})
    beta: float = field(default=0.1, metadata={"help": (
        "Strength of the implicit KL penalty: small β lets the policy move far from the reference, large β keeps it "
        "close (0.1 is the usual choice).")})
    loss_type: Literal["sigmoid", "ipo", "hinge"] = field(default="sigmoid", metadata={"help": (
        "sigmoid = the DPO paper's loss, −log σ(β·margin); ipo = squared loss that doesn't overfit deterministic "
        "preferences; hinge = SLiC's hinge loss.")})

    stage: ClassVar[str] = "dpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.beta <= 10, "beta", "must be in (0, 10]; 0.1 is the usual choice")
        _check(self.loss_type in ("sigmoid", "ipo", "hinge"), "loss_type", "must be sigmoid, ipo or hinge")


@dataclass
class PPOConfig(TrainConfig):
    """PPO: the policy writes answers to prompts, the reward model scores them, and the policy is pushed towards
    higher reward while a KL penalty keeps it near where it started (InstructGPT's step three).

    One base model serves every role through adapters: policy (LoRA), reference (adapters off, or the SFT run's
    adapter frozen), reward (the reward run's LoRA and score head), value (a LoRA and a scalar head). The batch
    fields count answers: each step samples ``batch_size`` answers, then runs ``ppo_epochs`` passes over them in
    minibatches of ``mini_batch_size`` (split into ``gradient_accumulation`` forward passes each).
    """

    name: str = field(default="ppo-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    datasets: list[str] = field(default_factory=lambda: ["prompts"], metadata={"help": (
        'Prompts to answer: "prompts" (the bundled prompts over many kinds of task, as in the Rate tab), the '
        "prompts of a training dataset (\"instructions\" or an upload; their answers are ignored), or a prompt file's "
        "path.")})
    sft_run: str = field(default="", metadata={"help": (
        "Policy start: an SFT run's adapter (run name or folder), which is also the frozen reference. Empty = a "
        "fresh LoRA on the base model, whose reference is the base itself.")})
    reward_run: str = field(default="", metadata={"help": (
        "The reward model to maximise: a reward run trained on the same base model (see the Reward tab).")})
    max_steps: int = field(default=30, metadata={"help": (
        "PPO steps (each: sample a batch of answers, score them, update); 0 = run the epochs over the prompts.")})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the prompt set (ignored when max_steps > 0)."})
    learning_rate: float = field(default=1e-4, metadata={"help": (
        "Learning rate of the policy and value adapters (constant after the warm-up).")})
    batch_size: int = field(default=8, metadata={"help": (
        "Answers sampled per PPO step (answers_per_prompt to each of batch_size / answers_per_prompt prompts).")})
    answers_per_prompt: int = field(default=1, metadata={"help": (
        "Answers sampled to each prompt in a step; must divide batch_size. With 2 or more, an answer's score counts "
        "relative to the mean score of the other answers to the same prompt (a leave-one-out baseline, as RLOO's), "
        "so the update learns which answers beat their siblings rather than which prompts are easy — far less noise "
        "from a small batch, at the price of fewer prompts per step.")})
    mini_batch_size: int = field(default=4, metadata={"help": (
        "Answers per optimizer step within a PPO epoch; must divide batch_size.")})
    gradient_accumulation: int = field(default=1, metadata={"help": (
        "Forward passes per minibatch (less memory, same result); must divide mini_batch_size.")})
    ppo_epochs: int = field(default=2, metadata={"help": (
        "Passes over each batch of answers (more reuse of expensive samples, but a staler policy).")})
    max_length: int = field(default=256, metadata={"help": (
        "Longest prompt + answer in tokens; longer prompts keep their last tokens.")})
    response_length: int = field(default=48, metadata={"help": (
        "Most tokens per answer; an answer without EOS by then is cut.")})
    temperature: float = field(default=0.7, metadata={"help": (
        "Sampling temperature of the answers. PPO samples from the whole tempered distribution (no top-k, top-p or "
        "penalties), because its ratio and KL use the log-probabilities of exactly that distribution.")})
    kl_coef: float = field(default=0.05, metadata={"help": (
        "β: the per-token penalty β·KL(π‖π_ref) subtracted from the reward. Larger keeps the policy closer to its "
        "start (less reward hacking, less progress).")})
    kl_estimator: Literal["k1", "k3"] = field(default="k1", metadata={"help": (
        "KL estimator per token: k1 = log π − log π_ref (unbiased, can be negative), k3 = (r − 1) − log r with r = "
        "π_ref/π (unbiased, never negative, lower variance).")})
    adaptive_kl: bool = field(default=False, metadata={"help": (
        "Adapt β so the KL per answer approaches kl_target (Ziegler et al. 2019).")})
    kl_target: float = field(default=6.0, metadata={"help": "Target KL per answer (nats) for the adaptive β."})
    kl_horizon: int = field(default=10000, metadata={"help": (
        "Horizon of the adaptive β, in answers: larger changes β more slowly.")})
    cliprange: float = field(default=0.2, metadata={"help": (
        "ε of PPO's clipped objective: the probability ratio π/π_old counts only within [1 − ε, 1 + ε].")})
    cliprange_value: float = field(default=0.2, metadata={"help": (
        "How far a value prediction may move from the old one before its loss is clipped.")})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    gamma: float = field(default=1.0, metadata={"help": (
        "Discount γ of future rewards (1 = none: the reward comes at the end of the answer).")})
    lam: float = field(default=0.95, metadata={"help": (
        "λ of generalised advantage estimation: lower trusts the value model more (less variance, more bias).")})
    whiten_rewards: bool = field(default=False, metadata={"help": (
        "Normalise the rewards of each batch (the advantages always are).")})
    missing_eos_penalty: float = field(default=0.0, metadata={"help": (
        "Subtract this from the score of an answer that didn't end (no EOS within response_length); 0 = off. "
        "Discourages rambling until the length limit.")})
    value_init: Literal["reward", "fresh"] = field(default="reward", metadata={"help": (
        "Value model start: the reward model's LoRA and head (it already judges answers; needs the same LoRA rank "
        "as the reward run, else fresh), or a fresh LoRA and a zero head (required with answers_per_prompt ≥ 2, "
        "whose centred rewards average zero).")})
    max_grad_norm: float = field(default=1.0, metadata={"help": (
        "Clip the gradient norm at this (PPO's updates can be large).")})
    lora_dropout: float = field(default=0.0, metadata={"help": (
        "Dropout on the LoRA input; 0 so that the sampled answers and the update see the same policy.")})
    eval_fraction: float = field(default=0.0, metadata={"help": (
        "Fraction of the prompts held out: before the first step and every save_steps steps the policy answers "
        "them and their mean reward is logged (reward on prompts it never trained on, before and after; 0 = none).")})
    save_steps: int = field(default=10, metadata={"help": (
        "Save a checkpoint every this many steps (Stop and Resume use them).")})
    warmup_ratio: float = field(default=0.0, metadata={"help": (
        "Fraction of the steps spent warming the learning rate up from 0.")})
    samples_per_step: int = field(default=4, metadata={"help": (
        "Answers per step kept for the sample viewer in Runs (prompt, answer, reward, KL).")})

    stage: ClassVar[str] = "ppo"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sft_run, self.reward_run = self.sft_run.strip(), self.reward_run.strip()
        _check(self.mini_batch_size >= 1 and self.batch_size % self.mini_batch_size == 0, "mini_batch_size",
               f"must divide batch_size ({self.batch_size})")
        _check(self.mini_batch_size % self.gradient_accumulation == 0, "gradient_accumulation",
               f"must divide mini_batch_size ({self.mini_batch_size})")
        _check(self.answers_per_prompt >= 1 and self.batch_size % self.answers_per_prompt == 0,
               "answers_per_prompt", f"must divide batch_size ({self.batch_size})")
        _check(1 <= self.ppo_epochs <= 16, "ppo_epochs", "must be between 1 and 16")
        _check(1 <= self.response_length <= 4096, "response_length", "must be between 1 and 4096 tokens")
        _check(self.response_length + 8 <= self.max_length, "max_length",
               f"must leave room for a prompt: at least response_length + 8 ({self.response_length + 8})")
        _check(0 < self.temperature <= 5, "temperature", "must be in (0, 5]")
        _check(0 <= self.kl_coef <= 10, "kl_coef", "must be in [0, 10]; 0.05 is usual")
        _check(self.kl_estimator in ("k1", "k3"), "kl_estimator", "must be k1 or k3")
        _check(self.kl_target > 0, "kl_target", "must be positive")
        _check(self.kl_horizon >= 1, "kl_horizon", "must be at least 1")
        _check(0 < self.cliprange < 1, "cliprange", "must be in (0, 1); 0.2 is usual")
        _check(self.cliprange_value > 0, "cliprange_value", "must be positive")
        _check(0 <= self.vf_coef <= 10, "vf_coef", "must be in [0, 10]")
        _check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        _check(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        _check(self.missing_eos_penalty >= 0, "missing_eos_penalty", "must be 0 (off) or positive")
        _check(self.value_init in ("reward", "fresh"), "value_init", "must be reward or fresh")
        _check(self.answers_per_prompt == 1 or self.value_init == "fresh", "value_init",
               "must be fresh with several answers per prompt: the reward model predicts raw scores, but then each "
               "answer's reward is its score less its siblings' mean")
        _check(self.max_grad_norm > 0, "max_grad_norm", "must be positive")
        _check(0 <= self.samples_per_step <= self.batch_size, "samples_per_step",
               f"must be between 0 and batch_size ({self.batch_size})")
        _check(self.processes == 1, "processes", "must be 1: PPO runs on one process only (its loop has no "
               "multi-GPU code)")


@dataclass
class _GroupConfig(TrainConfig):
    """What GRPO and RLOO share: critic-free RL. Each step samples ``answers_per_prompt`` answers to each of a few
    prompts, scores them, and learns from each answer's reward relative to its siblings' (the group's own answers
    are the baseline, so there is no value model). The batch fields count answers, as PPO's do."""

    datasets: list[str] = field(default_factory=lambda: ["prompts"], metadata={"help": (
        'Prompts to answer. With reward_source reward_run or judge: the prompt sets PPO answers ("prompts", a training '
        "dataset's instructions, or a prompt file's path). With reward_source checks: held-out task files whose "
        'answers a program checks ("heldout", the bundled task families, or a file in that format).')})
    reward_source: Literal["reward_run", "checks", "judge"] = field(default="reward_run", metadata={"help": (
        "What scores an answer: reward_run = a reward model trained here (as PPO's); checks = the task's expected "
        "answer checked by program (1 when the check passes, else 0: a verifiable reward, no reward model; the "
        "checks train on the held-out task families, so the Runs tab's Evaluate no longer measures unseen tasks "
        "for such a run); judge = an AI judge compares each answer with the starting policy's answer to the same "
        "prompt, both orders (RL from AI feedback): reward 1 when it wins, ½ for a tie, 0 when it loses, so the "
        "mean reward is the win rate against the start.")})
    reward_run: str = field(default="", metadata={"help": (
        "With reward_source reward_run: the reward model to maximise, a reward run trained on the same base model "
        "(see the Reward tab).")})
    judge_model: str = field(default="", metadata={"help": (
        "With reward_source judge: the model that judges, any model Compare offers (a packaged or hub model, a "
        "folder, a base + adapter). It answers twice per answer sampled (both orders): slow, and only as good as "
        "the judge (see the Judge tab's agreement with your votes).")})
    judge_rubric: str = field(default="", metadata={"help": (
        "With reward_source judge: the judge's rubric, with {question}, {first} and {second} where the request and "
        "the two answers go; empty = the Judge tab's default rubric.")})
    sft_run: str = field(default="", metadata={"help": (
        "Policy start: an SFT run's adapter (run name or folder), which a frozen copy of keeps as the reference. "
        "Empty = a fresh LoRA on the base model, whose reference is the base itself (the adapters switched off).")})
    max_steps: int = field(default=30, metadata={"help": (
        "Optimizer steps (each: sample a batch of answers, score them, update); 0 = run the epochs over the "
        "prompts.")})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the prompts (ignored when max_steps > 0)."})
    learning_rate: float = field(default=5e-5, metadata={"help": (
        "Learning rate of the policy's LoRA (cosine decay after the warm-up).")})
    batch_size: int = field(default=8, metadata={"help": (
        "Answers per forward pass; a step samples batch_size × gradient_accumulation answers.")})
    gradient_accumulation: int = field(default=1, metadata={"help": (
        "Forward passes per optimizer step (less memory, same result).")})
    answers_per_prompt: int = field(default=4, metadata={"help": (
        "Answers sampled to each prompt, the group each answer is compared with (at least 2); must divide "
        "batch_size × gradient_accumulation.")})
    max_length: int = field(default=256, metadata={"help": (
        "Longest prompt + answer in tokens: prompts longer than max_length − response_length are left out.")})
    response_length: int = field(default=48, metadata={"help": (
        "Most tokens per answer; an answer without EOS by then is cut.")})
    temperature: float = field(default=0.7, metadata={"help": (
        "Sampling temperature of the answers (no top-k or top-p: the whole tempered distribution).")})
    kl_coef: float = field(default=0.05, metadata={"help": (
        "β: the weight of KL(π‖π_ref), which keeps the policy near its start; 0 = no reference model at all.")})
    cliprange: float = field(default=0.2, metadata={"help": (
        "ε of the clipped objective: the ratio π/π_old counts only within [1 − ε, 1 + ε] (matters with "
        "iterations > 1).")})
    iterations: int = field(default=1, metadata={"help": (
        "Updates on each batch of answers (PPO's epochs; 1 = the policy that sampled is the one updated).")})
    lora_dropout: float = field(default=0.0, metadata={"help": (
        "Dropout on the LoRA input; 0 so that the sampled answers and the update see the same policy.")})
    eval_fraction: float = field(default=0.1, metadata={"help": (
        "Fraction of the prompts held out: before the first step and every save_steps steps the policy answers each "
        "once and the mean reward is logged (eval_reward: reward on prompts it never trained on; 0 = none).")})
    save_steps: int = field(default=10, metadata={"help": (
        "Save a checkpoint every this many steps (Stop and Resume use them).")})
    warmup_ratio: float = field(default=0.0, metadata={"help": (
        "Fraction of the steps spent warming the learning rate up from 0.")})
    samples_per_step: int = field(default=4, metadata={"help": (
        "Answers per step kept for the answer viewer in Runs (prompt, answer, reward).")})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sft_run, self.reward_run = self.sft_run.strip(), self.reward_run.strip()
        answers = self.batch_size * self.gradient_accumulation
        self.judge_model = self.judge_model.strip()
        _check(self.reward_source in ("reward_run", "checks", "judge"), "reward_source",
               "must be reward_run, checks or judge")
        _check(self.reward_source != "judge" or bool(self.judge_model), "judge_model",
               "pick the model that judges the answers (reward_source judge)")
        _check(self.answers_per_prompt >= 2, "answers_per_prompt", "must be at least 2: an answer is compared with "
               "its group's other answers")
        _check(answers % self.answers_per_prompt == 0, "answers_per_prompt",
               f"must divide batch_size × gradient_accumulation ({answers}): a step answers whole groups")
        _check(1 <= self.response_length <= 4096, "response_length", "must be between 1 and 4096 tokens")
        _check(self.response_length + 8 <= self.max_length, "max_length",
               f"must leave room for a prompt: at least response_length + 8 ({self.response_length + 8})")
        _check(0 < self.temperature <= 5, "temperature", "must be in (0, 5]")
        _check(0 <= self.kl_coef <= 10, "kl_coef", "must be in [0, 10]; 0.05 is usual")
        _check(0 < self.cliprange < 1, "cliprange", "must be in (0, 1); 0.2 is usual")
        _check(1 <= self.iterations <= 16, "iterations", "must be between 1 and 16")
        _check(0 <= self.samples_per_step <= answers, "samples_per_step",
               f"must be between 0 and the answers a step samples ({answers})")


@dataclass
class GRPOConfig(_GroupConfig):
    """GRPO (Shao et al. 2024, DeepSeekMath): each answer's advantage is its reward less its group's mean reward,
    divided by the group's standard deviation; the KL to the reference is a term of the loss (TRL's GRPOTrainer)."""

    name: str = field(default="grpo-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    scale_rewards: Literal["group", "batch", "none"] = field(default="group", metadata={"help": (
        "Divide the advantages by the reward's standard deviation within each group (GRPO's paper), within the "
        "whole batch, or not at all (Dr. GRPO: the division favours groups that barely differ).")})
    loss_type: Literal["dapo", "grpo", "dr_grpo"] = field(default="dapo", metadata={"help": (
        "How token losses are averaged: dapo = over all answer tokens of the batch (no length bias); grpo = per "
        "answer, then over answers (the paper's; favours short right answers and long wrong ones); dr_grpo = "
        "divided by a constant (response_length).")})

    stage: ClassVar[str] = "grpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.scale_rewards in ("group", "batch", "none"), "scale_rewards", "must be group, batch or none")
        _check(self.loss_type in ("dapo", "grpo", "dr_grpo"), "loss_type", "must be dapo, grpo or dr_grpo")


@dataclass
class RLOOConfig(_GroupConfig):
    """RLOO (Ahmadian et al. 2024, "Back to Basics"): REINFORCE with a leave-one-out baseline — each answer's
    advantage is its reward less the mean reward of its group's other answers; the KL to the reference is
    subtracted from the reward, as in PPO (TRL's RLOOTrainer)."""

    name: str = field(default="rloo-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    normalize_advantages: bool = field(default=False, metadata={"help": (
        "Whiten the advantages over the batch (mean 0, standard deviation 1).")})

    stage: ClassVar[str] = "rloo"


@dataclass
class KTOConfig(_PreferenceConfig):
    """KTO (Ethayarajh et al. 2024): learn from single thumbs-up / thumbs-down ratings, no pairs needed — a
    desirable answer's implicit reward β·log(π/π_ref) is pushed above a reference point (the policy's KL from the
    reference, estimated on the batch), an undesirable one's below it (TRL's KTOTrainer)."""

    name: str = field(default="kto-demo", metadata={"help": (
        "Run name: the run's folder and the adapter's name in the model lists (letters, digits, - _ .).")})
    datasets: list[str] = field(default_factory=lambda: ["preferences"], metadata={"help": (
        'Rated answers: "votes" (people\'s votes: the better answer is a thumbs-up, the worse a thumbs-down), '
        '"judge-votes" and "all-votes" (an AI judge\'s, or both), "preferences" (bundled pairs: the chosen answer '
        "up, the flawed one down), uploaded preference files (Data tab) or file paths. Each pair gives two single "
        "ratings, shuffled apart.")})
    learning_rate: float = field(default=5e-5, metadata={"help": (
        "Peak learning rate (KTO, like DPO, wants a small one: the policy must stay near the reference).")})
    batch_size: int = field(default=4, metadata={"help": (
        "Ratings per forward pass; at least 2, since KTO estimates its reference point (the KL) from the batch's "
        "other answers.")})
    beta: float = field(default=0.1, metadata={"help": (
        "Strength of the implicit KL penalty, as DPO's β: small lets the policy move far from the reference.")})
    desirable_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the thumbs-up answers' loss; raise it when there are fewer thumbs-up than thumbs-down ratings.")})
    undesirable_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the thumbs-down answers' loss; raise it when there are fewer thumbs-down than thumbs-up "
        "ratings.")})
    eval_fraction: float = field(default=0.1, metadata={"help": (
        "Fraction of the pairs held out (both their ratings) to measure the rewards on answers never trained on, "
        "before the first step and every save_steps steps (0 = none).")})

    stage: ClassVar[str] = "kto"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.batch_size >= 2, "batch_size", "must be at least 2: KTO estimates its reference point from "
               "the batch's other answers")
        _check(0 < self.beta <= 10, "beta", "must be in (0, 10]; 0.1 is the usual choice")
        _check(0 < self.desirable_weight <= 10, "desirable_weight", "must be in (0, 10]")
        _check(0 < self.undesirable_weight <= 10, "undesirable_weight", "must be in (0, 10]")


def _check_types(config: Any) -> None:
    """Each field must have its default's type (YAML and forms can hand over "8" or 8.0); ints widen to floats.

    A number box holding letters (or nothing) hands over None: that is "must be a number", not "got None".
    """
    for f in fields(config):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, f.name)
        if isinstance(default, bool):
            _check(isinstance(value, bool), f.name, f"must be true or false, got {value!r}")
        elif isinstance(default, int):
            _check(value is not None, f.name, "must be a number")
            _check(isinstance(value, int) and not isinstance(value, bool), f.name, f"must be a whole number, got "
                   f"{value!r}")
        elif isinstance(default, float):
            _check(value is not None, f.name, "must be a number")
            _check(isinstance(value, (int, float)) and not isinstance(value, bool), f.name,
                   f"must be a number, got {value!r}")
            setattr(config, f.name, float(value))
        elif isinstance(default, str):
            _check(isinstance(value, str), f.name, f"must be text, got {value!r}")
        elif isinstance(default, list):
            _check(isinstance(value, list), f.name, f"must be a list, got {value!r}")


CONFIGS: dict[str, type] = {"sft": SFTConfig, "reward": RewardConfig, "dpo": DPOConfig, "ppo": PPOConfig,
                            "grpo": GRPOConfig, "rloo": RLOOConfig, "kto": KTOConfig}


def help_text(config_class: type, name: str) -> str:
    """A field's help: its ``metadata["help"]`` (the single source of field docs), as transformers'
    ``HfArgumentParser`` reads it. Kept in the field itself, not in the source, so it works without .py files.

    A class that redeclares a field without help keeps the help of the class it inherits the field from.
    """
    for klass in config_class.__mro__:  # the most derived class that documents the field wins
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata.get("help"):
            return str(declared.metadata["help"])
    return ""


def settings_help(stage: str) -> str:
    """The settings a stage's config.yaml takes, one a paragraph: ``name (default): help``, as ``python -m
    playground.train --help`` prints them. From the fields' help, so the CLI says what the Train form says."""
    config_class = CONFIGS[stage]
    defaults = config_class()
    lines = [f"{stage} settings ({config_class.__name__}):"]
    for f in fields(config_class):
        text = f"{f.name} ({getattr(defaults, f.name)!r}): {help_text(config_class, f.name)}"
        lines += textwrap.wrap(text, width=100, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
    return "\n".join(lines)


RETIRED: dict[str, dict[str, tuple[Any, str]]] = {
    "ppo": {key: (value, "PPO samples from the whole tempered distribution (top-k off, top-p 1), the one whose "
                         "log-probabilities it optimises; remove this line") for key, value in
            (("top_k", 0), ("top_p", 1.0))},
}
"""Settings a stage no longer has: the value older run folders hold (read as before) and why any other is refused."""


def _drop_retired(stage: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the stage's retired settings where they hold their old neutral value (so an older run's
    config.yaml still loads); another value is refused, since the run would not do what it says."""
    retired = RETIRED.get(stage, {})
    for key, (neutral, why) in retired.items():
        if key in data and data[key] != neutral:
            raise ConfigError(key, f"is no longer a setting: {why}.")
    return {k: v for k, v in data.items() if k not in retired}


def from_dict(stage: str, data: dict[str, Any]) -> Any:
    """Build the stage's config from a mapping (YAML, form), refusing unknown keys by name."""
    if stage not in CONFIGS:
        raise ConfigError("stage", f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    config_class = CONFIGS[stage]
    data = _drop_retired(stage, data)
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(unknown[0], f"unknown setting (known: {', '.join(sorted(known))})")
    try:
        return config_class(**data)
    except TypeError as error:
        raise ConfigError("config", str(error)) from error


def load(stage: str, path: Path) -> Any:
    """Read a config YAML file (the one a run keeps in its folder)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError("config", f"can't read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a mapping of settings")
    return from_dict(stage, data)
