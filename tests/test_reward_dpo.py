"""Reward-model and DPO runs end to end on a tiny model through the run system: a separable toy preference is
learned, the score head is saved and reloads to the same scores, DPO widens the chosen-minus-rejected margin, both
can start from an SFT adapter, and each result lands where it belongs (Reward tab / Compare)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from playground.core.settings import Settings
from playground.data.preference_pairs import encode_answer, encode_prompt, read_pairs
from playground.models.catalog import ModelSpec, list_models
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings.store import ComparisonRecord, Side, Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModel, agreement, find_run, reward_runs
from playground.train.config import DPOConfig, RewardConfig
from tests.app_process import kill_live_runs
from tests.tiny_models import build_adapter

pytestmark = pytest.mark.slow  # real training processes: seconds each

TOPICS = ["sea", "robot", "fox", "moon", "story", "text", "dog", "time", "sun", "book"]


def toy_pairs(count: int, seed: int = 0) -> list[dict]:
    """A separable preference: the chosen answer is calm ("good"), the rejected one shouts ("bad!")."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        rows.append({"id": f"toy-{i}", "prompt": f"Tell me about the {topic}, please ({i}).",
                     "chosen": f"The {topic} is good. Good {topic}.",
                     "rejected": f"The {topic} is bad!! Bad bad {topic}!!"})
    return rows


@pytest.fixture
def setup(tmp_path, tiny_base):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(80)))
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs, settings, data, tiny_base
    kill_live_runs(jobs)  # never leave a run process behind


def common(settings, data, base, **overrides) -> dict:
    values = dict(base_model=str(base), datasets=[str(data)], batch_size=8, gradient_accumulation=1,
                  data_dir=str(settings.data_dir), lora_r=8, lora_alpha=16, eval_fraction=0.25, save_steps=10)
    return values | overrides


