"""Reward model and DPO through the app's API (gradio_client): start runs from the Train form, watch their charts,
score two answers and the stored votes in the Reward tab, and refuse malformed preference uploads row by row."""

from __future__ import annotations

import json
import time

import pytest
from gradio_client import handle_file

from playground.core.settings import Settings
from playground.ratings.store import ComparisonRecord, Side, Store
from playground.runs import reward_model
from playground.runs.run_folder import RunFolder
from playground.train.config import CONFIGS
from playground.ui.train_tab import GROUPS
from tests.app_server import serve
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # real training processes


def form(stage: str, **values) -> list:
    """The stage's form values in the order the Train tab lays them out."""
    defaults = CONFIGS[stage]().to_dict()
    return [values.get(name, defaults[name]) for names in GROUPS[stage].values() for name in names]


def plotted(plots: list) -> set[str]:
    """The series names drawn in the Runs tab's chart slots (each an update: label, axis title, value)."""
    return {row[2] for plot in plots if plot and plot.get("visible", True) and plot.get("value")
            for row in plot["value"]["data"]}


def wait_finished(folder: RunFolder) -> None:
    deadline = time.monotonic() + 300
    while folder.status().get("state") not in ("finished", "failed", "stopped"):
        assert time.monotonic() < deadline, folder.status()
        time.sleep(0.3)
    assert folder.status()["state"] == "finished", folder.status().get("error")


