"""``scripts/screen_heldout.py``: the base model answers each candidate family few-shot; the file records it all."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # loads a tiny model and answers 32 prompts


def _script():
    spec = importlib.util.spec_from_file_location("screen_heldout", ROOT / "scripts" / "screen_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_screen_writes_each_family_s_answers_and_score(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "screen.json"
    assert _script().main(["--model", str(tiny_base), "--data-dir", str(tmp_path / "data"), "--out", str(out),
                           "--families", "plural_of_noun,animal_sound"]) == 0
    screen = json.loads(out.read_text())
    assert list(screen["families"]) == ["plural_of_noun", "animal_sound"]
    for result in screen["families"].values():
        assert result["n"] == 16 and len(result["answers"]) == 16
        assert result["accuracy"] == result["correct"] / 16 == sum(a["correct"] for a in result["answers"]) / 16
    assert screen["shots"] == 3 and screen["threshold"] == 0.5 and "few-shot" in screen["rule"]


def test_an_unknown_family_is_refused_before_any_model_loads(tmp_path):
    with pytest.raises(SystemExit):
        _script().main(["--families", "no_such_family", "--data-dir", str(tmp_path / "data"),
                        "--out", str(tmp_path / "screen.json")])
    assert not (tmp_path / "screen.json").exists()


def test_a_partial_screen_never_replaces_the_bundled_one(tmp_path):
    bundled = ROOT / "assets" / "datasets" / "heldout_screen.json"
    before = bundled.read_bytes()
    with pytest.raises(SystemExit):
        _script().main(["--families", "plural_of_noun", "--data-dir", str(tmp_path / "data")])
    assert bundled.read_bytes() == before
