"""A tiny AI judge whose greedy answer we choose: a causal LM that is a fixed word-to-word map, built on the spot.

The model is a one-layer Llama whose attention and MLP write nothing (their output projections are zero), so each
position's hidden state is its own token's embedding. The embeddings are one-hot, the final RMSNorm keeps them
one-hot, and the LM head sends word *i* to the word ``NEXT[i]`` with a logit far above every other: greedy decoding
then writes, after a prompt, the chain of words that starts from the prompt's *last* word, until ``</s>``. The
tokenizer is word-level (split on whitespace), so a chain's words decode back as written, one space apart.

With a rubric that ends with the second answer shown (``{question} {first} {second}``), the judge's verdict in each
order depends on the last word of whichever answer it saw second:

- ``bad`` → ``First wins. Verdict:A`` (the answer shown first is better)
- ``good`` → ``Second shines. Verdict:B``
- ``meh`` → ``Equal quality. Verdict:tie``
- ``odd`` → ``Hmm dunno.`` (no verdict: unreadable)

So an answer ending ``good`` against one ending ``bad`` wins in both orders; two answers ending ``bad`` make the
judge prefer whatever it saw first (position bias: the orders disagree).
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]

CHAINS: dict[str, list[str]] = {
    "bad": ["First", "wins.", "Verdict:A"],
    "good": ["Second", "shines.", "Verdict:B"],
    "meh": ["Equal", "quality.", "Verdict:tie"],
    "odd": ["Hmm", "dunno."],
}
"""Last word of the prompt → the words the judge writes (then ``</s>``)."""

WORDS = ["Which", "answer", "is", "better?", "Explain", "the", "moon", "landing.", "Name", "a", "colour.",
         "Write", "haiku.", "Say", "hi.", "reply", "People", "flew", "there", "It", "cheese", "Red", "blue", "and",
         "then", "Judge:", "question:", "first:", "second:"]
"""Words the tests' prompts and answers use besides the chains' (any other word reads as ``<unk>``)."""


def vocabulary() -> list[str]:
    words = list(SPECIALS) + WORDS + list(CHAINS)
    for chain in CHAINS.values():
        words += [w for w in chain if w not in words]
    return list(dict.fromkeys(words))


def build_tokenizer():
    """A word-level tokenizer over :func:`vocabulary` that puts ``<s>`` before every text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")


def next_words() -> dict[str, str]:
    """Every word's next word: along the chains, and ``</s>`` after a chain's end and after any other word."""
    following = {}
    for start, chain in CHAINS.items():
        for word, after in zip([start] + chain, chain + ["</s>"]):
            following[word] = after
    return following


def build_judge(folder: Path) -> Path:
    """Save the word-map judge (safetensors, config, tokenizer) into ``folder``; a base model (no chat template),
    so the "auto" prompt format gives it the rubric as plain text."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    words = vocabulary()
    width = 4 * ((len(words) + 3) // 4)  # one dimension per word, a multiple of the 4 heads
    config = LlamaConfig(vocab_size=len(words), hidden_size=width, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    following = next_words()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.norm.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        for index, word in enumerate(words):
            model.model.embed_tokens.weight[index, index] = 1.0
            model.lm_head.weight[words.index(following.get(word, "</s>")), index] = 10.0
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
