"""PPO end to end on tiny local models: a programmatic reward rises while KL stays bounded, Stop + Resume continue
the step count, bad inputs are refused by field, and the whole SFT → reward model → PPO chain runs through the run
system and lands in Compare. The maths itself is checked by hand in test_ppo_math.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

from playground.core.settings import Settings
from playground.models.catalog import list_models
from playground.models.loading import LoadOptions, ModelCache
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder
from playground.train import ppo
from playground.train.checks import check_inputs
from playground.train.config import ConfigError, PPOConfig, RewardConfig, SFTConfig
from tests.app_process import kill_live_runs
from tests.test_reward_dpo import toy_pairs
from tests.tiny_models import build_model

pytestmark = pytest.mark.slow  # real PPO steps: about a second each on two cores

MERGES = 260
"""In the tiny tokenizer ids below 260 are the specials and single bytes; ids from 260 are BPE merges (whole
sub-words). The test reward prefers merges: a direction in which every prompt's answers can move."""


def merge_share(prompts, texts, answer, mask):
    """5 × the share of the answer's tokens that are BPE merges: (B, T) tokens and mask → (B,) scores in [0, 5]
    (scaled like a reward model's scores, so the KL penalty's β means what it means for a real run)."""
    merges = (answer >= MERGES).float() * mask
    return 5.0 * merges.sum(1) / mask.sum(1)


@pytest.fixture(scope="module")
def peaked_base(tmp_path_factory):
    """A tiny random model with peaked next-token distributions, which LoRA can move (see build_model)."""
    return build_model(tmp_path_factory.mktemp("models") / "tiny-peaked", chat=False, initializer_range=0.3)


def ppo_config(base, data_dir, **overrides) -> PPOConfig:
    values = dict(name="ppo", base_model=str(base), datasets=["prompts"], quantization="none", lora_r=8,
                  lora_alpha=16, batch_size=16, mini_batch_size=8, ppo_epochs=4, response_length=16, max_length=128,
                  learning_rate=3e-3, kl_coef=0.02, kl_estimator="k3", save_steps=1000, data_dir=str(data_dir))
    return PPOConfig(**(values | overrides))


@pytest.mark.timeout(900)  # 30 PPO steps of 16 answers: about 90 s alone on 2 cores, 4 min beside other work
def test_a_programmatic_reward_rises_while_kl_stays_bounded(peaked_base, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked_base, tmp_path / "data", max_steps=30, samples_per_step=2)
    assert ppo.train(cfg, run, scorer=merge_share) == "finished"
    metrics = run.metrics()
    assert [m["step"] for m in metrics] == list(range(1, 31))
    first = sum(m["score"] for m in metrics[:5]) / 5
    last = sum(m["score"] for m in metrics[-5:]) / 5
    assert last > first + 0.3, (first, last)  # measured: 1.75 → 2.2 (share of merges 35 % → 44 %)
    # Measured: KL climbs to 38 nats by step 30 at β = 0.02 (the reward pays more than the penalty costs). That the
    # penalty pulls the right way is shown by test_with_nothing_to_gain_the_kl_penalty_holds_the_policy_near_its_start.
    assert all(0 <= m["kl"] < 45 for m in metrics), [round(m["kl"], 1) for m in metrics]
    assert all(m["kl_coef"] == 0.02 and m["score_low"] <= m["score"] <= m["score_high"] for m in metrics)
    for key in ("entropy", "response_length", "policy_loss", "value_loss", "clipfrac", "approx_kl", "time_generate",
                "time_score", "time_optimize"):
        assert all(isinstance(m[key], float) for m in metrics), key
    samples = run.samples()
    assert [s["step"] for s in samples] == [s for s in range(1, 31) for _ in range(2)]
    assert all(s["prompt"] and 1 <= s["tokens"] <= 16 and 0 <= s["score"] <= 5 for s in samples)
    assert (run.adapter / "adapter_model.safetensors").is_file()


def test_several_answers_per_prompt_are_rewarded_against_their_siblings(peaked_base, tmp_path, monkeypatch):
    """Four answers to each of two prompts a step: the scorer sees each prompt four times in a row, the shaped
    rewards get each score less the mean of its three siblings' (so a prompt's own level never reaches the
    update), and the logged score stays the reward model's own."""
    import torch

    from playground.train import ppo_math

    seen, raw, shaped = [], [], []

    def easy_and_hard(prompts, texts, answer, mask):  # a level (the first prompt 10, the other 0) + merge share
        seen.append([p.messages[-1]["content"] for p in prompts])
        level = torch.tensor([10.0 * (p.messages[-1]["content"] == seen[-1][0]) for p in prompts])
        raw.append(level + merge_share(prompts, texts, answer, mask))
        return raw[-1]

    real_shape = ppo_math.shape_rewards
    monkeypatch.setattr(ppo_math, "shape_rewards", lambda scores, *a: shaped.append(scores) or real_shape(scores, *a))
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked_base, tmp_path / "data", max_steps=2, batch_size=8, mini_batch_size=8,
                     answers_per_prompt=4, value_init="fresh")
    assert ppo.train(cfg, run, scorer=easy_and_hard) == "finished"
    for prompts, centred in zip(seen, shaped):
        assert prompts[0] != prompts[4] and len(set(prompts[:4])) == len(set(prompts[4:])) == 1
        groups = centred.reshape(2, 4)
        assert torch.allclose(groups.sum(1), torch.zeros(2), atol=1e-4)  # centred within each prompt
        assert groups.abs().max() <= 5 * 4 / 3 + 1e-4  # merge shares differ by ≤ 5: the level of 10 is gone
    logged = [m["score"] for m in run.metrics()]
    assert logged == pytest.approx([float(r.mean()) for r in raw])  # the logged score: the scorer's own, levels in


def test_with_nothing_to_gain_the_kl_penalty_holds_the_policy_near_its_start(peaked_base, tmp_path):
    """A policy moved away from its reference, a reward of 0: the only signal left is −β·KL, so KL must not run away.
    Measured (15 steps): KL 5.7 at the start, 6.5 on average over the last five steps; with the penalty's sign flipped
    (a KL bonus) the same run ends at 18."""
    import torch

    from playground.train import ppo_roles
    from playground.train.common import settings_for

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked_base, tmp_path / "data", max_steps=15, batch_size=8, mini_batch_size=8, kl_coef=0.5,
                     kl_estimator="k1")
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for lora in roles._adapter_parameters(ppo_roles.POLICY):
            lora.copy_(torch.randn(lora.shape, generator=generator) * 0.05)

    def nothing(prompts, texts, answer, mask):
        return torch.zeros(answer.shape[0])

    assert ppo.train(cfg, run, scorer=nothing, roles=roles) == "finished"
    kls = [m["kl"] for m in run.metrics()]
    assert kls[0] > 1, kls  # the policy starts away from the reference
    assert sum(kls[-5:]) / 5 < 2 * kls[0], [round(k, 2) for k in kls]


def test_adaptive_kl_raises_beta_when_kl_overshoots(peaked_base, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked_base, tmp_path / "data", max_steps=6, batch_size=8, mini_batch_size=8, ppo_epochs=4,
                     adaptive_kl=True, kl_target=0.5, kl_horizon=16, kl_coef=0.05)
    assert ppo.train(cfg, run, scorer=merge_share) == "finished"
    betas = [m["kl_coef"] for m in run.metrics()]
    assert betas[0] == 0.05 and betas[-1] > 0.05, betas  # KL above the 0.5-nat target pushes β up


def test_stop_then_resume_continues_the_step_count(peaked_base, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked_base, tmp_path / "data", max_steps=4, batch_size=4, mini_batch_size=2, ppo_epochs=1,
                     save_steps=2)
    run.stop_file.write_text("")
    assert ppo.train(cfg, run, scorer=merge_share) == "stopped"
    assert run.last_checkpoint().name == "checkpoint-1" and (run.adapter / "adapter_config.json").is_file()
    run.stop_file.unlink()
    # As if killed after logging step 2 but before its checkpoint: the resumed run logs step 2 again, once.
    run.append_metrics({"step": 2, "score": 99.0})
    with run.samples_file.open("a") as out:
        out.write(json.dumps({"step": 2, "prompt": "lost", "answer": "lost", "score": 99.0}) + "\n")
    assert ppo.train(cfg, run, resume=True, scorer=merge_share) == "finished"
    assert all(m["score"] != 99.0 for m in run.metrics()) and all(s["prompt"] != "lost" for s in run.samples())
    assert [m["step"] for m in run.metrics()] == [1, 2, 3, 4]
    assert sorted({s["step"] for s in run.samples()}) == [1, 2, 3, 4]
    assert [p.name for p in sorted(run.checkpoints.glob("checkpoint-*"))] == ["checkpoint-2", "checkpoint-4"]


def test_chunked_log_probs_equal_the_full_logits_and_their_gradients(peaked_base, tmp_path, monkeypatch):
    import torch

    from playground.train import ppo_math, ppo_roles
    from playground.train.common import settings_for

    cfg = ppo_config(peaked_base, tmp_path / "data")
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    torch.manual_seed(0)
    for lora in roles.trainable:  # a policy that differs from the reference
        lora.data.normal_(0, 0.05)
    ids = torch.randint(4, 300, (3, 30))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    tokens = ids[:, -13:]
    monkeypatch.setattr(ppo_roles, "VOCAB_CHUNK", 128)  # the tiny vocabulary (400 tokens): tiles of 128, 128, 128 and 16
    for name in (ppo_roles.POLICY, ppo_roles.REFERENCE):
        full = roles.logits(name, ids, mask, 13) / 0.7
        expected = ppo_math.logprobs_from_logits(full, tokens)
        chunked, entropy = roles.logprobs(name, ids, mask, tokens, 0.7)
        assert entropy is None and torch.allclose(chunked, expected, atol=1e-5)
        if name == ppo_roles.POLICY:  # the same gradient, though each tile's logits are recomputed in backward
            grads = torch.autograd.grad(expected.sum(), roles.trainable, allow_unused=True)
            chunked_grads = torch.autograd.grad(chunked.sum(), roles.trainable, allow_unused=True)
            assert sum(g is not None for g in grads) > 0
            for grad, chunked_grad in zip(grads, chunked_grads):
                assert (grad is None) == (chunked_grad is None)
                assert grad is None or torch.allclose(grad, chunked_grad, atol=1e-5)
        else:
            assert not chunked.requires_grad  # the reference is frozen
        with torch.no_grad():
            _, entropy = roles.logprobs(name, ids, mask, tokens, 0.7, entropy=True)
        assert torch.allclose(entropy, ppo_math.entropy_from_logits(full.detach()), atol=1e-5)


def test_prompts_are_visited_once_per_pass_in_a_seeded_order():
    steps = [ppo.prompt_order(10, 5, step, seed=3) for step in range(4)]
    assert sorted(steps[0] + steps[1]) == sorted(steps[2] + steps[3]) == list(range(10))  # each pass: every prompt
    assert steps[0] + steps[1] != steps[2] + steps[3]  # reshuffled per pass
    assert ppo.prompt_order(10, 5, 3, seed=3) == steps[3]  # a pure function of the step: Resume continues alike


def test_several_answers_to_a_prompt_come_in_a_row_and_cover_the_prompts_per_pass():
    cfg = PPOConfig(batch_size=6, mini_batch_size=6, answers_per_prompt=3, value_init="fresh")
    steps = [ppo.step_prompts(4, cfg, step) for step in range(4)]
    for prompts in steps:  # two prompts per step, each answered three times in a row (leave_one_out's groups)
        assert prompts[0] == prompts[1] == prompts[2] and prompts[3] == prompts[4] == prompts[5]
    assert sorted(sum(steps[:2], [])[::3]) == list(range(4))  # two steps: one pass over the four prompts
    assert ppo.total_steps(dataclasses.replace(cfg, max_steps=0, epochs=2.0), 4) == 4  # 2 passes × 4 prompts / 2


