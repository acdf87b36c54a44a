"""GRPO and RLOO rewarded by an AI judge (RL from AI feedback): each answer is judged against the starting policy's
answer to its prompt, both orders asked, on the tiny word-map judge whose verdicts we choose (tests/tiny_judge.py)."""

from __future__ import annotations

import threading

import pytest

from playground.models.catalog import ModelSpec
from playground.models.generation import GenerationParams, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings.judge import Judge
from playground.runs.jobs import Jobs
from playground.train import group_rl
from playground.train.checks import check_inputs
from playground.train.config import ConfigError, GRPOConfig, RLOOConfig
from tests.test_group_rl import PROMPTS, by_step, small
from tests.test_judge import BAD, GOOD, MEH, RUBRIC, judge_model  # noqa: F401 - judge_model is a fixture

ROWS = [{"messages": [{"role": "user", "content": "Name a colour."}], "system": ""},
        {"messages": [{"role": "user", "content": "Say hi."}], "system": ""}]


def test_the_judge_scores_each_answer_against_the_starting_answer_in_both_orders(judge_model, settings):  # noqa: F811
    judge = Judge(ModelSpec(str(judge_model)), RUBRIC)
    starts = {"Name a colour.": BAD, "Say hi.": GOOD}
    asked = []

    def anchor(row):
        asked.append(row["messages"][-1]["content"])
        return starts[row["messages"][-1]["content"]]

    scorer = group_rl.judge_scorer(judge, ModelCache(settings), anchor)
    # Shown second, BAD makes the judge pick the first answer, GOOD the second, MEH a tie (tests/tiny_judge.py).
    # vs BAD: GOOD wins both orders → 1; BAD prefers whichever came first → the orders disagree → ½; MEH: one
    # order says tie → ½. vs GOOD: BAD loses both orders → 0; GOOD → ½ (position bias again).
    rows = [ROWS[0]] * 3 + [ROWS[1]] * 2
    assert scorer(rows, [GOOD, BAD, MEH, BAD, GOOD]) == [1.0, 0.5, 0.5, 0.0, 0.5]
    assert asked == ["Name a colour."] * 3 + ["Say hi."] * 2


def test_the_starting_answer_is_the_start_policys_greedy_answer_once_per_prompt(tiny_base, settings, tmp_path):
    cfg = RLOOConfig(**small(tiny_base, settings.data_dir, reward_source="judge", judge_model=str(tiny_base)))
    cache = ModelCache(settings)
    anchor = group_rl.start_answers(cfg, settings, cache)
    first = anchor(ROWS[0])
    *_, last = answer(cache, ModelSpec(str(tiny_base)), LoadOptions(backend="transformers"), ROWS[0]["messages"],
                      "instruction", "", GenerationParams(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=8,
                                                          repetition_penalty=1.0), threading.Event())
    assert first == last.text.strip() and anchor(ROWS[0]) == first  # Compare's greedy answer, kept


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
    # each logged reward is the judge's verdict against the starting policy's greedy answer, recomputed here
    scorer = group_rl.scorer_for(cfg, settings)
    rows = [{"messages": [{"role": "user", "content": s["prompt"]}], "system": ""} for s in samples]
    assert [s["score"] for s in samples] == scorer(rows, [s["answer"] for s in samples])
    assert {s["score"] for s in samples} <= {0.0, 0.5, 1.0}
    logged = next(m for m in folder.metrics() if "rewards/score/mean" in m)["rewards/score/mean"]
    assert logged == pytest.approx(sum(s["score"] for s in samples) / len(samples))
