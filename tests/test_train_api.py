"""Train and Runs tabs through gradio_client: start a run from the form, watch it, evaluate base vs tuned."""

from __future__ import annotations

import json
import time

import pytest

from playground.run_folder import RunFolder
from playground.settings import Settings
from playground.train.config import SFTConfig
from tests.app_server import serve

pytestmark = pytest.mark.slow  # a real training process and a held-out evaluation

FORM = [name for names in (
    ["name", "base_model", "datasets", "max_examples", "prompt_format"],
    ["lora_r", "lora_alpha", "lora_dropout", "target_modules", "quantization"],
    ["learning_rate", "epochs", "max_steps", "batch_size", "gradient_accumulation", "max_length", "warmup_ratio",
     "completion_only_loss", "gradient_checkpointing", "seed", "eval_fraction", "save_steps"]) for name in names]


@pytest.fixture(scope="module")
def app(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    data = folder / "mini.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Name a colour like {w}.", "input": "", "output": w}) + "\n"
                            for w in ["red", "blue", "green", "pink"] * 4))
    settings = Settings(data_dir=folder / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    with serve(settings) as client:
        yield client, settings, data, tiny_base


def form(**values):
    defaults = SFTConfig().to_dict()
    return [values.get(name, defaults[name]) for name in FORM]


def test_a_run_started_from_the_form_finishes_and_is_evaluated(app):
    client, settings, data, base = app
    message = client.predict(*form(name="from-ui", base_model=str(base), datasets=[str(data)], max_steps=3,
                                   batch_size=2, gradient_accumulation=1, save_steps=2, lora_r=4, lora_alpha=8),
                             api_name="/train_start")[0]
    assert "from-ui" in message and ("started" in message or "queued" in message)
    folder = RunFolder(settings.runs_dir / "from-ui")
    deadline = time.monotonic() + 300
    while folder.status().get("state") not in ("finished", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert folder.status()["state"] == "finished", folder.status().get("error")
    progress, speed, loss, rate, *unused, log, command = client.predict("from-ui", "", api_name="/run_details")
    assert "finished" in progress and "step 3 / 3" in progress and "tokens/s" in speed
    assert loss["label"] == "Loss (train and eval)" and rate["label"] == "Learning rate"
    assert [(row[0], row[2]) for row in loss["value"]["data"]] == [(1, "loss"), (2, "loss"), (3, "loss")]
    assert all(u["visible"] is False for u in unused)  # SFT draws two charts; the later stages use more
    assert "Run finished." in log and "python -m playground.train sft" in command
    table, chart = client.predict("from-ui", 1, api_name="/run_evaluate")
    rows = {row[0]: row for row in table["data"]}
    assert "all tasks" in rows and len(rows) >= 4  # one row per held-out family, plus the total
    assert chart is not None
    assert (folder.path / "eval.json").is_file()


def test_impossible_values_are_refused_naming_the_field(app):
    client, settings, data, base = app
    with pytest.raises(Exception, match="learning rate"):
        client.predict(*form(name="bad-lr", base_model=str(base), learning_rate=5.0), api_name="/train_start")
    assert not (settings.runs_dir / "bad-lr").exists()
