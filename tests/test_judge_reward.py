"""GRPO and RLOO rewarded by an AI judge (RL from AI feedback): each answer's reward is the share of its group it
beats, both orders asked, on the tiny word-map judge whose verdicts we choose (tests/tiny_judge.py)."""

from __future__ import annotations

import pytest

from playground.runs.jobs import Jobs
from playground.train import group_rl
from playground.train.checks import check_inputs
from playground.train.config import ConfigError, GRPOConfig, RLOOConfig
from tests.test_group_rl import PROMPTS, by_step, small
from tests.test_judge import BAD, GOOD, MEH, RUBRIC, judge_model  # noqa: F401 - judge_model is a fixture

ROWS = [{"messages": [{"role": "user", "content": "Name a colour."}], "system": ""}] * 3 + \
    [{"messages": [{"role": "user", "content": "Say hi."}], "system": ""}] * 2


def test_a_groups_round_robin_wins_by_hand():
    # 0 beats 1, 0 and 2 tie, 1 and 2 tie: 0 → (1 + .5) / 2, 1 → (0 + .5) / 2, 2 → (.5 + .5) / 2
    assert group_rl.group_wins({(0, 1): "a", (0, 2): "tie", (1, 2): "tie"}, [0, 1, 2]) == \
        {0: 0.75, 1: 0.25, 2: 0.5}
    assert group_rl.group_wins({(3, 4): "b"}, [3, 4]) == {3: 0.0, 4: 1.0}
    assert group_rl.group_wins({}, [7]) == {7: 0.5}


def test_the_judge_scores_each_answer_against_its_group_in_both_orders(judge_model, tmp_path):  # noqa: F811
    cfg = RLOOConfig(reward_source="judge", judge_model=str(judge_model), judge_rubric=RUBRIC,
                     data_dir=str(tmp_path))
    scorer = group_rl.scorer_for(cfg, group_rl.settings_for(cfg))
    # "Name a colour.": GOOD beats BAD in both orders; GOOD vs MEH and BAD vs MEH disagree by order → ties.
    # "Say hi.": GOOD beats BAD again, the other way round on the screen.
    assert scorer(ROWS, [GOOD, BAD, MEH, BAD, GOOD]) == [0.75, 0.25, 0.5, 0.0, 1.0]


def test_a_judge_reward_needs_a_judge_that_loads_and_a_rubric_with_its_places(tiny_base, judge_model,  # noqa: F811
                                                                              settings, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    base = small(tiny_base, settings.data_dir, reward_source="judge", datasets=[str(prompts)])
    with pytest.raises(ConfigError, match="pick the model that judges") as caught:
        GRPOConfig(**base)
    assert caught.value.field == "judge_model"
    for field, changes, message in [
        ("judge_model", {"judge_model": str(tmp_path / "no-such-judge")}, "no-such-judge"),
        ("judge_rubric", {"judge_model": str(judge_model), "judge_rubric": "Which is better?"}, "missing: {question}"),
    ]:
        with pytest.raises(ConfigError, match=message) as caught:
            check_inputs(GRPOConfig(**base | changes), settings)
        assert caught.value.field == field
    check_inputs(GRPOConfig(**base | {"judge_model": str(judge_model)}), settings)  # a judge that loads: fine


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_grpo_run_is_rewarded_by_the_judge(tiny_base, judge_model, settings, tmp_path):  # noqa: F811
    jobs = Jobs(settings, poll=False)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    cfg = GRPOConfig(**small(tiny_base, settings.data_dir, name="grpo-judge", reward_source="judge",
                             judge_model=str(judge_model), judge_rubric=RUBRIC, datasets=[str(prompts)],
                             max_steps=1))
    folder = jobs.create("grpo", cfg)
    assert jobs.wait("grpo-judge", 500) == "finished", folder.status().get("error")
    assert "AI judge" in folder.log.read_text()
    samples = by_step(folder.samples())[1]
    assert len(samples) == 8
    # each logged reward is the judge's round-robin share, recomputed here from the same answers
    scorer = group_rl.scorer_for(cfg, settings)
    rows = [{"messages": [{"role": "user", "content": s["prompt"]}], "system": ""} for s in samples]
    assert [s["score"] for s in samples] == scorer(rows, [s["answer"] for s in samples])
    for start in (0, 4):  # in each group of four the shares sum to 2: every comparison hands out one point
        assert sum(s["score"] for s in samples[start:start + 4]) == pytest.approx(2.0)
    logged = next(m for m in folder.metrics() if "rewards/score/mean" in m)["rewards/score/mean"]
    assert logged == pytest.approx(0.5)
