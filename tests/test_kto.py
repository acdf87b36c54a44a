"""KTO end to end on a tiny model through the run system: each preference pair becomes a thumbs-up and a
thumbs-down rating, the run learns the toy preference (held-out chosen answers gain on rejected ones), Stop + Resume
continue the step count, bad settings are refused by field, and the adapter lands in Compare."""

from __future__ import annotations

import json

import pytest

from playground.core.settings import Settings
from playground.data.preference_pairs import Pair, read_pairs
from playground.models.catalog import ModelSpec, list_models
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import render
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder
from playground.train import kto
from playground.train.config import ConfigError, KTOConfig
from playground.ui.runs_tab import CHARTS
from tests.app_process import kill_live_runs
from tests.test_reward_dpo import sequence_logp, toy_pairs
from tests.tiny_models import build_tokenizer


def test_each_pair_gives_a_thumbs_up_and_a_thumbs_down_shuffled_apart():
    tokenizer = build_tokenizer()
    pairs = [Pair(id=f"p{i}", messages=[{"role": "user", "content": f"Question {i}?"}], system="",
                  chosen=f" good {i} ", rejected=f"bad {i}") for i in range(6)]
    rows = kto.unpaired_rows(pairs, tokenizer, KTOConfig(seed=3))
    assert len(rows) == 12 and sum(r["label"] for r in rows) == 6
    frame = render(pairs[0].messages, "instruction", "base", tokenizer).text
    assert {(r["prompt"], r["completion"], r["label"]) for r in rows if r["prompt"] == frame} == {
        (frame, "good 0", True), (frame, "bad 0", False)}  # as kto_rows labels a vote: winner up, loser down
    assert any(rows[i]["prompt"] != rows[i + 1]["prompt"] for i in range(0, 12, 2))  # a pair's rows part
    assert rows == kto.unpaired_rows(pairs, tokenizer, KTOConfig(seed=3))  # seeded
    chat = kto.unpaired_rows(pairs[:1], tokenizer, KTOConfig(prompt_format="chat"))
    assert {json.dumps(r["completion"]) for r in chat} == {json.dumps([{"role": "assistant", "content": "good 0"}]),
                                                          json.dumps([{"role": "assistant", "content": "bad 0"}])}


def test_bad_settings_are_refused_by_field():
    for field, value, message in [("batch_size", 1, "at least 2"), ("beta", 0.0, r"\(0, 10\]"),
                                  ("desirable_weight", 0.0, r"\(0, 10\]"), ("undesirable_weight", 11.0, r"\(0, 10\]")]:
        with pytest.raises(ConfigError, match=message) as caught:
            KTOConfig(**{field: value})
        assert caught.value.field == field


@pytest.fixture
def setup(tmp_path, tiny_base):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(40)))
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs, settings, data, tiny_base
    kill_live_runs(jobs)  # never leave a run process behind


def common(settings, data, base, **overrides) -> dict:
    values = dict(base_model=str(base), datasets=[str(data)], batch_size=8, gradient_accumulation=1,
                  data_dir=str(settings.data_dir), lora_r=8, lora_alpha=16, eval_fraction=0.25, save_steps=10)
    return values | overrides


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kto_learns_the_toy_preference_from_single_ratings_and_joins_compare(setup):
    jobs, settings, data, base = setup
    folder = jobs.create("kto", KTOConfig(**common(settings, data, base, name="kto", max_steps=20,
                                                   learning_rate=1e-3)))
    assert jobs.wait("kto", 500) == "finished", folder.status().get("error")
    metrics = folder.metrics()
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 21))
    assert {"rewards/chosen", "rewards/rejected", "kl"} <= {k for m in metrics for k in m}
    assert any("eval_rewards/chosen" in m for m in metrics)
    logged = {key for m in metrics for key in m}
    for title, _, keys in CHARTS["kto"]:  # every chart the Runs tab draws has its numbers
        assert set(keys) <= logged, (title, set(keys) - logged)
    assert "60 training ratings (30 thumbs-up) from 30 pairs, 20 held out" in folder.log.read_text()
    entry = next(e for e in list_models(settings) if e.note == "trained here")
    assert entry.label == "tiny-base + kto" and entry.spec.trained_format == "instruction"

    cache = ModelCache(settings)
    policy = cache.get(entry.spec, LoadOptions(dtype="float32"))
    reference = cache.get(ModelSpec(str(base)), LoadOptions(dtype="float32"))
    held = read_pairs(folder.path / "data" / "eval.jsonl")

    def margin(loaded) -> float:
        return sum(sequence_logp(loaded.model, loaded.tokenizer, p.messages, p.chosen)
                   - sequence_logp(loaded.model, loaded.tokenizer, p.messages, p.rejected) for p in held) / len(held)
    before, after = margin(reference), margin(policy)
    assert after > before + 1.0, (before, after)  # held-out pairs never trained on: the thumbs-up answers gained


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_kto_run_stops_and_resumes_its_step_count(setup, tmp_path):
    _, settings, data, base = setup
    run = RunFolder(settings.runs_dir / "kto-stop")
    run.path.mkdir(parents=True)
    cfg = KTOConfig(**common(settings, data, base, name="kto-stop", max_steps=4, eval_fraction=0.0))
    run.stop_file.write_text("")
    assert kto.main(cfg, run) == "stopped"
    assert run.last_checkpoint().name == "checkpoint-1" and (run.adapter / "adapter_config.json").is_file()
    run.stop_file.unlink()
    assert kto.main(cfg, run, resume=True) == "finished"
    assert [m["step"] for m in run.metrics() if "loss" in m] == [1, 2, 3, 4]
