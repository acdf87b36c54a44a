"""The Data tab's callbacks, called directly (no server): the dataset list and preview, the upload's refusal and
success messages, the clicked row, and the same for preference pairs."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from playground.ui import data_tab

GOOD = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
PAIR = {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Berlin."}


def jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def skipped(value: object) -> bool:
    """Whether an output is ``gr.skip()`` (the component keeps what it shows)."""
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def test_the_list_keeps_the_picked_dataset_else_picks_the_first(settings):
    table, picker = data_tab.refresh_list(settings, "heldout")
    assert {"instructions", "heldout"} <= set(table["name"]) and picker["value"] == "heldout"
    assert list(table.columns) == data_tab.COLUMNS
    assert table.set_index("name").loc["heldout", "purpose"] == "evaluation only"
    _, picker = data_tab.refresh_list(settings, "deleted-meanwhile")
    assert picker["value"] == picker["choices"][0]


def test_the_preview_summarises_a_dataset_and_explains_one_it_cannot_read(settings):
    summary, rows, counts = data_tab.show(settings, "heldout")
    assert summary.startswith("**heldout** · ") and "**evaluation only**" in summary
    assert 0 < len(rows) <= data_tab.PREVIEW_ROWS and counts["examples"].sum() > len(rows)
    summary, rows, counts = data_tab.show(settings, "no-such-dataset")
    assert "no-such-dataset" in summary and rows.empty and counts.empty
    assert data_tab.show(settings, None)[0] == ""


@pytest.mark.parametrize("bad_row, reason", [({"instruction": "Say hi.", "input": ""}, "line 2"),
                                             (GOOD | {"output": ""}, "line 2, field 'output': is empty")])
def test_a_bad_upload_is_refused_with_the_row_and_nothing_is_saved(settings, tmp_path, bad_row, reason):
    bad = jsonl(tmp_path / "bad.jsonl", GOOD, bad_row)
    note, table, picker = data_tab.save(settings, str(bad), "mine")
    assert note.startswith("**Nothing was saved.**") and reason in note
    assert skipped(table) and skipped(picker)  # the list and the picked dataset stay as they are
    assert list(settings.datasets_dir.iterdir()) == []


def test_a_good_upload_is_saved_picked_and_renamed_when_the_name_is_unsafe(settings, tmp_path):
    good = jsonl(tmp_path / "good.jsonl", GOOD | {"task": "greet"}, GOOD | {"task": "greet"})
    note, table, picker = data_tab.save(settings, str(good), " ../greetings ")
    assert note.startswith("Saved **greetings**: 2 examples (instruction/input/output)")
    assert "The name '../greetings' was taken or unsafe, so it is called 'greetings'." in note
    assert picker["value"] == "greetings" and "greetings" in set(table["name"])
    note, _, picker = data_tab.save(settings, str(good), "greetings")  # taken now: saved beside it
    assert "so it is called 'greetings-2'" in note and picker["value"] == "greetings-2"
    assert data_tab.save(settings, None, "ignored")[0] == ""  # the file cleared: nothing to say


@pytest.mark.parametrize("error, said", [
    (OSError(errno.ENOSPC, "No space left on device"), "**Nothing was saved:** the disk is full: free some space"),
    (PermissionError(errno.EACCES, "Permission denied"),
     "**Nothing was saved:** the datasets folder isn't writable (Permission denied)")])
def test_a_full_disk_or_an_unwritable_datasets_folder_is_said_plainly(settings, tmp_path, monkeypatch, error, said):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(data_tab, "save_upload", failing)
    note, table, _ = data_tab.save(settings, str(jsonl(tmp_path / "good.jsonl", GOOD)), "")
    assert note.startswith(said) and skipped(table)
    monkeypatch.setattr(data_tab.preference_pairs, "save_upload", failing)
    note, table, _ = data_tab.save_preferences(settings, str(jsonl(tmp_path / "good.jsonl", GOOD)), "")
    assert note.startswith(said) and skipped(table)


def test_a_clicked_row_picks_its_dataset_and_a_click_outside_changes_nothing():
    frame = pd.DataFrame({"name": ["instructions", "heldout"]})
    assert data_tab.picked_row(frame, SimpleNamespace(index=[1, 3])) == "heldout"
    assert data_tab.picked_row(frame, SimpleNamespace(index=0)) == "instructions"
    assert skipped(data_tab.picked_row(frame, SimpleNamespace(index=[5, 0])))


def test_a_preference_upload_is_refused_whole_then_saved_then_found_already_there(settings, tmp_path):
    bad = jsonl(tmp_path / "bad.jsonl", PAIR, PAIR | {"rejected": "Paris."})
    note, listing, picker = data_tab.save_preferences(settings, str(bad), "")
    assert note.startswith("**Nothing was saved.**") and skipped(listing) and skipped(picker)

    good = jsonl(tmp_path / "good.jsonl", PAIR)
    note, listing, picker = data_tab.save_preferences(settings, str(good), " capitals ")
    assert picker["value"] == "capitals" and "capitals" in set(listing["name"])
    note, listing, picker = data_tab.save_preferences(settings, str(good), "again")
    assert note.startswith("Nothing new was saved") and "**capitals**" in note and skipped(listing)

    summary, rows = data_tab.preference_preview(settings, "capitals")
    assert summary.startswith("**capitals** · 1 pair") and list(rows.iloc[0][:3]) == ["Capital of France?",
                                                                                      "Paris.", "Berlin."]
    listing, picker = data_tab.preference_lists(settings)
    assert "capitals" in picker["choices"] and "capitals" in set(listing["name"])


def test_the_preference_preview_explains_a_source_it_cannot_read(settings):
    summary, rows = data_tab.preference_preview(settings, "no-such-set")
    assert "no-such-set" in summary and rows.empty
    assert data_tab.preference_preview(settings, None)[0] == ""
    summary, rows = data_tab.preference_preview(settings, "preferences")
    assert "usable for reward-model and DPO runs" in summary and len(rows) == data_tab.PREVIEW_ROWS