@pytest.fixture(scope="module")
def app(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reward-api")
    data = folder / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(80)))
    settings = Settings(data_dir=folder / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    for i, row in enumerate(toy_pairs(6, seed=5)):  # human votes: ann agrees with the toy preference, bob doesn't
        store.save(ComparisonRecord(messages=[{"role": "user", "content": row["prompt"]}],
                                    a=Side(model="m1", response=row["chosen"]),
                                    b=Side(model="m2", adapter="runs/x/adapter", response=row["rejected"]),
                                    winner="a" if i < 4 else "b", rater="ann" if i < 4 else "bob"))
    with serve(settings) as client:
        yield client, settings, data, tiny_base


def test_a_reward_run_from_the_form_is_scored_in_the_reward_tab(app):
    client, settings, data, base = app
    message = client.predict(*form("reward", name="rm-ui", base_model=str(base), datasets=[str(data)], max_steps=30,
                                   batch_size=8, gradient_accumulation=1, learning_rate=2e-3, lora_r=8,
                                   lora_alpha=16, save_steps=10, eval_fraction=0.25),
                             api_name="/train_reward_start")[0]
    assert "rm-ui" in message
    folder = RunFolder(settings.runs_dir / "rm-ui")
    wait_finished(folder)
    details = client.predict("rm-ui", "", api_name="/run_details")
    progress, plots, command = details[0], details[2:-2], details[-1]
    assert "finished" in progress and "python -m playground.train reward" in command
    assert {"loss", "eval_loss", "accuracy", "eval_accuracy", "margin", "eval_margin"} <= plotted(plots)

    text, scores = client.predict("rm-ui", "Tell me about the moon, please.", "", "The moon is good. Good moon.",
                                  "The moon is bad!! Bad bad moon!!", api_name="/reward_score")
    assert scores["prefers"] == "a" and scores["margin"] > 0 and scores["p_a_better"] > 0.5
    assert scores["margin"] == pytest.approx(scores["reward_a"] - scores["reward_b"])
    assert "prefers **A**" in text
    swapped = client.predict("rm-ui", "Tell me about the moon, please.", "", "The moon is bad!! Bad bad moon!!",
                             "The moon is good. Good moon.", api_name="/reward_score")[1]
    assert swapped["reward_a"] == pytest.approx(scores["reward_b"], abs=1e-5)

    summary, raters, pairs, plot = client.predict("rm-ui", 0, api_name="/reward_agreement")
    assert "of 6 human votes" in summary and "Pearson r" in summary
    by_rater = {row[0]: row for row in raters["data"]}
    assert by_rater["ann"][3] == 1.0 and by_rater["bob"][3] == 0.0
    assert [row[0] for row in pairs["data"]] == ["m1 vs m2 + adapter"] and plot is not None
    saved = reward_model.load_check(folder.path)  # kept with the run, for the Lecture tab's step 4
    assert saved["votes"] == 6 and f"agrees with **{saved['agreement']:.0%}**" in summary
    assert f"Pearson r = {saved['length_r']:+.2f}" in summary


def test_scoring_refuses_what_it_cannot_score(app):
    client, *_ = app
    with pytest.raises(Exception, match="Pick a reward model"):
        client.predict("", "Hi", "", "a", "b", api_name="/reward_score")
    with pytest.raises(Exception, match="No reward model 'nope'"):
        client.predict("nope", "Hi", "", "a", "b", api_name="/reward_score")
    with pytest.raises(Exception, match="prompt is empty"):
        client.predict("nope", "  ", "", "a", "b", api_name="/reward_score")
    with pytest.raises(Exception, match="both answers"):
        client.predict("nope", "Hi", "", "a", "", api_name="/reward_score")


def test_a_dpo_run_from_the_form_draws_its_charts_and_joins_compare(app):
    client, settings, data, base = app
    client.predict(*form("dpo", name="dpo-ui", base_model=str(base), datasets=[str(data)], max_steps=4,
                         batch_size=8, gradient_accumulation=1, lora_r=4, lora_alpha=8, save_steps=2),
                   api_name="/train_dpo_start")
    folder = RunFolder(settings.runs_dir / "dpo-ui")
    wait_finished(folder)
    details = client.predict("dpo-ui", "", api_name="/run_details")
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= plotted(details[2:-2])
    from playground.models.catalog import list_models

    assert "tiny-base + dpo-ui" in [e.label for e in list_models(settings)]


def test_bad_training_values_name_their_field(app):
    client, _, data, base = app
    with pytest.raises(Exception, match="(?i)beta"):
        client.predict(*form("dpo", name="bad", base_model=str(base), datasets=[str(data)], beta=0.0),
                       api_name="/train_dpo_start")
    with pytest.raises(Exception, match="(?i)center rewards coefficient"):
        client.predict(*form("reward", name="bad", base_model=str(base), center_rewards_coefficient=-1.0),
                       api_name="/train_reward_start")
    # Caught before the run is queued, next to the field, rather than as a failed run minutes later:
    with pytest.raises(Exception, match="(?i)sft run.*no adapter for 'nope'"):
        client.predict(*form("reward", name="bad", base_model=str(base), datasets=[str(data)], sft_run="nope"),
                       api_name="/train_reward_start")
    with pytest.raises(Exception, match="(?i)datasets.*No preference data 'missing'"):
        client.predict(*form("dpo", name="bad", base_model=str(base), datasets=["missing"]),
                       api_name="/train_dpo_start")
    with pytest.raises(Exception, match="(?i)datasets.*held-out evaluation data"):
        client.predict(*form("sft", name="bad", base_model=str(base), datasets=["heldout"]),
                       api_name="/train_start")


def test_preference_uploads_are_checked_row_by_row(app, tmp_path):
    client, settings, *_ = app
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}\n'
                   '{"prompt": "Hi", "chosen": "Hello"}\n'
                   'not json\n')
    note = client.predict(handle_file(str(bad)), "", api_name="/preference_upload")[0]
    assert "Nothing was saved" in note and "line 2" in note and "rejected" in note and "line 3" in note
    assert not (settings.datasets_dir / "preferences").exists() or \
        not any((settings.datasets_dir / "preferences").iterdir())
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(5)))
    note = client.predict(handle_file(str(good)), "mine", api_name="/preference_upload")[0]
    assert "Saved **mine**: 5 pairs" in note
    summary, rows = client.predict("mine", api_name="/preference_preview")
    assert "5 pairs" in summary and len(rows["data"]) == 5
    note = client.predict(handle_file(str(good)), "again", api_name="/preference_upload")[0]
    assert note == "Nothing new was saved: all 5 pairs in good.jsonl are already in **mine**."
    assert not (settings.datasets_dir / "preferences" / "again.jsonl").exists()
