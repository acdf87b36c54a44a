"""Tiny random models and a tokenizer built on the spot, so tests never download anything."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "Explain the moon landing to a six year old in a few sentences.",
    "The quick brown fox jumps over the lazy dog. Instruction: Response: User: Assistant:",
    "Summarize this text. Classify the sentiment as positive or negative. Translate to French.",
    "Once upon a time there was a small robot who loved to read stories about the sea.",
    "1 2 3 4 5 6 7 8 9 0 + - * / = ? ! . , ; : ' \" ( ) # ### <|user|> <|assistant|> <|system|>",
] * 20

#: bitsandbytes quantizes NF4 in blocks of 64 weights along a Linear's input. On a CPU with AVX-512 BF16 (a current
#: Xeon) it repacks a 4-bit Linear for inference by whole blocks, so a layer narrower than one block fails there
#: ("shape '[32, 0]' is invalid"). Models for 4-bit tests are built this wide (see :func:`build_model`'s ``width``).
NF4_BLOCK = 64
NF4_WIDTH = 128
"""The narrowest ``width`` whose every quantized Linear is one NF4 block wide in and out: k/v project to
2 key-value heads × (width / 4 heads) = width / 2 features."""


def build_tokenizer():
    """A byte-level BPE tokenizer (a few hundred tokens) that adds <s> in front of every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its progress lines go to stdout, where the benchmarks print their Markdown
    )
    backend.train_from_iterator(_CORPUS, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", backend.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def build_model(folder: Path, chat: bool, context: int = 256, seed: int = 0, initializer_range: float = 0.02,
                width: int = 32) -> Path:
    """Save a 2-layer random Llama and its tokenizer (with a chat template when ``chat``) as safetensors.

    A larger ``initializer_range`` gives the random model peaked next-token distributions a small adapter can move
    (with the default 0.02 every logit is near 0: the model is uniform and barely trainable by LoRA). ``width`` is
    the hidden size (4 attention heads, 2 key-value heads, MLP twice as wide): the default 32 keeps tests fast;
    a model loaded in 4-bit needs ``width=NF4_WIDTH``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_adapter(base: Path, folder: Path, seed: int = 0) -> Path:
    """Save a LoRA adapter with random (non-zero) weights on ``base``, so it visibly changes the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder
