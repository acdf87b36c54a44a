"""PPO is right in every configuration the project ships, checked on tiny local models:

- gradient checkpointing gives the gradients of plain backprop for every trainable parameter (policy LoRA, value
  LoRA, value head), in full precision and 4-bit;
- no dropout anywhere: a policy started from an SFT adapter trained with dropout (on a base with attention dropout)
  has ratio 1 and approx-KL 0 in its first epoch;
- the sampler samples what PPO scores: the log-prob recomputed for each sampled token equals the sampler's, even when
  the model's own generation_config sets a repetition penalty and min_p;
- the optimizer takes the adapters by their LoRA names, with the config's weight decay (0 by default);
- the reward PPO maximises is the Reward tab's (`RewardModel.score`), full precision and 4-bit; the value model
  starts from the reward model or fresh as asked;
- the paths no other test runs: the missing-EOS penalty through a rollout, held-out prompts, whitened rewards.
"""

from __future__ import annotations

import json

import pytest
import torch

from playground.core.settings import Settings
from playground.data.prompt_sets import Prompt
from playground.runs.reward_model import RewardModel, find_run
from playground.runs.run_folder import RunFolder
from playground.train import ppo, ppo_roles, reward, sft
from playground.train.common import settings_for
from playground.train.config import ConfigError, PPOConfig, RewardConfig, SFTConfig, from_dict
from tests.test_ppo import merge_share, ppo_config
from tests.test_reward_dpo import toy_pairs
from tests.tiny_models import NF4_WIDTH, build_model

pytestmark = pytest.mark.slow  # real PPO steps and short training runs: seconds each


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    """Tiny peaked models: full width, and wide enough for 4-bit NF4."""
    root = tmp_path_factory.mktemp("models")
    return {"none": build_model(root / "peaked", chat=False, initializer_range=0.3),
            "4bit": build_model(root / "peaked-wide", chat=False, initializer_range=0.3, width=NF4_WIDTH)}


