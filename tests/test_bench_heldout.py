"""``python -m bench.heldout``: one command trains the recipe, evaluates base vs tuned and prints the table."""

from __future__ import annotations

import json
import re

import pytest

from bench import heldout
from playground.data.evaluation import load_heldout, load_saved

pytestmark = pytest.mark.slow  # a real (tiny) training process and two evaluations: tens of seconds


def test_one_command_trains_evaluates_and_reports(monkeypatch, tmp_path, tiny_base, capsys):
    monkeypatch.setenv("RLHF_PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "result.json"
    assert heldout.main(["--base", str(tiny_base), "--max-steps", "1", "--per-family", "1", "--name", "hb",
                         "--json", str(out)]) == 0
    text = capsys.readouterr().out
    families = len({example.task for example in load_heldout()})
    assert "quick settings, not the shipped recipe" in text  # a changed recipe is never reported as the shipped one
    assert "| task family | n | base % [95% CI] | tuned % [95% CI] | change, points [95% paired CI] |" in text
    assert f"| **all tasks** | {families} |" in text and "plural_of_noun" in text
    assert "wall time: training" in text and "load average before" in text
    assert re.search(r"CPU time .*: training \d+ s, evaluation \d+ s", text)  # the trainer process was counted
    saved = json.loads(out.read_text())
    assert saved["run"] == "hb" and saved["train_seconds"] > 0 and saved["eval_seconds"] > 0
    assert saved["train_cpu_seconds"] > 0 and saved["eval_cpu_seconds"] > 0
    assert [row["task"] for row in saved["table"]][-1] == "all tasks"
    base, tuned = load_saved(tmp_path / "data" / "runs" / "hb")  # the Runs tab shows the same evaluation
    assert tuned.model == "tiny-base + hb" and len(base.rows) == len(tuned.rows) == families
