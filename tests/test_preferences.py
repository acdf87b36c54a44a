"""Preference export: TRL pairs, KTO rows, FastChat battles; files read back equal; temp-then-rename writing."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import playground.ratings.export as export_module
from playground.ratings.export import (
    DATASETS,
    all_rows,
    battle_rows,
    export_all,
    hh_text,
    kto_rows,
    margin_for,
    preference_rows,
    strength_for,
)
from playground.ratings.store import Store
from tests.preference_records import EARLIER, record, sample_records

STAMP = datetime(2025, 3, 4, 5, 6, 7)


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "ratings.db")
    s.insert_many(sample_records())
    return s


# ---------------------------------------------------------------------------------------------- pure rows


def test_pairs_put_the_winner_first_with_system_message_margin_and_models():
    rows = preference_rows([record("a", strength=5, system="Be brief."), record("b", adapter_b="runs/x")]).rows
    assert rows[0]["prompt"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Explain the moon landing."}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "People flew to the moon in 1969."}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "The moon is made of cheese."}]
    assert (rows[0]["margin"], rows[0]["model_chosen"], rows[0]["model_rejected"]) == (1.0, "gemma", "smollm")
    assert rows[1]["chosen"][0]["content"] == "The moon is made of cheese."
    assert (rows[1]["margin"], rows[1]["model_chosen"]) == (0.0, "smollm + runs/x")


def test_text_pairs_use_the_hh_layout_with_earlier_turns():
    row = preference_rows([record("a", earlier=EARLIER, system="Be kind.")], conversational=False).rows[0]
    assert row["prompt"] == ("Be kind.\n\nHuman: Hi\n\nAssistant: Hello! How can I help?"
                             "\n\nHuman: Explain the moon landing.\n\nAssistant:")
    assert row["chosen"] == " People flew to the moon in 1969."
    assert row["rejected"] == " The moon is made of cheese."
    assert hh_text([{"role": "user", "content": "x"}]) == "\n\nHuman: x\n\nAssistant:"


def test_ties_both_bad_and_multi_turn_pairs_are_left_out_and_counted():
    export = preference_rows(sample_records())
    assert len(export.rows) == 5
    assert export.left_out == {"tie": 1, "both_bad": 1, "multi_turn": 1}
    assert export.left_out_text() == ("1 tie, 1 both-bad vote, 1 multi-turn pair whose sides had different "
                                      "earlier turns")


def test_a_history_equal_to_the_shared_turns_still_makes_a_pair():
    same = record("a", earlier=EARLIER, history_a=EARLIER)
    assert len(preference_rows([same]).rows) == 1


@pytest.mark.parametrize("strength, margin", [(None, 0.0), (1, 0.2), (2, 0.4), (3, 0.6), (4, 0.8), (5, 1.0)])
def test_margin_is_strength_over_five_and_reads_back(strength, margin):
    assert margin_for(strength) == margin
    assert strength_for(margin) == strength


def test_large_margins_from_other_data_clamp_to_strength_five():
    assert strength_for(3.5) == 5
    assert strength_for(0.01) == 1


def test_kto_labels_winner_true_loser_false_both_bad_false_ties_out():
    export = kto_rows(sample_records())
    labels = [row["label"] for row in export.rows]
    assert labels[:4] == [True, False, False, True]  # a won, then b won
    both_bad = [row for row in export.rows if row["completion"][0]["content"] in ("dog", "Katze")]
    assert [row["label"] for row in both_bad] == [False, False]
    assert export.left_out == {"tie": 1}
    assert len(export.rows) == 2 * 7


def test_kto_keeps_multi_turn_pairs_each_with_its_own_conversation():
    rows = kto_rows([sample_records()[-1]]).rows
    assert rows[0]["prompt"][0] == {"role": "user", "content": "Tell a story."}
    assert rows[1]["prompt"] == [{"role": "user", "content": "And then?"}]
    text = kto_rows([record("a")], conversational=False).rows[0]
    assert text["completion"] == " People flew to the moon in 1969." and text["prompt"].endswith("Assistant:")


@pytest.mark.parametrize("winner, left, expected", [
    ("a", "a", "model_a"), ("b", "a", "model_b"), ("a", "b", "model_b"), ("b", "b", "model_a"),
    ("tie", "a", "tie"), ("both_bad", "b", "tie (bothbad)"),
])
def test_battle_winner_follows_the_screen_order(winner, left, expected):
    row = battle_rows([record(winner, left=left, adapter_b="runs/dpo")]).rows[0]
    assert row["winner"] == expected
    left_model, right_model = ("gemma", "smollm + runs/dpo") if left == "a" else ("smollm + runs/dpo", "gemma")
    assert (row["model_a"], row["model_b"]) == (left_model, right_model)
    answer = row["conversation_a"][-1]["content"]
    assert answer == ("People flew to the moon in 1969." if left == "a" else "The moon is made of cheese.")


def test_battle_fields():
    row = battle_rows([record("a", blind=True, earlier=EARLIER, system="S", rater="bob")]).rows[0]
    assert row["anony"] is True and row["judge"] == "bob" and row["turn"] == 2
    assert row["tstamp"] == datetime.fromisoformat("2025-03-01T12:00:00.123456+00:00").timestamp()
    assert row["conversation_a"][0] == {"role": "system", "content": "S"}
    assert row["conversation_a"][-1]["role"] == "assistant" and len(row["conversation_a"]) == 5
    same_question = battle_rows([record("b", blind=True, earlier=EARLIER, system="S")]).rows[0]
    assert row["question_id"] == same_question["question_id"]


def test_battles_leave_out_votes_without_model_names():
    export = battle_rows([record("a", model_a=None), record("a")])
    assert len(export.rows) == 1 and export.left_out == {"unknown_model": 1}


# ---------------------------------------------------------------------------------------------- files


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_round_trips_through_jsonl_parquet_and_datasets_folder(store, tmp_path):
    from datasets import load_from_disk

    report = export_all(store, tmp_path / "exports", stamp=STAMP)
    expected = all_rows(store.comparisons())
    assert report.folder == tmp_path / "exports" / "preferences-20250304-050607"
    for name in DATASETS:
        rows = expected[name].rows
        assert report.rows[name] == len(rows) > 0
        assert _read_jsonl(report.folder / f"{name}.jsonl") == rows
        assert pq.read_table(report.folder / f"{name}.parquet").to_pylist() == rows
        assert load_from_disk(str(report.folder / name)).to_list() == rows
    assert "달은" in (report.folder / "preference.jsonl").read_text(encoding="utf-8")  # UTF-8, not \uXXXX escapes


def test_export_writes_a_zip_and_leaves_no_temporary_files(store, tmp_path):
    out = tmp_path / "exports"
    report = export_all(store, out, stamp=STAMP)
    assert sorted(p.name for p in out.iterdir()) == [report.folder.name, report.zip_path.name]
    assert not [p for p in report.folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    names = zipfile.ZipFile(report.zip_path).namelist()
    assert f"{report.folder.name}/preference.jsonl" in names
    assert f"{report.folder.name}/battles/dataset_info.json" in names
    assert set(report.files) >= {report.folder / "kto.parquet", report.folder / "kto"}


def test_each_export_gets_its_own_folder(store, tmp_path):
    first = export_all(store, tmp_path, stamp=STAMP)
    second = export_all(store, tmp_path, stamp=STAMP)
    assert first.folder != second.folder and second.folder.name.endswith("-2")
    assert second.zip_path.name == f"{second.folder.name}.zip"


def test_a_failed_write_leaves_no_export_under_a_final_name(store, tmp_path, monkeypatch):
    from datasets import Dataset

    def broken(self, path, **kwargs):
        Path(path).write_bytes(b"PAR1 half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Dataset, "to_parquet", broken)
    out = tmp_path / "exports"
    with pytest.raises(OSError, match="No space"):
        export_all(store, out, stamp=STAMP)
    assert list(out.iterdir()) == []


def test_summary_names_files_counts_and_what_was_left_out(store, tmp_path):
    text = export_all(store, tmp_path, stamp=STAMP).summary()
    assert "Exported 8 votes" in text and "5 preference pairs (conversational)" in text
    assert "14 KTO rows" in text and "8 FastChat battles" in text
    assert "Left out of the preference pairs: 1 tie, 1 both-bad vote, 1 multi-turn pair" in text
    assert "Left out of the KTO rows: 1 tie." in text
    assert "\n" not in text


def test_only_ties_writes_no_pair_files_and_says_so(tmp_path):
    s = Store(tmp_path / "r.db")
    s.insert_many([record("tie"), record("tie", prompt="other")])
    report = export_all(s, tmp_path / "out", stamp=STAMP)
    assert not (report.folder / "preference.jsonl").exists() and (report.folder / "battles.jsonl").exists()
    assert "No files for preference pairs (conversational), preference pairs (plain text), KTO rows: no rows" \
        in report.summary()


def test_an_empty_store_writes_nothing_and_says_why(tmp_path):
    report = export_all(Store(tmp_path / "r.db"), tmp_path / "out")
    assert report.votes == 0 and report.folder is None and report.files == []
    assert not (tmp_path / "out").exists()
    assert "Nothing to export yet" in report.summary()


def test_deleted_and_unvoted_comparisons_are_not_exported(tmp_path):
    s = Store(tmp_path / "r.db")
    s.insert_many([record("a"), record(None, prompt="unrated"), record("b", prompt="deleted", record_id="gone")])
    s.delete("gone")
    assert export_all(s, tmp_path / "out").votes == 1


def test_progress_is_reported(store, tmp_path):
    calls = []
    export_all(store, tmp_path, progress=lambda fraction, desc="": calls.append((fraction, desc)))
    assert [c[1] for c in calls][-1] == "Zipping the export" and len(calls) == len(DATASETS) + 1
    assert all(0 <= c[0] < 1 for c in calls)


def test_module_keeps_no_mutable_state():
    assert not [name for name, value in vars(export_module).items()
                if not name.startswith("__") and isinstance(value, (list, set))]
