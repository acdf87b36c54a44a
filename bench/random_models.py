"""Random-weight models of real size, built from their published configs: what a GPU check measures memory and time
on where no weights can be downloaded (the GPU machines have no network, and the hub is off: HF_HUB_OFFLINE=1).

A training step's memory and time depend on the shapes — hidden size, layers, heads, vocabulary — not on the weights'
values, so a random model of the right shape stands in for the real one (its answers are noise, which changes
nothing about memory or time). Each :class:`Shape` writes its config in code, as the model's config.json on the hub
has it, with the published parameter count, which :func:`meta_build` checks on the meta device (no memory, no
time).

The tokenizer is a packaged GGUF's when that package is installed and its vocabulary fits the shape's: Gemma 3's
own for Gemma 3 270M, SmolLM2's 49,152-token byte-level BPE for Qwen2.5 0.5B (whose own tokenizer can't be had
offline; on English text both make about as many tokens). Otherwise it is the tests' byte-level tokenizer
(``tests/tiny_models.py``: a few hundred tokens, so several tokens per word and longer sequences — the output says
which was used). The model keeps the shape's vocabulary either way: the embedding and LM head are sized by it,
which is what matters for memory; ids past the tokenizer's can be sampled (PPO, Compare) and fed back, which is
harmless: they are inside the model's vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD = "bench-model.json"
"""Written beside a saved model: its shape, parameter count and tokenizer (what the figures were measured on)."""

_GEMMA3_LAYERS = (["sliding_attention"] * 5 + ["full_attention"]) * 3


@dataclass(frozen=True)
class Shape:
    """A model's architecture as its published config.json states it (``model_type`` + the config's fields)."""

    key: str
    title: str
    model_type: str
    config: dict[str, Any]
    parameters: int | None
    """The published parameter count (tied embeddings counted once); None for a shape made up for testing."""
    tokenizer: str = ""
    """The packaged model whose tokenizer it uses when installed (:data:`playground.models.catalog.PACKAGED`); else the
    tests' tokenizer."""


SHAPES: dict[str, Shape] = {
    "qwen2.5-0.5b": Shape(
        key="qwen2.5-0.5b", title="Qwen2.5-0.5B", model_type="qwen2",
        config=dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                    num_attention_heads=14, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768,
                    rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    use_sliding_window=False, tie_word_embeddings=True),
        parameters=494_032_768, tokenizer="smollm2-135m-instruct"),
    "gemma-3-270m": Shape(
        key="gemma-3-270m", title="Gemma 3 270M", model_type="gemma3_text",
        config=dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                    num_attention_heads=4, num_key_value_heads=1, head_dim=256, hidden_activation="gelu_pytorch_tanh",
                    max_position_embeddings=32768, query_pre_attn_scalar=256, sliding_window=512,
                    layer_types=_GEMMA3_LAYERS, rms_norm_eps=1e-6, attn_logit_softcapping=None,
                    final_logit_softcapping=None, tie_word_embeddings=True,
                    rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
        parameters=268_098_176, tokenizer="gemma-3-270m"),
    # Not a real model: the 2-layer Llama the tests load in 4-bit (every Linear one NF4 block wide), for running this
    # check's whole flow on a CPU (``python -m bench.gpu --models tiny --cpu``) — figures that measure nothing.
    "tiny": Shape(
        key="tiny", title="tiny random Llama (flow check)", model_type="llama",
        config=dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
        parameters=None),
}


def shape_tokenizer(shape: Shape, settings: Any = None) -> tuple[Any, str]:
    """(tokenizer with a pad token and no chat template, where it came from) for ``shape``: the packaged model's
    (read from its GGUF once, into the data dir's import cache of ``settings`` — the app's by default) when
    installed, else the tests' byte-level tokenizer."""
    from playground.models.catalog import PACKAGED

    package = PACKAGED.get(shape.tokenizer)
    if package is not None and package.installed():
        from transformers import AutoTokenizer

        from playground.core.settings import Settings
        from playground.models.loading import import_tokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(import_tokenizer(package, settings or Settings())))
        source = f"{package.key}'s (packaged GGUF)"
    else:
        from tests.tiny_models import build_tokenizer

        tokenizer = build_tokenizer()
        source = "the tests' byte-level BPE" + (f" ({shape.tokenizer} is not installed)" if package else "")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = None  # a base model: the stages prompt it in the ### Instruction frame
    return tokenizer, source


def model_config(shape: Shape, tokenizer: Any) -> Any:
    """The transformers config of ``shape`` with the tokenizer's special-token ids; raises ValueError when the
    vocabulary doesn't cover every token id of the tokenizer."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(shape.model_type, **shape.config, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"{shape.key}: the tokenizer has {len(tokenizer)} tokens, more than the model's vocabulary "
                         f"of {config.vocab_size}")
    return config


def meta_build(config: Any) -> tuple[str, int]:
    """(model class, parameters) of the causal LM built from ``config`` on the meta device (nothing allocated, a
    second or two); tied embeddings count once. Checks that the config builds."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return type(model).__name__, sum(p.numel() for p in model.parameters())


def save_random_model(shape: Shape, folder: Path, settings: Any = None, seed: int = 0) -> dict[str, Any]:
    """Build ``shape`` with random weights (bfloat16, as the published checkpoints are; on the CPU, so the GPU holds
    nothing of this process while the measured ones run) and save it with its tokenizer as a model folder the
    catalog loads like any local model. Returns what :data:`RECORD` holds."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer, source = shape_tokenizer(shape, settings)
    config = model_config(shape, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = {"shape": shape.key, "title": shape.title, "parameters": sum(p.numel() for p in model.parameters()),
              "vocabulary": config.vocab_size, "tokenizer": source, "tokenizer_size": len(tokenizer),
              "dtype": "bfloat16", "seed": seed}
    (folder / RECORD).write_text(json.dumps(record, indent=2))
    return record
