"""Train and Runs tabs through gradio_client: start a run from the form, watch it, evaluate base vs tuned."""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
import types

import pytest

from playground.core.settings import Settings
from playground.runs.run_folder import RunFolder
from playground.train.__main__ import main as train_main
from playground.train.config import SFTConfig, from_dict
from playground.ui.train_tab import GROUPS, commands_by_hand
from tests.app_server import serve

pytestmark = pytest.mark.slow  # a real training process and a held-out evaluation

FORM = [name for names in GROUPS["sft"].values() for name in names]
"""The SFT form's fields in the order the Train tab lays them out (its API's arguments)."""


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
    # the 95 % intervals are columns of the table and error bars of the chart
    assert table["headers"] == ["task", "n", "base %", "base low", "base high", "tuned %", "tuned low", "tuned high",
                                "change", "change low", "change high"]
    total = dict(zip(table["headers"], rows["all tasks"]))
    assert total["base low"] <= total["base %"] <= total["base high"]
    assert total["change low"] <= total["change"] <= total["change high"]
    bars = json.loads(chart["plot"])["data"]
    assert [bar["error_y"]["type"] for bar in bars] == ["data", "data"]
    assert len(bars[1]["error_y"]["array"]) == len(rows)
    assert (folder.path / "eval.json").is_file()


def test_impossible_values_are_refused_naming_the_field(app):
    client, settings, data, base = app
    with pytest.raises(Exception, match="Learning rate must be in"):
        client.predict(*form(name="bad-lr", base_model=str(base), learning_rate=5.0), api_name="/train_start")
    assert not (settings.runs_dir / "bad-lr").exists()


def test_letters_in_a_number_box_say_must_be_a_number_in_plain_text(app):
    client, settings, data, base = app
    # A Number box holding letters (or nothing) hands over None; the pop-up shows text as it is (no Markdown).
    with pytest.raises(Exception, match="Learning rate must be a number") as refused:
        client.predict(*form(name="no-lr", base_model=str(base), learning_rate=None), api_name="/train_start")
    assert "**" not in str(refused.value) and "None" not in str(refused.value)
    with pytest.raises(Exception, match=r"Batch size must be between 1 and 1024"):
        client.predict(*form(name="no-batch", base_model=str(base), batch_size=0), api_name="/train_start")
    assert not (settings.runs_dir / "no-lr").exists() and not (settings.runs_dir / "no-batch").exists()


def run_shown_command(line: str, monkeypatch) -> dict:
    """Run a shown ``python -m playground.train STAGE …`` line as the CLI would, up to the stage's start: the stage
    module is replaced by one that records the config it was handed (no model is trained)."""
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "playground.train"], line
    seen: dict = {}

    def stage_main(cfg, folder, resume=False):
        seen.update(cfg=cfg, folder=folder, resume=resume)
        return "finished"

    monkeypatch.setitem(sys.modules, f"playground.train.{argv[3]}", types.SimpleNamespace(main=stage_main))
    assert train_main(argv[3:]) == 0
    return seen


def save_and_run_as_shown(text: str, yaml_text: str, where, monkeypatch) -> dict:
    """Do exactly what Show config and command says: save the YAML under the name it gives, run its command."""
    saved = re.search(r"^# Save the config above as (\S+) in the project folder", text, re.M)
    assert saved, text
    monkeypatch.chdir(where)
    (where / saved.group(1)).write_text(yaml_text)
    commands = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(commands) == 2 and commands[1].startswith("accelerate launch -m playground.train ")
    assert shlex.split(commands[1])[4:] == shlex.split(commands[0])[3:]  # the same run on several GPUs
    return run_shown_command(commands[0], monkeypatch)


def test_the_shown_command_runs_the_shown_config(tmp_path, monkeypatch, tiny_base):
    settings = Settings(data_dir=tmp_path / "data")
    cfg = from_dict("sft", SFTConfig(name="by-hand", base_model=str(tiny_base), max_steps=3).to_dict()
                    | {"data_dir": str(settings.data_dir)})
    where = tmp_path / "project"
    where.mkdir()
    seen = save_and_run_as_shown(commands_by_hand("sft", cfg, settings), cfg.to_yaml(), where, monkeypatch)
    assert seen["cfg"] == cfg and not seen["resume"]
    assert seen["folder"].path == settings.runs_dir / "by-hand"  # where the app's Runs tab looks
    assert seen["folder"].config.read_text() == cfg.to_yaml()
