"""PPO's log-probabilities through the LM head (TRL's chunked kernel, :func:`ppo_roles.head_logprobs`) equal the
model's own logits on every model family we support, and on those that scale their logits; and PPO's learning-rate
schedule reads the scheduler state a checkpoint from before it saved."""

from __future__ import annotations

import io

import pytest
import torch
from torch.testing import assert_close

from playground.train import ppo, ppo_math, ppo_roles

SMALL = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def tiny(family: str) -> torch.nn.Module:
    """A random one-layer model of ``family`` with peaked logits (a large initializer range), so that soft-capping
    and logit scaling change the distribution."""
    import transformers

    configs = {
        "llama": lambda: transformers.LlamaConfig(**SMALL),  # SmolLM2
        "qwen2": lambda: transformers.Qwen2Config(**SMALL, tie_word_embeddings=True),  # Qwen2.5 0.5B ties them
        "gemma2": lambda: transformers.Gemma2Config(**SMALL, head_dim=8, final_logit_softcapping=2.0),
        "gemma3": lambda: transformers.Gemma3TextConfig(**SMALL, head_dim=8, final_logit_softcapping=2.0),
        "cohere": lambda: transformers.CohereConfig(**SMALL, logit_scale=0.5, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        "granite": lambda: transformers.GraniteConfig(**SMALL, logits_scaling=4.0),
    }
    classes = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma2": "Gemma2ForCausalLM",
               "gemma3": "Gemma3ForCausalLM", "cohere": "CohereForCausalLM", "granite": "GraniteForCausalLM"}
    config = configs[family]()
    config.initializer_range = 0.5
    torch.manual_seed(0)
    return getattr(transformers, classes[family])(config).eval()


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2", "gemma3", "cohere", "granite"])
def test_head_logprobs_equal_the_models_own_logits_and_their_gradients(family, monkeypatch):
    model = tiny(family)
    monkeypatch.setattr(ppo_roles, "VOCAB_CHUNK", 128)  # 300 tokens: tiles of 128, 128 and 44
    ids = torch.randint(0, 300, (2, 12))
    tokens = ids[:, -5:]
    head = model.get_output_embeddings()
    assert ppo_roles.is_plain_head(head)
    text = model.config.get_text_config()
    full = model(input_ids=ids).logits[:, -6:-1].float() / 0.7  # (B, T, V): the rows that predict the answer
    expected = ppo_math.logprobs_from_logits(full, tokens)
    hidden = model.model(input_ids=ids).last_hidden_state[:, -6:-1]
    logprobs, entropy = ppo_roles.head_logprobs(head, hidden, tokens, 0.7, entropy=True,
                                                softcap=getattr(text, "final_logit_softcapping", None),
                                                scale=ppo_roles.logit_scale(model.config))
    assert_close(logprobs, expected, atol=1e-5, rtol=1e-5)
    assert_close(entropy, ppo_math.entropy_from_logits(full), atol=1e-5, rtol=1e-5)
    # the same gradient reaches the backbone (through the hidden states) and the head's weight
    wanted = [model.model.layers[0].mlp.down_proj.weight, head.weight]
    assert_close(torch.autograd.grad(logprobs.sum(), wanted, retain_graph=True),
                 torch.autograd.grad(expected.sum(), wanted), atol=1e-4, rtol=1e-4)


def test_a_head_with_a_bias_or_a_lora_on_it():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=True)
    torch.nn.init.normal_(head.bias, 0, 1.0)
    hidden, tokens = torch.randn(3, 4, 16), torch.randint(0, 50, (3, 4))
    logprobs, entropy = ppo_roles.head_logprobs(head, hidden, tokens, 1.3)
    assert entropy is None
    assert_close(logprobs, ppo_math.logprobs_from_logits(head(hidden) / 1.3, tokens), atol=1e-5, rtol=1e-5)

    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny("llama"), LoraConfig(r=2, target_modules=["lm_head", "q_proj"]))
    assert not ppo_roles.is_plain_head(model.get_output_embeddings())  # its output isn't weight @ h: the fallback


def test_the_warmup_schedule_and_a_checkpoints_scheduler_state_from_before_it():
    def optimizer():
        return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    new = ppo.make_scheduler(optimizer(), 4)
    rates = []
    for _ in range(6):
        rates.append(new.get_last_lr()[0])
        new.optimizer.step()
        new.step()
    assert rates == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # from 0 over 4 steps, then constant
    assert ppo.make_scheduler(optimizer(), 0).get_last_lr() == [1.0]  # no warm-up (PPO's default)
    # the scheduler that wrote the checkpoints of earlier runs: a LambdaLR, whose state the new one reads
    old = torch.optim.lr_scheduler.LambdaLR(optimizer(), lambda s: min(1.0, (s + 1) / 5))
    for _ in range(3):
        old.optimizer.step()
        old.step()
    saved = io.BytesIO()
    torch.save({"scheduler": old.state_dict()}, saved)
    saved.seek(0)
    resumed = ppo.make_scheduler(optimizer(), 4)
    resumed.load_state_dict(torch.load(saved, weights_only=True)["scheduler"])  # as load_checkpoint reads it
    assert resumed.last_epoch == 3
    resumed.optimizer.step()
    resumed.step()
    assert resumed.get_last_lr() == [1.0]  # step 4: warmed up
