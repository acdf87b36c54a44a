"""Counts of the bundled data: the UI counts them from the files, and the README's written figures match the files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from playground.data import preference_pairs
from playground.ui import data_tab, rate_tab

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "assets" / "datasets"


def rows(name: str) -> list[dict]:
    with (DATA / f"{name}.jsonl").open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def families(name: str, key: str = "task") -> int:
    return len({row[key] for row in rows(name)})


def readme() -> str:
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())  # line breaks fall anywhere


@pytest.mark.parametrize("pattern, expected", [
    (r"the bundled (\d+) prompts in `assets/datasets/prompts\.jsonl`", lambda: [len(rows("prompts"))]),
    (r"the bundled `instructions` — (\d+) examples over (\d+) task families",
     lambda: [len(rows("instructions")), families("instructions")]),
    (r"`assets/datasets/heldout\.jsonl`: (\d+) families, (\d+) examples",
     lambda: [families("heldout"), len(rows("heldout"))]),
    (r"`preferences` \(bundled: (\d+) pairs", lambda: [len(rows("preferences"))]),
    (r"the (\d+) bundled Rate-tab prompts", lambda: [len(rows("prompts"))]),
    (r"the (\d+)-prompt rating set, (\d+) SFT instructions \((\d+) task families\), (\d+) held-out evaluation "
     r"examples \((\d+) other families\), (\d+) preference pairs",
     lambda: [len(rows("prompts")), len(rows("instructions")), families("instructions"), len(rows("heldout")),
              families("heldout"), len(rows("preferences"))]),
])
def test_the_readme_figures_are_the_data(pattern, expected):
    found = re.search(pattern, readme())
    assert found, f"the README no longer says {pattern!r}: update this test with the new wording"
    assert [int(n) for n in found.groups()] == expected()


def test_the_ui_counts_the_bundled_data():
    assert f"({families('instructions')} task families)" in data_tab.intro()
    assert f"bundled: {len(rows('preferences'))} pairs" in data_tab.preference_intro()
    assert rate_tab.prompt_set_choices()[0] == (f"Bundled prompts ({len(rows('prompts'))})", "Bundled prompts")


def test_the_ui_counts_follow_the_files(tmp_path, monkeypatch):
    pairs = tmp_path / "preferences.jsonl"
    pairs.write_text("".join(line + "\n" for line in (DATA / "preferences.jsonl").read_text().splitlines()[:3]))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "One?"}\n{"prompt": "Two?"}\n')
    monkeypatch.setitem(preference_pairs.BUNDLED, "preferences", pairs)
    monkeypatch.setattr(rate_tab, "BUNDLED_PROMPTS", prompts)
    assert "bundled: 3 pairs" in data_tab.preference_intro()
    assert rate_tab.prompt_set_choices()[0][0] == "Bundled prompts (2)"