def randomize(roles: ppo_roles.SharedBase, seed: int = 0) -> None:
    """Non-zero weights in every trainable parameter (a fresh LoRA B and value head are zero: no gradient reaches
    the other half), the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in roles.trainable:
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)


def sampled_batch(roles: ppo_roles.SharedBase, cfg: PPOConfig) -> ppo.Rollout:
    prompts = ppo.check_prompts(cfg, settings_for(cfg))[:cfg.batch_size]
    torch.manual_seed(0)
    batch = ppo.rollout(roles, prompts, cfg, ppo.generation_config(cfg, roles.tokenizer))
    return ppo.evaluate_rollout(roles, batch, merge_share, cfg)


# ---------------------------------------------------------------------------------------------- checkpointing


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_gradient_checkpointing_gives_the_same_gradient_to_every_trainable_parameter(peaked, tmp_path, quantization):
    grads = {}
    batch = adv = returns = None
    for checkpointing in (False, True):
        cfg = ppo_config(peaked[quantization], tmp_path / "data", quantization=quantization, batch_size=4,
                         mini_batch_size=4, response_length=8, gradient_checkpointing=checkpointing)
        roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
        randomize(roles)
        if batch is None:  # one batch for both: the same sequences, old log-probs, values and advantages
            batch = sampled_batch(roles, cfg)
            adv, returns, _, _ = ppo.advantages(batch, cfg, cfg.kl_coef)
        roles.model.train()
        ppo.backward_minibatch(roles, batch, adv, returns, cfg, 1.0, ppo.make_scaler(roles))
        named = {id(p): n for n, p in roles.model.named_parameters()}
        grads[checkpointing] = {named.get(id(p), "value_head"): p.grad.detach().clone() for p in roles.trainable}
    plain, checkpointed = grads[False], grads[True]
    assert plain.keys() == checkpointed.keys()
    assert any(".value." in n for n in plain) and any(".default." in n for n in plain)
    for name, grad in plain.items():
        other = checkpointed[name]
        assert grad.norm() > 0, name
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), other.flatten(), dim=0)
        assert cosine > 0.999, (name, float(cosine))
        assert abs(other.norm() / grad.norm() - 1) < 0.01, (name, float(grad.norm()), float(other.norm()))


# ---------------------------------------------------------------------------------------------- dropout


def test_first_epoch_ratio_is_one_from_an_sft_adapter_trained_with_dropout(tmp_path):
    base = build_model(tmp_path / "models" / "dropout-base", chat=False, initializer_range=0.3)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps(config | {"attention_dropout": 0.3}))  # base dropout too
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    settings.ensure_dirs()
    sft_cfg = SFTConfig(name="sft", base_model=str(base), data_dir=str(data), max_steps=2, batch_size=4,
                        gradient_accumulation=1, lora_r=8, lora_alpha=16, eval_fraction=0.0, learning_rate=5e-3)
    assert sft_cfg.lora_dropout == 0.05  # the SFT default, which the adapter keeps in its config
    folder = RunFolder(settings.runs_dir / "sft")
    folder.path.mkdir(parents=True)
    assert sft.main(sft_cfg, folder) == "finished"
    assert json.loads((folder.adapter / "adapter_config.json").read_text())["lora_dropout"] == 0.05

    run = RunFolder(tmp_path / "ppo")
    run.path.mkdir()
    cfg = ppo_config(base, data, sft_run="sft", max_steps=1, batch_size=8, mini_batch_size=8, ppo_epochs=1)
    assert ppo.train(cfg, run, scorer=merge_share) == "finished"
    first = run.metrics()[0]
    assert first["ratio_max_dev"] < 1e-4, first["ratio_max_dev"]  # one minibatch: the policy that sampled
    assert abs(first["approx_kl"]) < 1e-8 and first["clipfrac"] == 0.0, first


# ---------------------------------------------------------------------------------------------- sampling


def test_each_sampled_token_has_the_log_prob_the_update_recomputes(tmp_path):
    base = build_model(tmp_path / "models" / "penalised", chat=False, initializer_range=0.3)
    generation = json.loads((base / "generation_config.json").read_text())
    (base / "generation_config.json").write_text(json.dumps(generation | {"repetition_penalty": 1.3, "min_p": 0.1,
                                                                          "top_k": 5, "do_sample": False}))
    cfg = ppo_config(base, tmp_path / "data", batch_size=8, mini_batch_size=8, response_length=12, temperature=0.9)
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    sampler_scores = []
    generate = roles.model.generate

    def generate_keeping_scores(**kwargs):  # the real call, plus the scores the sampler drew each token from
        out = generate(**kwargs, output_scores=True, return_dict_in_generate=True)
        sampler_scores.append(torch.stack(out.scores, 1))  # (B, T, V), after every logits processor
        return out.sequences

    roles.model.generate = generate_keeping_scores
    batch = sampled_batch(roles, cfg)
    (scores,) = sampler_scores
    sampled = torch.log_softmax(scores.float(), -1).gather(-1, batch.answer[:, :scores.shape[1]].unsqueeze(-1))
    mask = batch.mask[:, :scores.shape[1]].bool()
    assert mask.sum() > 20  # enough sampled tokens to compare
    difference = (sampled.squeeze(-1) - batch.logprobs[:, :scores.shape[1]]).abs()[mask]
    assert difference.max() < 1e-5, float(difference.max())


def test_top_k_and_top_p_are_retired_settings():
    config = from_dict("ppo", {"top_k": 0, "top_p": 1.0})  # an older run's config.yaml still loads
    assert not hasattr(config, "top_k")
    for key, value in (("top_k", 50), ("top_p", 0.9)):
        with pytest.raises(ConfigError, match="no longer a setting") as caught:
            from_dict("ppo", {key: value})
        assert caught.value.field == key


# ---------------------------------------------------------------------------------------------- optimizer


def test_the_optimizer_takes_the_adapters_by_their_lora_names_without_weight_decay(peaked, tmp_path):
    cfg = ppo_config(peaked["none"], tmp_path / "data")
    assert cfg.weight_decay == 0.0
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    named = {id(p): n for n, p in roles.model.named_parameters()}
    picked = [named.get(id(p), "value_head") for p in roles.trainable]
    lora = [n for n in picked if n != "value_head"]
    assert len(picked) == len(lora) + 2  # value head weight and bias
    assert lora and all(".lora_A.default." in n or ".lora_B.default." in n or ".lora_A.value." in n
                        or ".lora_B.value." in n for n in lora)
    expected = [n for n in named.values() if any(f".lora_{m}.{a}." in n for m in "AB" for a in ("default", "value"))]
    assert sorted(lora) == sorted(expected)
    # A base module that happens to be called like a role is not an adapter.
    layer = roles.model.get_base_model().model.layers[0]
    layer.value = torch.nn.Linear(4, 4)
    assert all("layers.0.value." not in named_p for named_p in
               [n for n, p in roles.model.named_parameters() if any(p is q for q in roles._adapter_parameters("value"))])
    assert all(group["weight_decay"] == 0.0 for group in ppo.make_optimizer(roles, cfg).param_groups)
    decayed = ppo.make_optimizer(roles, ppo_config(peaked["none"], tmp_path / "data", weight_decay=0.01))
    assert [g["weight_decay"] for g in decayed.param_groups] == [0.01]


# ---------------------------------------------------------------------------------------------- reward and value


@pytest.fixture(scope="module")
def reward_runs(peaked, tmp_path_factory):
    """A short reward run on each peaked base (full precision and 4-bit), in one data dir per base."""
    runs = {}
    for quantization, base in peaked.items():
        root = tmp_path_factory.mktemp(f"reward-{quantization}")
        pairs = root / "pairs.jsonl"
        pairs.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(40)))
        settings = Settings(data_dir=root / "data")
        settings.ensure_dirs()
        cfg = RewardConfig(name="rm", base_model=str(base), datasets=[str(pairs)], data_dir=str(settings.data_dir),
                           quantization=quantization, max_steps=6, batch_size=8, gradient_accumulation=1, lora_r=8,
                           lora_alpha=16, eval_fraction=0.25, save_steps=3, learning_rate=2e-3)
        folder = RunFolder(settings.runs_dir / "rm")
        folder.path.mkdir(parents=True)
        folder.config.write_text(cfg.to_yaml())  # as the run system does
        assert reward.main(cfg, folder) == "finished"
        runs[quantization] = (settings, folder, base)
    return runs


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_ppo_maximises_the_reward_the_reward_tab_shows(reward_runs, quantization):
    settings, folder, base = reward_runs[quantization]
    run = find_run("rm", settings)
    assert run.quantized == (quantization == "4bit")
    prompts = [Prompt([{"role": "user", "content": f"Tell me about the {t}."}]) for t in ("sea", "moon", "fox")]
    answers = ["The sea is good. Good sea.", "The moon is bad!! Bad bad moon!!", ""]
    tab = RewardModel(run, settings).score([(p.messages, p.system, a) for p, a in zip(prompts, answers)])
    cfg = PPOConfig(name="ppo", base_model=str(base), reward_run="rm", data_dir=str(settings.data_dir),
                    quantization=quantization, lora_r=8, lora_alpha=16)
    roles = ppo_roles.SharedBase(cfg, settings, run)
    scored = ppo.reward_scorer(roles, run, micro=2)(prompts, answers, None, None)  # two batches, one padded
    assert scored.tolist() == pytest.approx(tab, abs=1e-4)
    assert abs(tab[0] - tab[1]) > 1e-3  # it tells the answers apart: equality is not of two constants


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_a_reloaded_reward_model_scores_the_held_out_pairs_as_the_trainer_did(reward_runs, quantization):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from playground.data.preference_pairs import read_pairs
    from playground.train.config import load

    settings, folder, _ = reward_runs[quantization]
    cfg = load("reward", folder.config)
    final = [m for m in folder.metrics() if "eval_accuracy" in m][-1]
    held = read_pairs(folder.path / "data" / "eval.jsonl")
    model = RewardModel(find_run("rm", settings), settings)
    chosen = model.score([(p.messages, p.system, p.chosen) for p in held])
    rejected = model.score([(p.messages, p.system, p.rejected) for p in held])
    # The trainer evaluates in length-grouped batches of 8 pairs (seeded) and logs the mean of the batch means.
    lengths = reward.tokenized(held, model.tokenizer, cfg)["length"]
    size = cfg.batch_size
    order = list(LengthGroupedSampler(size, lengths=lengths, generator=torch.Generator().manual_seed(cfg.seed)))
    batches = [order[i:i + size] for i in range(0, len(order), size)]

    def logged(values):
        return sum(sum(values[i] for i in b) / len(b) for b in batches) / len(batches)

    assert logged([float(c > r) for c, r in zip(chosen, rejected)]) == pytest.approx(final["eval_accuracy"])
    assert logged([c - r for c, r in zip(chosen, rejected)]) == pytest.approx(final["eval_margin"], rel=1e-3, abs=1e-4)


def test_the_one_loader_builds_every_path_alike_in_4bit(reward_runs):
    from playground.models.catalog import ModelSpec
    from playground.models.loading import LoadOptions, load
    from playground.train.common import load_base

    settings, _, base = reward_runs["4bit"]
    compare = load(ModelSpec(str(base)), settings, LoadOptions(quant="4bit")).model
    cfg = SFTConfig(base_model=str(base), data_dir=str(settings.data_dir), quantization="4bit")
    train = load_base(cfg, settings)[0]
    scoring = RewardModel(find_run("rm", settings), settings).model.get_base_model()

    def numerics(model):
        linear = model.model.layers[0].self_attn.q_proj
        linear = getattr(linear, "base_layer", linear)
        return (model.config.quantization_config.to_dict(), type(linear).__name__, linear.compute_dtype,
                linear.weight.quant_state.nested, model.model.embed_tokens.weight.dtype)

    assert numerics(compare) == numerics(train) == numerics(scoring)
    assert numerics(compare)[1] == "Linear4bit" and numerics(compare)[3]  # NF4 with double quantization


def test_the_value_model_starts_from_the_reward_model_or_fresh(reward_runs):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    settings, folder, base = reward_runs["none"]
    run = find_run("rm", settings)
    saved = load_file(str(folder.adapter / "adapter_model.safetensors"))
    head = next(v for k, v in saved.items() if k.endswith("score.weight"))
    for value_init in ("reward", "fresh"):
        cfg = PPOConfig(name="ppo", base_model=str(base), reward_run="rm", data_dir=str(settings.data_dir),
                        quantization="none", lora_r=4, lora_alpha=8, value_init=value_init)
        roles = ppo_roles.SharedBase(cfg, settings, run)
        value = get_peft_model_state_dict(roles.model, adapter_name="value")
        lora_b = [k for k in value if "lora_B" in k]
        if value_init == "reward":  # the reward run's LoRA (rank 8, not the config's 4) and head
            assert all(torch.equal(value[k], saved[k]) for k in value if k in saved) and lora_b
            assert all(value[k].shape[1] == 8 for k in lora_b)
            assert torch.equal(roles.value_head.weight.detach().cpu(), head.float())
        else:  # a fresh LoRA of the config's rank (B = 0) and a zero head
            assert all(value[k].shape[1] == 4 and not value[k].any() for k in lora_b)
            assert not roles.value_head.weight.any() and not roles.value_head.bias.any()


# ---------------------------------------------------------------------------------------------- other paths


def test_answers_cut_at_the_length_limit_lose_the_missing_eos_penalty(peaked, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked["none"], tmp_path / "data", max_steps=2, batch_size=8, mini_batch_size=8, ppo_epochs=1,
                     response_length=3, missing_eos_penalty=2.0, samples_per_step=8)

    def zero(prompts, texts, answer, mask):
        return torch.zeros(answer.shape[0])

    assert ppo.train(cfg, run, scorer=zero) == "finished"
    samples = run.samples()
    assert not all(s["eos"] for s in samples)  # three tokens: most answers are cut
    assert all(s["score"] == (0.0 if s["eos"] else -2.0) for s in samples), samples
    for m in run.metrics():
        assert m["score"] == pytest.approx(-2.0 * (1 - m["eos_share"]))


def test_held_out_prompts_are_answered_and_scored_but_never_trained_on(peaked, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked["none"], tmp_path / "data", max_steps=3, batch_size=8, mini_batch_size=8, ppo_epochs=1,
                     eval_fraction=0.25, save_steps=2, samples_per_step=8)
    assert ppo.train(cfg, run, scorer=merge_share) == "finished"
    metrics = run.metrics()
    prompts = ppo.check_prompts(cfg, settings_for(cfg))
    _, held = ppo.split_prompts(prompts, cfg.eval_fraction, cfg.seed)
    assert len(held) == len(prompts) // 4
    # before the first step (the starting policy: no KL from itself), then every save_steps steps and at the end
    assert [(m["step"], "eval_score" in m, "score" in m) for m in metrics] == [
        (0, True, False), (1, False, True), (2, True, True), (3, True, True)]
    assert metrics[0]["eval_kl"] == pytest.approx(0.0, abs=1e-4)
    assert all(0 <= m["eval_score"] <= 5 and m["eval_prompts"] == len(held) for m in metrics if "eval_score" in m)
    held_texts = {p.messages[-1]["content"][:300] for p in held}
    trained = {s["prompt"] for s in run.samples()}
    assert trained and not trained & held_texts


def test_held_out_checks_sample_from_one_seed_and_leave_the_training_alone(peaked, tmp_path):
    """The checks fork the random state: checking every step or every third gives the same training answers, and
    each check of the same policy the same score (common random numbers across checks)."""
    runs = {}
    for save_steps in (1, 3):
        run = RunFolder(tmp_path / f"every-{save_steps}")
        run.path.mkdir()
        cfg = ppo_config(peaked["none"], tmp_path / "data", max_steps=3, batch_size=8, mini_batch_size=8,
                         ppo_epochs=1, eval_fraction=0.25, save_steps=save_steps, samples_per_step=8)
        assert ppo.train(cfg, run, scorer=merge_share) == "finished"
        runs[save_steps] = run
    assert [s["answer"] for s in runs[1].samples()] == [s["answer"] for s in runs[3].samples()]
    checks = {n: {m["step"]: m["eval_score"] for m in run.metrics() if "eval_score" in m} for n, run in runs.items()}
    assert sorted(checks[1]) == [0, 1, 2, 3] and sorted(checks[3]) == [0, 3]
    assert checks[1][0] == checks[3][0] and checks[1][3] == pytest.approx(checks[3][3])
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    _, held = ppo.split_prompts(ppo.check_prompts(cfg, settings_for(cfg)), cfg.eval_fraction, cfg.seed)
    gen_config = ppo.generation_config(cfg, roles.tokenizer)
    first = ppo.evaluate_held_out(roles, held, merge_share, cfg, gen_config)
    torch.rand(1000)  # the training's sampling moves the random state on between two checks
    assert ppo.evaluate_held_out(roles, held, merge_share, cfg, gen_config) == first


@pytest.mark.parametrize("resume", [False, True])  # the app starts such a run over without --resume
def test_a_run_started_over_before_its_first_checkpoint_checks_the_starting_policy_once(resume, peaked, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = ppo_config(peaked["none"], tmp_path / "data", max_steps=1, batch_size=8, mini_batch_size=8, ppo_epochs=1,
                     eval_fraction=0.25, save_steps=5, samples_per_step=1)
    # killed before its first checkpoint, after logging its step-0 check and step 1
    run.append_metrics({"step": 0, "max_steps": 1, "eval_score": 1.0, "eval_kl": 0.0, "eval_prompts": 2})
    run.append_metrics({"step": 1, "max_steps": 1, "score": 99.0})
    assert ppo.train(cfg, run, resume=resume, scorer=merge_share) == "finished"
    assert [(m["step"], m.get("eval_score")) for m in run.metrics()][0] == (0, 1.0)  # kept, not checked again
    assert [m["step"] for m in run.metrics()] == [0, 1] and run.metrics()[1]["score"] != 99.0


def test_whitened_rewards_reach_gae_with_unit_variance(peaked, tmp_path, monkeypatch):
    from playground.train import ppo_math

    cfg = ppo_config(peaked["none"], tmp_path / "data", batch_size=4, mini_batch_size=4, response_length=8)
    roles = ppo_roles.SharedBase(cfg, settings_for(cfg), None)
    batch = sampled_batch(roles, cfg)
    batch.scores = torch.tensor([10.0, -20.0, 5.0, 30.0])  # far from unit variance
    seen = []
    gae = ppo_math.gae
    monkeypatch.setattr(ppo_math, "gae", lambda rewards, *rest: seen.append(rewards) or gae(rewards, *rest))
    mask = batch.mask.bool()
    for whiten in (False, True):
        ppo.advantages(batch, ppo_config(peaked["none"], tmp_path / "data", whiten_rewards=whiten), cfg.kl_coef)
    raw, whitened = (rewards[mask] for rewards in seen)
    assert raw.var() > 10  # the scores as they are
    assert whitened.var() == pytest.approx(1.0, abs=0.05)  # the per-token rewards whitened over the batch
    assert whitened.mean() == pytest.approx(raw.mean(), abs=1e-4)  # shift_mean=False: only the spread changes
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    whitened = ppo_config(peaked["none"], tmp_path / "data", max_steps=2, batch_size=8, mini_batch_size=8,
                          ppo_epochs=1, whiten_rewards=True)
    assert ppo.train(whitened, run, scorer=merge_share) == "finished"
    assert all(m["value_loss"] == m["value_loss"] and m["policy_loss"] == m["policy_loss"] for m in run.metrics())

