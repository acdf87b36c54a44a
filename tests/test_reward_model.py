"""The reward model's bookkeeping without training one: which runs are reward models, agreement with the votes
(per rater, per model pair), the length-bias correlation and its chart."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from playground.runs.reward_model import (
    RewardModelError,
    agreement,
    find_run,
    length_correlation,
    length_plot,
    reward_runs,
)
from tests.preference_records import record


class LengthLover:
    """A stand-in reward model that scores an answer by its number of words (the failure the tab looks for)."""

    def score(self, items):
        return [float(len(answer.split())) for _, _, answer in items]


def fake_run(settings, name, task_type="SEQ_CLS", stage="reward"):
    adapter = settings.runs_dir / name / "adapter"
    adapter.mkdir(parents=True)
    (settings.runs_dir / name / "config.yaml").write_text(f"name: {name}\n")
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": task_type, "base_model_name_or_path": "b"}))
    (adapter / "playground.json").write_text(json.dumps({"run": name, "stage": stage, "base_model": "b",
                                                         "prompt_format": "chat", "max_length": 128}))


def test_only_reward_runs_are_listed(settings):
    fake_run(settings, "rm")
    fake_run(settings, "sft", task_type="CAUSAL_LM", stage="sft")
    (settings.runs_dir / "unfinished").mkdir()
    assert [r.name for r in reward_runs(settings)] == ["rm"]
    run = find_run("rm", settings)
    assert run.prompt_format == "chat" and run.max_length == 128 and run.base_model == "b"
    with pytest.raises(RewardModelError, match="No reward model 'sft'. Reward models: rm"):
        find_run("sft", settings)


def test_agreement_per_rater_and_pair_leaves_ties_out():
    records = [
        record("a", answer_a="a long and careful answer", answer_b="short", rater="ann"),  # longer won: agrees
        record("b", answer_a="a long rambling answer here", answer_b="brief", rater="ann"),  # shorter won: disagrees
        record("b", answer_a="no", answer_b="yes indeed it is", rater="bob", model_b="other"),
        record("tie", rater="bob"),
        record("both_bad", rater="bob"),
    ]
    checked = agreement(LengthLover(), records)
    assert len(checked.rows) == 3 and checked.overall == pytest.approx(2 / 3)
    raters = checked.by("rater").set_index("rater")
    assert raters.loc["ann", "votes"] == 2 and raters.loc["ann", "agreement"] == 0.5
    assert raters.loc["bob", "agreement"] == 1.0
    pairs = checked.by("pair").set_index("pair")
    assert set(pairs.index) == {"gemma vs smollm", "gemma vs other"}
    lengths = checked.lengths()
    assert len(lengths) == 6 and list(lengths["words"]) == list(lengths["reward"])  # a perfect length lover
    r, p = length_correlation(lengths)
    assert r == pytest.approx(1.0) and p < 0.01
    figure = length_plot(lengths, "rm")
    assert "Pearson r = 1.00" in figure.layout.title.text and len(figure.data) == 2


def test_no_votes_and_no_spread_are_not_errors():
    empty = agreement(LengthLover(), [record("tie")])
    assert math.isnan(empty.overall) and empty.by("rater").empty
    r, p = length_correlation(pd.DataFrame({"words": [3, 3, 3], "reward": [1.0, 2.0, 3.0]}))
    assert math.isnan(r) and math.isnan(p)
    assert "Pearson" not in length_plot(pd.DataFrame({"words": [1], "reward": [0.5]}), "rm").layout.title.text