def test_bad_inputs_are_refused_by_field(tiny_base, settings):
    def refused(field, **overrides):
        cfg = PPOConfig(**(dict(base_model=str(tiny_base), data_dir=str(settings.data_dir)) | overrides))
        with pytest.raises(ConfigError) as caught:
            check_inputs(cfg, settings)
        assert caught.value.field == field, caught.value
        return str(caught.value)

    assert "choose a reward model" in refused("reward_run")
    assert "nope" in refused("reward_run", reward_run="nope")
    assert "fewer than the 8 a step answers" in refused("datasets", reward_run="x", max_examples=3)
    assert "fewer than the 4 a step" in refused("datasets", reward_run="x", max_examples=3, answers_per_prompt=2,
                                                 value_init="fresh")
    # 10 prompts, 2 of them held out: 8 left, as many as a step answers (the prompts pass; the made-up reward run
    # doesn't); 3 held out leave 7 (refused)
    assert "'x'" in refused("reward_run", reward_run="x", max_examples=10, eval_fraction=0.2)
    assert "7 prompts to train on once 3 are held out" in refused("datasets", reward_run="x", max_examples=10,
                                                                  eval_fraction=0.3)
    for field, value, message in [("mini_batch_size", 3, "must divide batch_size"),
                                  ("gradient_accumulation", 3, "must divide mini_batch_size"),
                                  ("max_length", 40, "room for a prompt"), ("cliprange", 1.5, r"\(0, 1\)"),
                                  ("kl_coef", -1.0, r"\[0, 10\]"), ("lam", 2.0, r"\[0, 1\]"),
                                  ("samples_per_step", 9, "batch_size"), ("answers_per_prompt", 3, "divide batch"),
                                  ("kl_estimator", "k2", "k1 or k3")]:
        with pytest.raises(ConfigError, match=message) as caught:
            PPOConfig(**{field: value})
        assert caught.value.field == field
    with pytest.raises(ConfigError, match="siblings' mean") as caught:  # the reward model predicts raw scores
        PPOConfig(answers_per_prompt=2, value_init="reward")
    assert caught.value.field == "value_init"


@pytest.fixture
def jobs(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs
    kill_live_runs(jobs)  # never leave a run process behind


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
def test_sft_then_reward_then_ppo_through_the_run_system(jobs, tiny_base, tiny_chat, tmp_path):
    settings = jobs.settings
    data = str(settings.data_dir)
    pairs = tmp_path / "toy.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(24)))
    small = dict(base_model=str(tiny_base), data_dir=data, lora_r=8, lora_alpha=16, gradient_accumulation=1,
                 eval_fraction=0.0)
    jobs.create("sft", SFTConfig(**small, name="sft", max_steps=2, batch_size=4))
    jobs.create("reward", RewardConfig(**small, name="rm", datasets=[str(pairs)], sft_run="sft", max_steps=2,
                                       batch_size=4))
    assert jobs.wait("sft", 300) == "finished"
    assert jobs.wait("rm", 300) == "finished", jobs.folder("rm").status().get("error")
    wrong_base = PPOConfig(**(small | {"base_model": str(tiny_chat)}), name="ppo-x", reward_run="rm")
    with pytest.raises(ConfigError, match="trained on") as caught:
        check_inputs(wrong_base, settings)  # PPO shares one base model: the reward model must be on it
    assert caught.value.field == "reward_run"
    nf4 = PPOConfig(**small, name="ppo-x", reward_run="rm", quantization="4bit")
    with pytest.raises(ConfigError, match="trained on a full-precision base and this run loads the base in 4-bit"):
        check_inputs(nf4, settings)  # the reward adapter would score on an NF4 base it never trained on
    folder = jobs.create("ppo", PPOConfig(**small, name="ppo", sft_run="sft", reward_run="rm", max_steps=3,
                                          batch_size=4, mini_batch_size=2, response_length=8, max_length=128))
    assert jobs.wait("ppo", 300) == "finished", folder.status().get("error")
    log = folder.log.read_text()
    assert "SFT adapter" in log and "Value model starts from the reward model" in log and "Reward model rm" in log
    metrics = folder.metrics()
    assert [m["step"] for m in metrics] == [1, 2, 3] and all(m["score"] == m["score"] for m in metrics)
    assert len(folder.samples()) == 3 * 4

    entry = next(e for e in list_models(settings) if e.label == "tiny-base + ppo")
    loaded = ModelCache(settings).get(entry.spec, LoadOptions(dtype="float32"))
    ids = loaded.tokenizer("Hello", return_tensors="pt").input_ids
    out = loaded.model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id)
    assert out.shape[1] > ids.shape[1]