def test_a_reward_model_learns_a_separable_preference_and_reloads_to_the_same_scores(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("reward", RewardConfig(**common(settings, data, base, name="rm", max_steps=30,
                                                         learning_rate=2e-3)))
    assert jobs.wait("rm", 300) == "finished", folder.status().get("error")
    metrics = folder.metrics()
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 31))
    assert {"accuracy", "margin"} <= set(metrics[1])
    # the held-out pairs before the first step (the untrained head's accuracy), every save_steps and at the end
    assert [m["step"] for m in metrics if "eval_accuracy" in m] == [0, 10, 20, 30] and "loss" not in metrics[0]
    final = [m for m in metrics if "eval_accuracy" in m][-1]

    # Held-out pairs (never trained on), scored by a fresh load of the saved adapter + score head.
    run = find_run("rm", settings)
    assert [r.name for r in reward_runs(settings)] == ["rm"] and run.prompt_format == "instruction"
    held = read_pairs(folder.path / "data" / "eval.jsonl")
    assert len(held) == 20
    model = RewardModel(run, settings)
    chosen = model.score([(p.messages, p.system, p.chosen) for p in held])
    rejected = model.score([(p.messages, p.system, p.rejected) for p in held])
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(held)
    assert accuracy >= 0.9
    # The same numbers the trainer measured on the same pairs: the head was saved, and scoring encodes as training.
    assert accuracy == pytest.approx(final["eval_accuracy"])
    differences = [c - r for c, r in zip(chosen, rejected)]
    batches = [differences[i:i + 8] for i in range(0, len(differences), 8)]  # TRL logs the mean of batch means
    margin = sum(sum(b) / len(b) for b in batches) / len(batches)
    assert margin == pytest.approx(final["eval_margin"], rel=1e-3)  # float32, padded batches
    again = RewardModel(run, settings).score([(p.messages, p.system, p.chosen) for p in held], batch_size=3)
    assert again == pytest.approx(chosen, abs=1e-5)

    # The score head was trained (a fresh head would be random and differ from the saved one).
    from safetensors.torch import load_file

    saved = load_file(str(folder.adapter / "adapter_model.safetensors"))
    head = [k for k in saved if k.endswith("score.weight")]
    assert head and saved[head[0]].shape[0] == 1

    # A reward model scores, it doesn't answer: not in Compare's model list.
    assert not [e for e in list_models(settings) if e.note == "trained here"]

    # Agreement with (made-up) human votes, one of them against the reward model.
    def vote(answer_a, answer_b, winner, rater):
        return ComparisonRecord(messages=[{"role": "user", "content": "Tell me about the sea."}],
                                a=Side(model="m1", response=answer_a), b=Side(model="m2", response=answer_b),
                                winner=winner, rater=rater)
    records = [vote("The sea is good.", "The sea is bad!!", "a", "ann"),
               vote("Bad bad sea!!", "Good sea.", "b", "ann"),
               vote("The sea is good.", "The sea is bad!!", "b", "bob"),
               vote("Good.", "Bad!!", "tie", "bob")]
    checked = agreement(model, records)
    assert len(checked.rows) == 3 and checked.overall == pytest.approx(2 / 3)
    per_rater = checked.by("rater").set_index("rater")
    assert per_rater.loc["ann", "agreement"] == 1.0 and per_rater.loc["bob", "agreement"] == 0.0
    assert len(checked.lengths()) == 6


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
def test_a_reward_run_stops_and_resumes_its_step_count(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("reward", RewardConfig(**common(settings, data, base, name="rm-stop", max_steps=400,
                                                         save_steps=5, eval_fraction=0.0)))
    while folder.status().get("step", 0) < 3:
        jobs.pump()
        assert folder.status().get("state") in ("queued", "starting", "running"), folder.status()
    jobs.stop("rm-stop")
    assert jobs.wait("rm-stop", 120) == "stopped"
    stopped_at = folder.status()["step"]
    assert folder.last_checkpoint() is not None and (folder.adapter / "adapter_config.json").is_file()
    train_before = (folder.path / "data" / "train.jsonl").read_text()
    config = folder.config.read_text().replace("max_steps: 400", f"max_steps: {stopped_at + 4}")
    folder.config.write_text(config)
    jobs.resume("rm-stop")
    assert jobs.wait("rm-stop", 300) == "finished", folder.status().get("error")
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps[-1] == stopped_at + 4 and steps == sorted(steps)
    assert (folder.path / "data" / "train.jsonl").read_text() == train_before  # the same pairs after resume


def sequence_logp(model, tokenizer, prompt_messages, answer) -> float:
    """log π(answer | prompt) summed over the answer's tokens, prompted as the run trained (instruction frame)."""
    prompt = encode_prompt(tokenizer, prompt_messages, "", "instruction")
    answer_ids = encode_answer(tokenizer, answer)
    ids = torch.tensor([prompt + answer_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1]  # (answer tokens, vocab): predicts each answer token
    return float(torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(answer_ids)[:, None]).sum())


def test_dpo_widens_the_chosen_minus_rejected_margin_and_joins_compare(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("dpo", DPOConfig(**common(settings, data, base, name="dpo", max_steps=30,
                                                   learning_rate=1e-3)))
    assert jobs.wait("dpo", 300) == "finished", folder.status().get("error")
    metrics = folder.metrics()
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(metrics[1])
    # before the first step the policy is its reference (the bare base, a fresh LoRA adding zero): implicit rewards 0
    assert metrics[0]["step"] == 0 and metrics[0]["eval_rewards/margins"] == pytest.approx(0, abs=1e-6)
    entry = next(e for e in list_models(settings) if e.note == "trained here")
    assert entry.label == "tiny-base + dpo" and entry.spec.trained_format == "instruction"

    cache = ModelCache(settings)
    policy = cache.get(entry.spec, LoadOptions(dtype="float32"))
    reference = cache.get(ModelSpec(str(base)), LoadOptions(dtype="float32"))
    held = read_pairs(folder.path / "data" / "eval.jsonl")

    def margin(loaded) -> float:
        return sum(sequence_logp(loaded.model, loaded.tokenizer, p.messages, p.chosen)
                   - sequence_logp(loaded.model, loaded.tokenizer, p.messages, p.rejected) for p in held) / len(held)
    before, after = margin(reference), margin(policy)
    assert after > before + 1.0, (before, after)  # on held-out pairs: log π(chosen) − log π(rejected) grew


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
def test_reward_and_dpo_can_start_from_an_sft_adapter(setup, tmp_path):
    jobs, settings, data, base = setup
    sft = build_adapter(base, settings.runs_dir / "sft-start" / "adapter")
    (settings.runs_dir / "sft-start" / "config.yaml").write_text("name: sft-start\n")
    from safetensors.torch import load_file

    start = load_file(str(sft / "adapter_model.safetensors"))
    for stage, config_class in (("reward", RewardConfig), ("dpo", DPOConfig)):
        name = f"{stage}-on-sft"
        folder = jobs.create(stage, config_class(**common(settings, data, base, name=name, max_steps=2,
                                                          sft_run="sft-start", learning_rate=1e-4)))
        assert jobs.wait(name, 300) == "finished", folder.status().get("error")
        assert "start from the SFT adapter" in folder.log_tail(200) or "start from the SFT adapter" in \
            folder.log.read_text()
        trained = load_file(str(folder.adapter / "adapter_model.safetensors"))
        key = next(k for k in start if "lora_A" in k)
        # The LoRA weights began as the SFT run's (rank 4, random non-zero): two small steps later they are close.
        assert trained[key].shape == start[key].shape
        assert torch.allclose(trained[key], start[key], atol=0.05) and not torch.equal(trained[key], start[key])
        if stage == "dpo":  # the reference is the SFT model (far from the bare base: its LoRA is random, rank 4):
            # before the first step the policy is that model too, so every implicit reward β·log(π/π_ref) is 0
            before = next(m for m in folder.metrics() if m["step"] == 0)
            assert before["eval_rewards/chosen"] == pytest.approx(0, abs=1e-4)
            assert before["eval_rewards/rejected"] == pytest.approx(0, abs=1e-4)
    # A reward model trained on another base can't be the start; nor can a missing run.
    with pytest.raises(Exception, match="sft_run"):
        from playground.train.common import sft_adapter

        sft_adapter(RewardConfig(base_model="gemma-3-270m", sft_run="sft-start", data_dir=str(settings.data_dir)),
                    settings)
    with pytest.raises(Exception, match="no adapter"):
        sft_adapter(RewardConfig(base_model=str(base), sft_run="nope", data_dir=str(settings.data_dir)), settings)
    with pytest.raises(Exception, match="reward model"):
        sft_adapter(RewardConfig(base_model=str(base), sft_run="reward-on-sft", data_dir=str(settings.data_dir)),
                    settings)


def test_a_vote_only_store_trains_a_reward_model(setup):
    jobs, settings, data, base = setup
    store = Store(settings.ratings_db)
    store.insert_many([ComparisonRecord(messages=[{"role": "user", "content": row["prompt"]}],
                                        a=Side(model="x", response=row["chosen"]),
                                        b=Side(model="y", response=row["rejected"]), winner="a", rater="ann")
                       for row in toy_pairs(12)])
    folder = jobs.create("reward", RewardConfig(**common(settings, data, base, name="rm-votes", datasets=["votes"],
                                                         max_steps=2)))
    assert jobs.wait("rm-votes", 300) == "finished", folder.status().get("error")
    assert len(read_pairs(folder.path / "data" / "train.jsonl")) == 9  # 12 votes, a quarter held out
