"""The History tab's callbacks, called directly (no server): filtering, opening a row, delete and undo, export and
import — and that the built tab hands them the click and the request Gradio injects."""

from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from gradio import helpers

from playground.ratings.store import Store
from playground.ui import history_tab
from tests.preference_records import record, sample_records

NO_FILTER = ("", "", "", "", "")


@pytest.fixture
def store(settings) -> Store:
    """A store with the eight sample votes (a tie and a both-bad among them) and one unvoted comparison."""
    store = Store(settings.ratings_db)
    for r in sample_records():
        store.save(r)
    store.save(record(None, prompt="not voted"))
    return store


def click(row: int) -> SimpleNamespace:
    """What Gradio passes for a click on a table cell of ``row``."""
    return SimpleNamespace(index=[row, 0])


def test_the_view_counts_every_vote_and_filters_by_winner_and_date(store):
    models, raters, count, frame, pairs = history_tab.refresh_view(store, *NO_FILTER)
    assert count == "8 of 8 votes shown." and len(frame) == 8  # the unvoted comparison isn't a vote
    assert ("ann", "ann") in raters["choices"] and ("any", "") in models["choices"]
    assert pairs["votes"].sum() == 8  # over every vote, whatever the filter

    _, _, count, frame, pairs = history_tab.refresh_view(store, "", "tie", "", "", "")
    assert count == "1 of 8 votes shown." and len(frame) == 1 and pairs["votes"].sum() == 8
    _, _, count, _, _ = history_tab.refresh_view(store, "", "", "", " 2025-03-02 ", "2025-03-02")
    assert count == "1 of 8 votes shown."  # dates are trimmed and inclusive


def test_a_date_that_is_not_one_is_refused_with_a_message(store):
    with pytest.raises(gr.Error, match="'not-a-date' is not a date"):
        history_tab.refresh_view(store, "", "", "", "not-a-date", "")


def test_a_clicked_row_opens_its_comparison_and_offers_delete(store):
    frame = history_tab.refresh_view(store, *NO_FILTER)[3]
    selected, detail, delete = history_tab.open_row(store, frame, click(0))
    assert selected == frame.iloc[0]["id"] and store.get(selected).prompt in detail
    assert delete["interactive"] is True

    assert history_tab.open_row(store, frame, click(99))[0] is None  # a click below the rows selects nothing
    store.delete(selected)  # deleted meanwhile (another browser): still readable, no longer deletable
    selected_again, detail, delete = history_tab.open_row(store, frame, click(0))
    assert selected_again == selected and delete["interactive"] is False  # a deleted vote can't be deleted twice
    gone = frame.assign(id=["no-such-id"] * len(frame))
    assert history_tab.open_row(store, gone, click(0))[:2] == [None, "This comparison no longer exists."]


def test_delete_then_undo_brings_the_vote_back_in_the_counts(store, capsys):
    comparison_id = history_tab.refresh_view(store, *NO_FILTER)[3].iloc[0]["id"]
    selected, detail, delete, deleted, undo, *view = history_tab.delete_selected(store, comparison_id, [], *NO_FILTER)
    assert (selected, detail, delete["interactive"], deleted, undo["interactive"]) == \
        (None, "", False, [comparison_id], True)
    assert view[2] == "7 of 7 votes shown." and comparison_id not in set(view[3]["id"])
    assert "Undo brings it back" in capsys.readouterr().out  # the gr.Info toast, printed outside a request

    deleted, undo, *view = history_tab.undo_delete(store, deleted, *NO_FILTER)
    assert deleted == [] and undo["interactive"] is False and view[2] == "8 of 8 votes shown."
    assert store.get(comparison_id).deleted_at is None


def test_undo_steps_back_one_delete_at_a_time(store):
    ids = list(history_tab.refresh_view(store, *NO_FILTER)[3]["id"][:2])
    deleted: list[str] = []
    for comparison_id in ids:
        deleted = history_tab.delete_selected(store, comparison_id, deleted, *NO_FILTER)[3]
    deleted, undo, *view = history_tab.undo_delete(store, deleted, *NO_FILTER)
    assert deleted == ids[:1] and undo["interactive"] is True and view[2] == "7 of 7 votes shown."
    assert store.get(ids[1]).deleted_at is None and store.get(ids[0]).deleted_at is not None


