"""bench/lecture.py: the whole lecture (SFT → reward → PPO → DPO) as real runs on a tiny model, and its section."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from bench import lecture


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.slow
def test_the_lecture_trains_every_stage_and_writes_every_figure(tiny_base, tmp_path, monkeypatch, capsys):
    shipped = lecture.recipe

    def short_answers(stage, *args, **fields):  # a random tiny model never stops: 8 tokens, not the recipe's 48
        cfg = shipped(stage, *args, **fields)
        return dataclasses.replace(cfg, response_length=8) if stage == "ppo" else cfg

    monkeypatch.setattr(lecture, "recipe", short_answers)
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkept as it is\n")
    lecture.main(["--model", str(tiny_base), "--data-dir", str(tmp_path / "data"), "--sft-steps", "2",
                  "--reward-steps", "2", "--ppo-steps", "2", "--dpo-steps", "2", "--heldout", "2", "--samples", "1",
                  "--doc", str(doc)])
    text = doc.read_text()
    assert "kept as it is" in text
    section = text.split(f"## {lecture.TITLE}", 1)[1]
    runs = sorted(p.name for p in (tmp_path / "data" / "runs").iterdir() if p.is_dir())
    assert [r.rsplit("-", 1)[1] for r in runs] == ["dpo", "ppo", "reward", "sft"]
    for stage in ("SFT", "reward", "PPO", "DPO"):  # every stage's row: its run and its wall time
        assert re.search(rf"^\| {stage} \| `lecture-[\d-]+-{stage.lower()}` \| \d+ s \|", section, re.M), stage
    number = r"[+-]?\d+\.\d+"
    assert re.search(rf"held-out accuracy {number} % → {number} % \({number} points( \[{number}, {number}\])?, "
                     rf"2 examples\)", section)
    assert re.search(rf"held-out pair accuracy {number} before training → \*\*{number}\*\* \(\d+ pairs\); reward vs "
                     rf"length r = {number}", section)  # its untrained score head's accuracy at step 0, then the trained
    assert re.search(rf"the run logged {number} at step 0 \(the table's before\) and {number} at its last "
                     rf"evaluation", section)
    assert re.search(rf"held-out score {number} → {number}: {number} \[95 % CI {number}, {number}\] = \*\*{number} SD"
                     rf"\*\*; KL {number} nats/answer", section)
    assert re.search(rf"implicit-reward held-out accuracy \*\*{number}\*\*; held-out score {number} → {number}",
                     section)
    assert section.count("| all tasks |") == 1
    assert len(re.findall(r"^\| .* \(([+-]\d+\.\d+)\) \| .* \(([+-]\d+\.\d+)\) \|$", section, re.M)) == 3
    assert "nan" not in section and "n/a" not in section

    # bench.ppo_effect on that PPO run: its checkpoint and its final adapter, on the prompts it trained on
    from bench import ppo_effect
    from playground.core.settings import Settings
    from playground.train import ppo as ppo_stage
    from playground.train.config import load

    ppo_run = tmp_path / "data" / "runs" / runs[1]
    capsys.readouterr()
    ppo_effect.main([runs[1], str(ppo_run / "checkpoints" / "checkpoint-2"), str(ppo_run / "adapter"),
                     "--prompts", "train", "--samples", "2", "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    cfg = load("ppo", ppo_run / "config.yaml")
    trained, held_out = ppo_stage.split_prompts(ppo_stage.check_prompts(cfg, Settings(data_dir=tmp_path / "data")),
                                                cfg.eval_fraction, cfg.seed)
    assert len(trained) != len(held_out)  # so the count says which split was answered
    assert re.search(rf"^{len(trained)} train prompts of `{runs[1]}` × 2 sampled answers", out, re.M)
    assert re.search(rf"SFT policy: mean {number}, SD {number} — among one prompt's answers {number}, between the "
                     rf"prompts' means {number}\. Best of its 2 answers to each prompt, picked by the reward model: "
                     rf"{number} = \*\*{number} SD\*\* \(KL ≤ 0\.19 nats\)", out)
    rows = re.findall(rf"^\| `(checkpoint-2|adapter)` \| {number} \| {number} \[{number}, {number}\] \| "
                      rf"\*\*{number}\*\* \| {number} \|$", out, re.M)
    assert rows == ["checkpoint-2", "adapter"]
    with pytest.raises(SystemExit):  # a folder without a policy is refused before any model loads
        ppo_effect.main([runs[1], str(tmp_path), "--data-dir", str(tmp_path / "data")])


def test_the_section_replaces_its_block_and_leaves_the_rest(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    lecture.write_section(doc, "first figures")
    lecture.write_section(doc, "second figures")
    text = doc.read_text()
    assert text.count(f"## {lecture.TITLE}") == 1 and "second figures" in text and "first figures" not in text
    assert text.startswith("# Benchmarks\n\nintro\n")


def test_the_spread_within_and_between_prompts_and_the_best_of_k_yardstick():
    before = lecture.Answers(np.array([[0.0, 2.0], [10.0, 12.0]]), np.zeros((2, 2)), [["a", "b"], ["c", "d"]])
    effect = lecture.policy_effect(before, before)
    # within each prompt: variance of (0, 2) = 2 → SD √2; prompts' means 1 and 11 → SD √50; best of two: 1 above
    assert effect["sd_within"] == pytest.approx(2 ** 0.5) and effect["sd_between"] == pytest.approx(50 ** 0.5)
    assert effect["best_of"] == pytest.approx(1.0) and effect["best_of_sd"] == pytest.approx(1 / effect["sd"])
    assert effect["diff"] == 0 and effect["rise_sd"] == 0


def test_the_paired_bootstrap_brackets_the_mean_difference_and_is_seeded():
    rng = np.random.default_rng(1)
    before = rng.normal(0, 1, (20, 4))
    after = before + 0.5 + rng.normal(0, 0.1, (20, 4))
    diff, low, high = lecture.paired_bootstrap(before, after)
    assert diff == pytest.approx(0.5, abs=0.05) and low < diff < high and high - low < 0.2
    assert lecture.paired_bootstrap(before, after) == (diff, low, high)
    # paired: a shift shared by both sides of a prompt cancels, so prompt-to-prompt spread doesn't widen it
    shift = rng.normal(0, 10, (20, 1))
    assert lecture.paired_bootstrap(before + shift, after + shift)[2] - low == pytest.approx(high - low, abs=0.05)


def test_a_resumed_bench_reuses_finished_runs_of_the_same_config_only(tmp_path):
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs
    from playground.runs.run_folder import RunFolder

    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    cfg = lecture.recipe("reward", "lecture-x-reward", "gemma-3-270m", settings.data_dir, 3)
    assert lecture.finished_run(jobs, "reward", cfg) is None  # nothing yet: the bench trains it

    folder = RunFolder(settings.runs_dir / cfg.name)
    folder.path.mkdir(parents=True)
    folder.config.write_text(cfg.to_yaml())
    folder.update_status(state="running", stage="reward", created=100.0)
    with pytest.raises(RuntimeError, match="is running"):
        lecture.finished_run(jobs, "reward", cfg)
    folder.update_status(state="finished", finished=142.5)
    assert lecture.finished_run(jobs, "reward", cfg) == (folder.path, 42.5)
    other = lecture.recipe("reward", "lecture-x-reward", "gemma-3-270m", settings.data_dir, 4)
    with pytest.raises(RuntimeError, match="another config"):
        lecture.finished_run(jobs, "reward", other)
