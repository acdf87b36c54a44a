"""PPO through the app's API (gradio_client), as the Train and Runs tabs drive it: a reward run, then a PPO run from
the form that maximises it; the Runs tab draws PPO's charts and shows the answers of each step; the adapter joins
Compare; bad PPO settings are refused next to their field before anything is queued."""

from __future__ import annotations

import json

import pytest

from playground.core.settings import Settings
from playground.models.catalog import list_models
from playground.runs.run_folder import RunFolder
from tests.app_server import serve
from tests.test_reward_api import form, plotted, wait_finished
from tests.test_reward_dpo import toy_pairs

pytestmark = pytest.mark.slow  # real training processes

SMALL = dict(lora_r=8, lora_alpha=16, gradient_accumulation=1, save_steps=2, eval_fraction=0.0)


@pytest.fixture(scope="module")
def app(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ppo-api")
    data = folder / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(24)))
    settings = Settings(data_dir=folder / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    with serve(settings) as client:
        client.predict(*form("reward", name="rm", base_model=str(tiny_base), datasets=[str(data)], max_steps=2,
                             batch_size=4, **SMALL), api_name="/train_reward_start")
        wait_finished(RunFolder(settings.runs_dir / "rm"))
        yield client, settings, tiny_base


def test_a_ppo_run_from_the_form_shows_charts_and_answers_and_joins_compare(app):
    client, settings, base = app
    message = client.predict(*form("ppo", name="ppo-ui", base_model=str(base), reward_run="rm", max_steps=3,
                                   batch_size=4, mini_batch_size=2, response_length=8, max_length=128,
                                   samples_per_step=2, **SMALL), api_name="/train_ppo_start")[0]
    assert "ppo-ui" in message
    folder = RunFolder(settings.runs_dir / "ppo-ui")
    wait_finished(folder)
    details = client.predict("ppo-ui", "", api_name="/run_details")
    progress, command = details[0], details[-1]
    assert "finished" in progress and "python -m playground.train ppo" in command
    assert {"score", "score_low", "score_high", "reward", "kl", "entropy", "response_length", "policy_loss",
            "value_loss", "clipfrac", "approx_kl", "time_generate", "time_score", "time_optimize"} \
        <= plotted(details[2:-2])

    steps, table = client.predict("ppo-ui", "latest", api_name="/run_samples")
    assert steps["value"] == "latest" and [c[0] if isinstance(c, list) else c for c in steps["choices"]][:2] \
        == ["latest", "3"]
    assert table["headers"][:3] == ["step", "prompt", "answer"]
    assert [row[0] for row in table["data"]] == [3, 3] and all(row[1] for row in table["data"])
    first = client.predict("ppo-ui", "1", api_name="/run_samples")[1]
    assert [row[0] for row in first["data"]] == [1, 1]
    assert "tiny-base + ppo-ui" in [e.label for e in list_models(settings)]


def test_the_sample_viewer_refuses_what_it_cannot_show(app):
    client, *_ = app
    with pytest.raises(Exception, match="no run named 'nope'"):
        client.predict("nope", "latest", api_name="/run_samples")
    steps, table = client.predict("rm", "latest", api_name="/run_samples")  # a reward run has no answers
    assert table["data"] in ([], [[None] * len(table["headers"])]) or not any(table["data"][0])


def test_bad_ppo_settings_name_their_field(app):
    client, _, base = app
    with pytest.raises(Exception, match="(?i)reward run.*choose a reward model"):
        client.predict(*form("ppo", name="bad", base_model=str(base), reward_run=""), api_name="/train_ppo_start")
    with pytest.raises(Exception, match="(?i)reward run.*No reward model 'nope'"):
        client.predict(*form("ppo", name="bad", base_model=str(base), reward_run="nope"),
                       api_name="/train_ppo_start")
    with pytest.raises(Exception, match="(?i)mini batch size.*must divide batch_size"):
        client.predict(*form("ppo", name="bad", base_model=str(base), reward_run="rm", mini_batch_size=3),
                       api_name="/train_ppo_start")
    with pytest.raises(Exception, match="(?i)datasets"):
        client.predict(*form("ppo", name="bad", base_model=str(base), reward_run="rm", datasets=["missing"]),
                       api_name="/train_ppo_start")
    assert not (RunFolder(app[1].runs_dir / "bad").path.exists())