def test_delete_and_undo_with_nothing_to_act_on_are_refused(store):
    with pytest.raises(gr.Error, match="Select a comparison in the table first"):
        history_tab.delete_selected(store, None, [], *NO_FILTER)
    with pytest.raises(gr.Error, match="Select a comparison in the table first"):
        history_tab.delete_selected(store, "no-such-id", [], *NO_FILTER)
    with pytest.raises(gr.Error, match="Nothing to undo"):
        history_tab.undo_delete(store, [], *NO_FILTER)


def test_export_with_no_votes_says_so_and_offers_no_download(settings):
    summary, download = history_tab.run_export(Store(settings.ratings_db), settings.exports_dir, progress=None)
    assert "Nothing to export yet" in summary
    assert download["visible"] is False and download["value"] is None
    assert not any(settings.exports_dir.iterdir())


def test_export_writes_a_zip_to_download_and_reports_progress(store, settings):
    steps: list[str] = []
    summary, download = history_tab.run_export(store, settings.exports_dir,
                                               progress=lambda fraction, desc: steps.append(desc))
    assert download["visible"] is True and download["value"].endswith(".zip")
    with zipfile.ZipFile(download["value"]) as archive:
        assert any(name.endswith(".jsonl") for name in archive.namelist())
    assert "8" in summary and steps[-1] == "Zipping the export"


def test_an_export_that_cannot_be_written_is_refused_and_writes_nothing(store, settings):
    blocked = settings.exports_dir / "file"
    blocked.write_text("not a folder")
    with pytest.raises(gr.Error, match="Export failed, nothing was written"):
        history_tab.run_export(store, blocked, progress=None)


def test_import_records_the_rows_under_the_login_else_the_typed_name(settings, tmp_path):
    store = Store(settings.ratings_db)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}) + "\n")
    assert history_tab.run_import(store, None, "bob", None) == ""  # the file cleared: nothing to say

    summary = history_tab.run_import(store, str(path), "  bob  ", SimpleNamespace(username="carol"))
    assert summary == "Imported 1 comparison from pairs.jsonl."
    assert [r.rater for r in store.comparisons()] == ["carol"]  # the login can't be faked from the page
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "Bye?", "chosen": "Bye!", "rejected": "No."}) + "\n")
    history_tab.run_import(store, str(other), "  bob  ", None)
    assert sorted(r.rater for r in store.comparisons()) == ["bob", "carol"]


def test_a_bad_import_file_is_reported_row_by_row_and_nothing_is_written(settings, tmp_path):
    store = Store(settings.ratings_db)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello."}) + "\nnot json\n")
    summary = history_tab.run_import(store, str(path), "", None)
    assert "Nothing was imported" in summary and "line 2: not valid JSON" in summary
    assert store.comparisons() == []


def test_the_built_tab_hands_its_callbacks_the_click_and_the_request(settings):
    """Gradio finds gr.SelectData and gr.Request by their type hints: the wiring must keep them visible (a plain
    functools.partial hides them, and the callback would get None)."""
    with gr.Blocks() as app:
        rater = gr.Textbox()
        with gr.Tab("History") as tab:
            history_tab.build(settings, Store(settings.ratings_db), rater, tab)
    by_name = {fn.api_name: fn for fn in app.fns.values()}
    request = object()
    inputs, *_ = helpers.special_args(by_name["import"].fn, ["file", "typed"], request=request)
    assert inputs == ["file", "typed", request]
    row_click = next(fn for fn in app.fns.values() if fn.name == "open_row")
    event = gr.EventData(None, {"index": [0, 0], "value": None})
    inputs, _, event_index, _ = helpers.special_args(row_click.fn, [pd.DataFrame()], event_data=event)
    assert event_index == 1 and isinstance(inputs[1], gr.SelectData)
