"""The bundled preference set (assets/datasets/preferences.jsonl): the importer reads every row, the eight flaw
labels and a dozen task families are all well represented, prompts are not reused, and answer length is no shortcut
for telling the chosen answer from the rejected one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from playground.ratings.importer import read_preferences

PATH = Path(__file__).resolve().parents[1] / "assets" / "datasets" / "preferences.jsonl"
FLAWS = {"wrong", "ignores_instruction", "off_topic", "rambling", "rude", "unsafe", "incomplete", "repetitive"}
KEYS = {"id", "task", "flaw", "prompt", "chosen", "rejected", "note"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with PATH.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def test_the_importer_reads_every_row(rows):
    result = read_preferences(PATH)
    assert result.ok, result.summary()
    assert result.error_count == 0
    assert len(result.records) == len(rows)
    for record, row in zip(result.records, rows):
        assert record.messages == [{"role": "user", "content": row["prompt"]}]
        assert (record.a.response, record.b.response, record.winner) == (row["chosen"], row["rejected"], "a")


def test_rows_have_exactly_the_documented_keys_and_text(rows):
    assert len(rows) >= 240
    for row in rows:
        assert set(row) == KEYS, row.get("id")
        assert all(isinstance(row[key], str) and row[key].strip() for key in KEYS), row["id"]


def test_ids_are_unique(rows):
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)


def test_every_flaw_label_is_well_represented_and_no_other_is_used(rows):
    counts = Counter(row["flaw"] for row in rows)
    assert set(counts) == FLAWS
    assert min(counts.values()) >= 25, counts


def test_task_families_are_varied(rows):
    assert len({row["task"] for row in rows}) >= 12


def test_chosen_and_rejected_differ(rows):
    assert all(row["chosen"] != row["rejected"] for row in rows)


def test_no_prompt_is_used_more_than_twice(rows):
    reused = {prompt: n for prompt, n in Counter(row["prompt"] for row in rows).items() if n > 2}
    assert reused == {}


def test_every_row_says_what_is_wrong_with_the_rejected_answer(rows):
    assert all(row["note"].strip() for row in rows)


def test_length_is_not_a_shortcut(rows):
    chosen = [len(row["chosen"]) for row in rows]
    rejected = [len(row["rejected"]) for row in rows]
    ratio = (sum(chosen) / len(chosen)) / (sum(rejected) / len(rejected))
    assert 0.8 <= ratio <= 1.25, ratio
    chosen_longer = sum(c > r for c, r in zip(chosen, rejected)) / len(rows)
    assert 0.3 <= chosen_longer <= 0.7, chosen_longer
