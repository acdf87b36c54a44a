"""Leaderboard, History, Export and Import through gradio_client, on a store filled with hand-made votes."""

from __future__ import annotations

import json
import zipfile

import pytest
from gradio_client import handle_file

from playground.core.settings import Settings
from playground.ratings.store import Store
from tests.app_server import serve
from tests.preference_records import record, sample_records


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), memory_budget_gb=1)
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    store.insert_many(sample_records() + [record("a", model_b="third", left="b") for _ in range(3)])
    with serve(settings) as client:
        yield client, settings, store


def test_leaderboard_ranks_every_model(app):
    client, _, _ = app
    summary, table, win_rates, counts, bias, raters = client.predict("count as a tie", 100, 0,
                                                                     api_name="/leaderboard")
    assert "votes from people between 4 models" in summary
    assert [row for row in table["headers"]] == ["rank", "model", "rating", "95% CI", "online Elo", "battles",
                                                 "win rate %"]
    models = [row[1] for row in table["data"]]
    assert set(models) == {"gemma", "smollm", "smollm + dpo-1", "third"}
    assert win_rates is not None and counts is not None  # heatmaps were drawn
    assert "left answer won" in bias
    assert raters["data"] == [["ann", 11]]
    dropped = client.predict("leave out", 100, 0, api_name="/leaderboard")[0]
    assert "both-bad votes left out" in dropped


def test_leaderboard_refuses_silly_bootstrap_settings(app):
    client, _, _ = app
    with pytest.raises(Exception, match="greater than maximum value 2000"):
        client.predict("count as a tie", 10_000, 0, api_name="/leaderboard")


def test_history_filters_delete_and_undo(app):
    client, _, store = app
    _, _, count, table, pairs = client.predict("", "tie", "", "", "", api_name="/history")
    assert count.startswith("1 of 11 votes")
    assert len(table["data"]) == 1 and table["data"][0][table["headers"].index("winner")] == "tie"
    with pytest.raises(Exception, match="date"):
        client.predict("", "", "", "last week", "", api_name="/history")
    assert len(pairs["data"]) >= 3


def test_export_writes_training_files_and_a_zip(app):
    client, settings, _ = app
    note, download = client.predict(api_name="/export")
    assert "Exported 11 votes" in note and "Left out" in note
    assert download["visible"] and zipfile.is_zipfile(download["value"])  # an update that shows the file
    folder = next(p for p in settings.exports_dir.iterdir() if p.is_dir())
    rows = [json.loads(line) for line in (folder / "preference.jsonl").read_text().splitlines()]
    assert {"prompt", "chosen", "rejected", "margin"} <= set(rows[0])


def test_import_all_or_nothing_through_the_ui(app, tmp_path):
    client, _, store = app
    before = store.count()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q2", "chosen": ""}\n')
    note = client.predict(handle_file(str(bad)), "importer", api_name="/import")
    assert "Nothing was imported" in note and "line 2" in note
    assert store.count() == before
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q2", "chosen": "c", '
                    '"rejected": "d"}\n')
    note = client.predict(handle_file(str(good)), "importer", api_name="/import")
    assert "Imported 2" in note
    assert store.count() == before + 2
    twice = tmp_path / "twice.jsonl"  # the same rows again, repeated: nothing new, and the note says so
    twice.write_text(good.read_text() * 2)
    note = client.predict(handle_file(str(twice)), "importer", api_name="/import")
    assert note == ("Nothing new to import from twice.jsonl: its 2 comparisons are already in the ratings database "
                    "(imported before?); 2 repeated rows skipped.")
    assert store.count() == before + 2
