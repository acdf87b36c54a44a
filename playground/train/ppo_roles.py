"""PPO's four models on one base model: policy, reference, reward and value are adapters switched on one network.

TRL's old PPOTrainer (removed in 1.13) held four models; with a 4-bit base and LoRA adapters the roles differ only
in their adapter, so one base serves them all (Hu et al. 2021 "LoRA"; Dettmers et al. 2023 "QLoRA"):

* **policy** = base + LoRA ``default`` (trainable; a fresh LoRA, or the SFT run's adapter to continue from);
* **reference** = the base with adapters off, or — when the policy starts from an SFT run — that SFT adapter loaded
  a second time, frozen (``reference``); the KL penalty is measured against it;
* **reward** = base + the reward run's LoRA (``reward``, frozen) + its score head (one linear layer, applied here to
  the last hidden state exactly as ``AutoModelForSequenceClassification`` does);
* **value** = base + LoRA ``value`` (trainable) + a scalar head on every position, optionally started from the
  reward run's LoRA and head.

The reward adapter was trained on the sequence-classification model, whose backbone is the causal LM's backbone
(both are ``model.model``), so its LoRA weights load into the causal LM unchanged; only the score head, which the
causal LM doesn't have, is kept here as a tensor. The roles share the frozen base weights: memory is one base plus
four small adapters (see docs/BENCHMARKS.md, ppo).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playground.core.settings import Settings
from playground.models.adapters import adapter_config
from playground.runs.reward_model import RewardRun
from playground.train import ppo_math
from playground.train.common import keep_trainable_fp32, load_base, lora_config, sft_adapter
from playground.train.config import PPOConfig

POLICY, REFERENCE, REWARD, VALUE = "default", "reference", "reward", "value"
"""Adapter names. The policy's is PEFT's default, so the run's adapter saves as any other stage's."""

VOCAB_CHUNK = 32768
"""Vocabulary columns per tile of the LM head in :func:`head_logprobs` (TRL's fused LM head uses as many)."""


def head_logprobs(head: Any, hidden: Any, tokens: Any, temperature: float, entropy: bool = False,
                  softcap: float | None = None, scale: float = 1.0) -> tuple[Any, Any]:
    """log π(token) at each answer position from the backbone's hidden states: (B, T, H) hidden and (B, T) tokens →
    ((B, T) log-probabilities of the tempered distribution, (B, T) entropies when ``entropy`` else None).

    The logits are ``softcap · tanh(scale · head(h) / softcap) / temperature`` (no cap when ``softcap`` is None),
    which is what every model we support computes (:func:`logit_scale`; ``head`` a plain ``Linear``, with or without
    bias, its weight tied to the embeddings or not). TRL's :class:`trl.kernels.ChunkedLogProbFunction` computes them
    on tiles of ``VOCAB_CHUNK`` vocabulary columns folded into an online log-sum-exp, and recomputes each tile in the
    backward pass, so the (B, T, V) logits are never whole in memory — with a large vocabulary (Gemma: 262,144
    tokens) they and their log-softmax and gradient would be most of a step's memory (docs/BENCHMARKS.md, PPO). The
    projection runs in the autocast dtype when autocast is on (as the head's own forward would), the rest in
    float32."""
    from trl.kernels import ChunkedLogProbFunction

    batch, width = tokens.shape
    logprobs, entropies, *_ = ChunkedLogProbFunction.apply(
        hidden.reshape(batch * width, hidden.shape[-1]), head.weight, head.bias, tokens.reshape(-1), temperature,
        VOCAB_CHUNK, softcap, scale, ("entropy",) if entropy else ())
    return logprobs.view(batch, width), (entropies.view(batch, width) if entropy else None)


def logit_scale(config: Any) -> float:
    """What a model multiplies its LM head's output by before any soft-capping: Cohere's ``logit_scale``, 1 /
    Granite's ``logits_scaling`` (it divides by it), 1 for the others (Gemma 2 and 3 soft-cap instead: their
    ``final_logit_softcapping``; Llama, SmolLM2 and Qwen2 neither scale nor cap)."""
    text = config.get_text_config()
    if getattr(text, "logit_scale", None) is not None:
        return float(text.logit_scale)
    if getattr(text, "logits_scaling", None) is not None:
        return 1.0 / float(text.logits_scaling)
    return 1.0


def is_plain_head(head: Any) -> bool:
    """Whether the LM head is a ``Linear`` with float weights, which :func:`head_logprobs` reads directly. Not so
    when a user's ``target_modules`` put a LoRA (or PEFT's ``modules_to_save``) on the head, or the head is
    quantized: its output is then not ``weight @ h + bias``, and the log-probs come from the model's own forward."""
    import torch

    return isinstance(head, torch.nn.Linear) and head.weight.is_floating_point()


def autocast_for(precision: dict[str, Any], device: Any) -> Any:
    """The autocast of a run's precision flags (``load_base``'s bf16 / fp16) on ``device``."""
    import torch

    from playground.models.loading import compute_autocast

    dtype = torch.bfloat16 if precision.get("bf16") else torch.float16 if precision.get("fp16") else torch.float32
    return compute_autocast(device, dtype)


def position_ids(mask: Any) -> Any:
    """Positions that skip left padding: (B, L) mask → (B, L), as ``generate`` numbers them, so a forward pass on
    a left-padded sequence sees the same positions as the sampling did."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def disable_dropout(model: Any) -> None:
    """Turn off every dropout in ``model``: PPO's ratio π/π_old compares the policy in the update with the policy
    that sampled, so both must be the same deterministic function (as TRL's trainers do for their policy and
    reference). TRL's ``disable_dropout_in_model`` zeroes the ``nn.Dropout`` modules (LoRA's ``lora_dropout``, most
    models' dropout layers); attention dropout is a float that the attention functions read in training mode
    (``attention_dropout`` on the attention module and its config), so it is zeroed here too."""
    from trl.trainer.utils import disable_dropout_in_model

    disable_dropout_in_model(model)
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
        config = getattr(module, "config", None)
        if config is not None and isinstance(getattr(config, "attention_dropout", None), float):
            config.attention_dropout = 0.0


class SharedBase:
    """The four roles of PPO over one base model. Call a role's method; the adapter switch is inside it."""

    def __init__(self, cfg: PPOConfig, settings: Settings, reward: RewardRun | None) -> None:
        import torch
        from peft import PeftModel, get_peft_model

        base, self.tokenizer, self.precision = load_base(cfg, settings)
        start = sft_adapter(cfg, settings)
        if start is None:
            self.model = get_peft_model(base, lora_config(cfg, "CAUSAL_LM"))
            self.reference_adapter: str | None = None
        else:
            self.model = PeftModel.from_pretrained(base, str(start), is_trainable=True)
            self.model.load_adapter(str(start), adapter_name=REFERENCE, is_trainable=False)
            self.reference_adapter = REFERENCE
            print(f"Policy starts from the SFT adapter {start}; the reference is that adapter, frozen", flush=True)
        self._role = POLICY  # the role whose adapter is active now (see role())
        if cfg.gradient_checkpointing:
            # Non-reentrant, so the frozen base's inputs need not require grad. The backward pass recomputes each
            # checkpointed layer, and by then the block that ran the forward as some role has ended: the recompute
            # must run with that role's adapter again, or the value loss's gradients would be computed through the
            # policy's adapter (context_fn is called at forward time and gives the context of the recompute).
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={
                "use_reentrant": False, "context_fn": self._recompute_as_forward})
        # Sample with exactly the settings PPO passes, nothing inherited from the model's own generation_config
        # (a repetition penalty, min_p…): the sampled tokens must come from the distribution whose log-probs PPO
        # recomputes. transformers fills every field a passed config leaves unset from the model's one.
        from transformers import GenerationConfig

        self.model.get_base_model().generation_config = GenerationConfig()
        self.device = next(p.device for p in self.model.parameters())
        hidden = base.config.get_text_config().hidden_size
        self.plain_head = is_plain_head(self.model.get_output_embeddings())
        self.softcap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
        self.logit_scale = logit_scale(base.config)
        self.score_head: Any = None
        self.reward_pad_id = self.tokenizer.pad_token_id
        reward_weights: dict[str, Any] = {}
        if reward is not None:
            reward_weights = self._add_reward(reward)
        value_config, value_weights = lora_config(cfg, "CAUSAL_LM"), {}
        if cfg.value_init == "reward" and reward is not None:
            value_config, value_weights = self._lora_of(reward.adapter), reward_weights
        self.model.add_adapter(VALUE, value_config)
        self.value_head = torch.nn.Linear(hidden, 1, device=self.device, dtype=torch.float32)
        torch.nn.init.zeros_(self.value_head.bias)
        if value_weights:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, {k: v for k, v in value_weights.items() if "lora_" in k},
                                      adapter_name=VALUE)
            self.value_head.weight.data.copy_(self.score_head)
            print("Value model starts from the reward model (LoRA and head)", flush=True)
        else:
            torch.nn.init.zeros_(self.value_head.weight)
        disable_dropout(self.model)  # once every adapter is in: the value LoRA may be a fresh one with dropout
        self.model.set_adapter(POLICY)
        self.trainable = self._adapter_parameters(POLICY) + self._adapter_parameters(VALUE) \
            + list(self.value_head.parameters())
        self._train_mode()
        keep_trainable_fp32(self.model)  # master weights, as the TRL stages keep them (the value head already is)

    # ------------------------------------------------------------------------------------------ setup

    @staticmethod
    def _lora_of(adapter: Path) -> Any:
        """A causal-LM LoRA config with the same shape as a reward adapter's (its score head is handled apart)."""
        from peft import LoraConfig

        saved = LoraConfig.from_pretrained(str(adapter))
        return LoraConfig(r=saved.r, lora_alpha=saved.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=saved.target_modules)

    def _add_reward(self, reward: RewardRun) -> dict[str, Any]:
        """Load the reward run's LoRA as the frozen ``reward`` adapter and its score head; returns its weights."""
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(reward.adapter / "adapter_model.safetensors"))
        heads = [k for k in weights if "lora_" not in k and k.endswith("score.weight")]
        if len(heads) != 1:
            raise ValueError(f"The reward adapter in {reward.adapter} has no score head (keys: {len(weights)}).")
        self.model.add_adapter(REWARD, self._lora_of(reward.adapter))
        result = set_peft_model_state_dict(self.model, {k: v for k, v in weights.items() if "lora_" in k},
                                           adapter_name=REWARD)
        missing = [k for k in result.missing_keys if f".{REWARD}." in k]
        if missing:
            raise ValueError(f"The reward adapter in {reward.adapter} doesn't fit this base model ({len(missing)} "
                             f"LoRA weights missing, e.g. {missing[0]}).")
        for p in self._adapter_parameters(REWARD):
            p.requires_grad_(False)
        self.score_head = weights[heads[0]].to(self.device, torch.float32)  # (1, H)
        config = adapter_config(reward.adapter)
        print(f"Reward model {reward.name}: LoRA r{config.get('r')} + score head, on the shared base", flush=True)
        return weights

    def _adapter_parameters(self, name: str) -> list[Any]:
        """The LoRA matrices of adapter ``name``, by their PEFT names (``…lora_A.<name>.weight``), so that a base
        module that happens to be called like a role (``value``, ``reward``) is never picked up."""
        return [p for n, p in self.model.named_parameters() if f"lora_A.{name}." in n or f"lora_B.{name}." in n]

    def _train_mode(self) -> None:
        """PEFT's set_adapter marks only the active adapter trainable; the optimizer owns policy and value."""
        for p in self.trainable:
            p.requires_grad_(True)

    def _activate(self, name: str) -> None:
        """Make ``name``'s adapter the active one (the reference without an SFT start: all adapters off)."""
        if name == REFERENCE and self.reference_adapter is None:
            self.model.base_model.disable_adapter_layers()
        else:
            self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(name)
            self._train_mode()
        self._role = name

    @contextmanager
    def role(self, name: str) -> Iterator[None]:
        """Run the block as one role: the policy, the reference, the reward or the value model; the role that was
        active before is active again after it."""
        before = self._role
        self._activate(name)
        try:
            yield
        finally:
            self._activate(before)

    def autocast(self) -> Any:
        """The training precision for every forward of every role (sampling, recomputed log-probs, values, scores):
        matmuls and attention in bf16 or fp16 while the trainable weights stay float32, as the TRL stages train
        through accelerate (:func:`playground.models.loading.compute_autocast`). Without it a GPU run would compute in
        float32 wherever a 4-bit base keeps float32 (norms, embeddings, LM head, the residual stream; its 4-bit layers
        compute in their own compute dtype and return their input's). A no-op in full precision. Activation
        checkpoints recompute under the autocast state of their forward."""
        return autocast_for(self.precision, self.device)

    def _recompute_as_forward(self) -> tuple[Any, Any]:
        """``context_fn`` of the activation checkpoints: the forward runs as it is; the recompute in the backward pass
        runs as the role that was active at forward time."""
        return contextlib.nullcontext(), self.role(self._role)

    # ------------------------------------------------------------------------------------------ roles

    def generate(self, query: Any, query_mask: Any, generation_config: Any) -> Any:
        """Sample answers with the policy: (B, P) left-padded prompts → (B, T) answer tokens (padded after EOS)."""
        import torch

        self.model.eval()
        with torch.no_grad(), self.role(POLICY), self.autocast():
            out = self.model.generate(input_ids=query, attention_mask=query_mask, generation_config=generation_config)
        return out[:, query.shape[1]:]

    def logits(self, name: str, ids: Any, mask: Any, answer_length: int) -> Any:
        """Next-token logits for the answer positions: (B, L) sequences → (B, T, V) for the last T = answer_length
        tokens (row t predicts answer token t). ``name``: the policy or the reference."""
        with self.role(name), self.autocast():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                             logits_to_keep=answer_length + 1, use_cache=False)
        return out.logits[:, :-1].float()

    def logprobs(self, name: str, ids: Any, mask: Any, tokens: Any, temperature: float,
                 entropy: bool = False) -> tuple[Any, Any]:
        """log π(answer token) under the tempered policy or reference: (B, L) sequences whose last T tokens are the
        (B, T) ``tokens`` → ((B, T) log-probabilities, (B, T) entropies or None). See :func:`head_logprobs`."""
        width = tokens.shape[1]
        if not self.plain_head:  # a LoRA'd or quantized head (is_plain_head): the logits of the model's forward
            logits = self.logits(name, ids, mask, width) / temperature
            return (ppo_math.logprobs_from_logits(logits, tokens),
                    ppo_math.entropy_from_logits(logits) if entropy else None)
        with self.role(name), self.autocast():
            hidden = self._hidden(ids, mask)[:, -width - 1:-1]  # (B, T, H): the state before each answer token
            return head_logprobs(self.model.get_output_embeddings(), hidden, tokens, temperature, entropy,
                                 self.softcap, self.logit_scale)

    def _hidden(self, ids: Any, mask: Any) -> Any:
        """The backbone's last hidden states (B, L, H), after the final norm (the heads' input)."""
        backbone = self.model.get_base_model().base_model
        return backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                        use_cache=False).last_hidden_state

    def values(self, ids: Any, mask: Any, answer_length: int) -> Any:
        """V(state before each answer token): (B, L) → (B, T), from the value adapter and head."""
        with self.role(VALUE), self.autocast():
            hidden = self._hidden(ids, mask)[:, -answer_length - 1:-1]
            return self.value_head(hidden).squeeze(-1).float()

    def reward(self, ids: Any) -> Any:
        """r(x, y) for right-padded (B, L) sequences → (B,): the score head at the last token that isn't padding,
        the token ``AutoModelForSequenceClassification`` pools (so a pair scores as in the reward run)."""
        import torch

        if self.score_head is None:
            raise RuntimeError("No reward model loaded.")
        mask = (ids != self.reward_pad_id).long()
        last = (torch.arange(ids.shape[1], device=ids.device) * mask).argmax(-1)  # (B,)
        with torch.no_grad(), self.role(REWARD), self.autocast():
            backbone = self.model.get_base_model().base_model
            hidden = backbone(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).last_hidden_state
            pooled = hidden[torch.arange(ids.shape[0], device=ids.device), last]  # (B, H)
            # the score head as the reward run's forward applied it: a Linear under the same autocast
            return torch.nn.functional.linear(pooled, self.score_head).squeeze(-1).float()
