"""Preference import: valid files of every format become comparisons; malformed ones are refused with the row, the
field and the reason, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from playground.ratings.export import export_all
from playground.ratings.importer import ImportLimits, import_file, parse_transcript, read_preferences
from playground.ratings.store import Store
from tests.preference_records import record, sample_records

PAIR = {"prompt": "Explain the moon landing.", "chosen": "In 1969 people flew there.", "rejected": "It was fake."}
HH_CHOSEN = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: 4"
HH_REJECTED = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: 5"


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "ratings.db")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def refused(store: Store, path: Path, limits: ImportLimits | None = None):
    """Import ``path``, check it was refused with nothing written, and return the errors."""
    result = import_file(store, path, rater="ann", limits=limits)
    assert not result.ok and result.written == 0 and result.records == []
    assert store.comparisons(voted_only=False, include_deleted=True) == []
    assert result.summary().startswith("Nothing was imported")
    return result.errors


# ---------------------------------------------------------------------------------------------- valid files


def test_jsonl_with_strings_becomes_comparisons_chosen_on_side_a(store, tmp_path):
    result = import_file(store, write_jsonl(tmp_path / "p.jsonl", [PAIR, {**PAIR, "prompt": "Other"}]), rater="bob")
    assert result.ok and result.written == 2 and result.summary() == "Imported 2 comparisons from p.jsonl."
    (first,) = [r for r in store.comparisons() if r.prompt == PAIR["prompt"]]
    assert first.messages == [{"role": "user", "content": "Explain the moon landing."}]
    assert (first.a.response, first.b.response, first.winner) == (PAIR["chosen"], PAIR["rejected"], "a")
    assert (first.source, first.rater, first.a.model, first.strength) == ("import", "bob", None, None)
    assert "bob" in store.raters()


def test_jsonl_conversational_with_system_margin_id_and_models(store, tmp_path):
    row = {"id": "x1", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
           "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go"}],
           "margin": 0.6, "model_chosen": "gemma + runs/dpo", "model_rejected": "smollm"}
    assert import_file(store, write_jsonl(tmp_path / "c.jsonl", [row])).ok
    saved = store.get("x1")
    assert saved.system_prompt == "Be brief." and saved.messages == [{"role": "user", "content": "Hi"}]
    assert saved.strength == 3 and (saved.a.model, saved.a.adapter, saved.b.model) == ("gemma", "runs/dpo", "smollm")


def test_csv_with_utf8_bom_quotes_newlines_strength_and_system(store, tmp_path):
    path = tmp_path / "excel.csv"
    text = 'prompt,chosen,rejected,strength,system\r\n"Say ""hi""","Hi,\r\nthere",Go,4,Be kind\r\n달?,네,아니요,,\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = import_file(store, path)
    assert result.ok and result.written == 2
    first, second = sorted(store.comparisons(), key=lambda r: r.prompt != 'Say "hi"')
    assert first.prompt == 'Say "hi"' and first.a.response == "Hi,\r\nthere" and first.strength == 4
    assert first.system_prompt == "Be kind"
    assert (second.prompt, second.strength, second.system_prompt) == ("달?", None, "")


def test_parquet_with_message_lists(store, tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
             "rejected": [{"role": "assistant", "content": "B"}], "strength": 2}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    result = import_file(store, tmp_path / "p.parquet")
    assert result.ok and store.comparisons()[0].strength == 2


def test_json_array_rows_are_numbered_from_one(store, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([PAIR, {**PAIR, "chosen": 3}]))
    assert [str(e) for e in refused(store, path)] == ["row 2, field 'chosen': expected text, got a number"]


def test_hh_transcripts_share_their_prefix_as_the_prompt(store, tmp_path):
    rows = [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED}]
    assert import_file(store, write_jsonl(tmp_path / "hh.jsonl", rows)).ok
    saved = store.comparisons()[0]
    assert saved.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                              {"role": "user", "content": "What is 2+2?"}]
    assert (saved.a.response, saved.b.response) == ("4", "5")


def test_parse_transcript_reads_a_preamble_as_system_prompt():
    assert parse_transcript("Be nice.\n\nHuman: Hi\n\nAssistant: Yo") == (
        "Be nice.", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])


def test_whole_conversations_as_message_lists(store, tmp_path):
    shared = [{"role": "user", "content": "Q"}]
    rows = [{"chosen": shared + [{"role": "assistant", "content": "good"}],
             "rejected": shared + [{"role": "assistant", "content": "bad"}]}]
    assert import_file(store, write_jsonl(tmp_path / "implicit.jsonl", rows)).ok
    assert store.comparisons()[0].a.response == "good"


@pytest.mark.parametrize("name", ["preference.jsonl", "preference.parquet", "preference_text.jsonl",
                                  "preference_text.parquet"])
def test_exported_pairs_import_back_unchanged(tmp_path, name):
    source = Store(tmp_path / "source.db")
    source.insert_many(sample_records())
    folder = export_all(source, tmp_path / "exports").folder
    target = Store(tmp_path / "target.db")
    assert import_file(target, folder / name).written == 5
    key = lambda r: (r.system_prompt, r.messages, r.strength)  # noqa: E731
    originals = {r.id: r for r in source.comparisons()}
    for imported in target.comparisons():
        original = originals[imported.id]
        chosen, rejected = (original.a, original.b) if original.winner == "a" else (original.b, original.a)
        assert key(imported) == key(original)
        assert (imported.a.response, imported.b.response) == (chosen.response, rejected.response)
        assert (imported.a.model, imported.a.adapter) == (chosen.model, chosen.adapter)


def test_importing_the_same_file_again_adds_nothing_and_says_so(store, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [PAIR, {**PAIR, "prompt": "2"}, PAIR])
    first = import_file(store, path)
    assert first.written == 2 and first.summary() == "Imported 2 comparisons from p.jsonl (1 repeated row skipped)."
    again = import_file(store, path)
    assert again.ok and again.written == 0 and again.already_stored == 2
    assert again.summary() == ("Nothing new to import from p.jsonl: its 2 comparisons are already in the ratings "
                               "database (imported before?); 1 repeated row skipped.")
    assert len(store.comparisons()) == 2


def test_a_file_partly_imported_before_adds_only_its_new_rows(store, tmp_path):
    import_file(store, write_jsonl(tmp_path / "old.jsonl", [PAIR]))
    store.delete(store.comparisons()[0].id)
    result = import_file(store, write_jsonl(tmp_path / "new.jsonl", [PAIR, {**PAIR, "prompt": "2"}]))
    assert result.written == 1 and [r.prompt for r in store.comparisons()] == ["2"]
    assert result.summary() == ("Imported 1 comparison from new.jsonl (1 already in the ratings database, 1 of them "
                                "deleted in History).")


def test_an_export_imported_into_its_own_database_adds_nothing(tmp_path):
    store = Store(tmp_path / "ratings.db")
    store.insert_many(sample_records())
    folder = export_all(store, tmp_path / "exports").folder
    result = import_file(store, folder / "preference.jsonl")
    assert result.ok and (result.written, result.already_stored) == (0, 5)  # winners on side b included
    assert len(store.comparisons()) == len(sample_records())


def test_read_preferences_writes_nothing(tmp_path):
    result = read_preferences(write_jsonl(tmp_path / "p.jsonl", [PAIR]))
    assert result.ok and len(result.records) == 1
    assert result.summary() == "1 comparison in p.jsonl is ready to import."


def test_one_row_is_one_comparison_in_the_summary(store, tmp_path):
    assert import_file(store, write_jsonl(tmp_path / "p.jsonl", [PAIR])).summary() == \
        "Imported 1 comparison from p.jsonl."
    summary = import_file(store, write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "q"}])).summary()
    assert summary.startswith("Nothing was imported: bad.jsonl has 1 problem (")


# ---------------------------------------------------------------------------------------------- malformed files


def test_bad_json_line(store, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PAIR) + "\n{\"prompt\": \"x\", \n" + json.dumps({**PAIR, "prompt": "2"}) + "\n")
    (error,) = refused(store, path)
    assert (error.row, error.unit) == (2, "line") and "not valid JSON" in error.reason


def test_an_unterminated_string_says_at_column_once(store, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "x\n')
    (error,) = refused(store, path)
    assert error.reason == "not valid JSON (Unterminated string starting at column 12)"


def test_a_line_that_is_not_an_object(store, tmp_path):
    (error,) = refused(store, write_jsonl(tmp_path / "list.jsonl", [PAIR, ["a", "b"]]))
    assert error.row == 2 and "expected an object" in error.reason and "a list" in error.reason


def test_missing_column_in_csv_is_one_file_level_error(store, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("prompt,chosen\nq,a\nq2,a2\n")
    (error,) = refused(store, path)
    assert error.field == "rejected" and "no 'rejected' column" in error.reason and "prompt, chosen" in error.reason


def test_missing_field_in_jsonl(store, tmp_path):
    (error,) = refused(store, write_jsonl(tmp_path / "m.jsonl", [PAIR, {"prompt": "q", "chosen": "a"}]))
    assert (error.row, error.field) == (2, "rejected") and error.reason.startswith("missing")


@pytest.mark.parametrize("field, value, reason", [
    ("chosen", "   ", "is empty"),
    ("prompt", "", "is empty"),
    ("prompt", 42, "expected text, got a number"),
    ("chosen", {"text": "hi"}, "expected text, got an object"),
    ("rejected", None, "expected text, got nothing (null)"),
    ("rejected", True, "expected text, got true/false"),
    ("chosen", [{"role": "user", "content": "hi"}], "expected one assistant message"),
    ("prompt", [{"role": "user"}], "message 1 should be"),
    ("prompt", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "bad prompt"),
    ("strength", 7, "must be a whole number from 1 to 5"),
    ("strength", "lots", "expected a number, got 'lots'"),
    ("margin", -1, "must be 0 or more"),
    ("id", ["x"], "expected text, got a list"),
])
def test_wrong_values_name_the_row_field_and_reason(store, tmp_path, field, value, reason):
    errors = refused(store, write_jsonl(tmp_path / "w.jsonl", [PAIR, PAIR | {"prompt": "ok 2"}, {**PAIR, field: value}]))
    assert [(e.row, e.field) for e in errors] == [(3, field)]
    assert reason in errors[0].reason


def test_utf16_is_refused_with_save_as_utf8(store, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("prompt,chosen,rejected\nq,a,b\n".encode("utf-16"))
    (error,) = refused(store, path)
    assert "UTF-16" in error.reason and "save it as UTF-8" in error.reason


def test_bytes_that_are_not_utf8_name_their_line(store, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("prompt,chosen,rejected\nq,a,b\ncafé,a,b\n".encode("latin-1"))
    (error,) = refused(store, path)
    assert (error.row, error.unit) == (3, "line") and "save the file as UTF-8" in error.reason


def test_huge_row(store, tmp_path):
    (error,) = refused(store, write_jsonl(tmp_path / "h.jsonl", [PAIR, {**PAIR, "chosen": "x" * 100_001}]))
    assert (error.row, error.field) == (2, "chosen") and "100,001 characters" in error.reason
    assert "huge row" in error.reason


def test_huge_csv_field(store, tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(f"prompt,chosen,rejected\nq,a,b\nq,{'x' * 200_000},b\n")
    (error,) = refused(store, path)
    assert error.row == 2 and "huge row" in error.reason


def test_duplicate_ids_in_the_file_name_both_rows(store, tmp_path):
    rows = [{**PAIR, "id": "a"}, {**PAIR, "id": "b", "prompt": "2"}, {**PAIR, "id": "a", "prompt": "3"}]
    (error,) = refused(store, write_jsonl(tmp_path / "d.jsonl", rows))
    assert (error.row, error.field) == (3, "id") and "'a' is also used by line 1" in error.reason


def test_repeated_rows_are_skipped_and_counted(store, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt,chosen,rejected\nq,a,b\nq2,a,b\nq,a,b\nq,a,b\nq2,a,b\n")
    result = import_file(store, path)
    assert result.ok and result.written == 2 and result.repeated == 3
    assert result.summary() == "Imported 2 comparisons from d.csv (3 repeated rows skipped)."
    assert sorted(r.prompt for r in store.comparisons()) == ["q", "q2"]


def test_a_repeated_row_with_its_id_is_skipped_too(store, tmp_path):
    rows = [{**PAIR, "id": "a"}, {**PAIR, "id": "a"}, {**PAIR, "id": "b"}]
    result = import_file(store, write_jsonl(tmp_path / "d.jsonl", rows))
    assert (result.written, result.repeated) == (2, 1) and sorted(r.id for r in store.comparisons()) == ["a", "b"]


@pytest.mark.parametrize("row", [
    {**PAIR, "rejected": PAIR["chosen"]},
    {**PAIR, "rejected": f"  {PAIR['chosen']}\n"},
    {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "Same."}],
     "rejected": [{"role": "assistant", "content": "Same. "}]},
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Yo", "rejected": "\n\nHuman: Hi\n\nAssistant: Yo"},
])
def test_a_pair_whose_chosen_equals_its_rejected_is_refused_naming_the_row(store, tmp_path, row):
    (error,) = refused(store, write_jsonl(tmp_path / "same.jsonl", [PAIR, row]))
    assert (error.row, error.field) == (2, "rejected") and "carries no preference" in error.reason


def test_ids_already_in_the_store(store, tmp_path):
    store.insert_many([record("a", record_id="taken")])
    rows = [{**PAIR, "id": "new"}, {**PAIR, "id": "taken", "prompt": "2"}]
    result = import_file(store, write_jsonl(tmp_path / "t.jsonl", rows))
    assert [(e.row, e.field) for e in result.errors] == [(2, "id")]
    assert "'taken' is already in the ratings database, for a different comparison" in result.errors[0].reason
    assert [r.id for r in store.comparisons()] == ["taken"]


def test_ragged_csv_rows(store, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("prompt,chosen,rejected\nq,a,b\nq2,a,b,extra\nq3,a\n")
    errors = refused(store, path)
    assert [(e.row, e.field) for e in errors] == [(2, ""), (3, "")]
    assert "has 4 fields but the header has 3" in errors[0].reason


def test_parquet_that_is_not_parquet(store, tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("prompt,chosen,rejected\nq,a,b\n")
    (error,) = refused(store, path)
    assert "not a Parquet file" in error.reason


def test_unknown_extension(store, tmp_path):
    path = tmp_path / "votes.xlsx"
    path.write_bytes(b"PK\x03\x04")
    (error,) = refused(store, path)
    assert "can't import '.xlsx' files" in error.reason and ".jsonl" in error.reason


def test_empty_file(store, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (error,) = refused(store, tmp_path / "empty.jsonl")
    assert error.row is None and error.reason == "the file is empty"


def test_header_only_csv_has_no_rows(store, tmp_path):
    (tmp_path / "h.csv").write_text("prompt,chosen,rejected\n\n")
    (error,) = refused(store, tmp_path / "h.csv")
    assert error.reason.startswith("no rows")


def test_file_too_large(store, tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [PAIR] * 5)
    (error,) = refused(store, path, ImportLimits(max_bytes=100))
    assert "over the 0 MB import limit" in error.reason and "split it" in error.reason


def test_missing_file(store, tmp_path):
    (error,) = refused(store, tmp_path / "nowhere.jsonl")
    assert "does not exist" in error.reason


def test_hh_transcripts_that_differ_before_the_last_answer(store, tmp_path):
    rows = [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED.replace("Hello!", "Hey")}]
    (error,) = refused(store, write_jsonl(tmp_path / "hh.jsonl", rows))
    assert error.field == "rejected" and "differs from 'chosen' before the last Assistant turn" in error.reason


def test_text_without_prompt_that_is_not_a_transcript(store, tmp_path):
    (error,) = refused(store, write_jsonl(tmp_path / "x.jsonl", [{"chosen": "a", "rejected": "b"}]))
    assert error.field == "chosen" and "whole conversation ending with the answer" in error.reason


def test_one_bad_row_among_good_ones_writes_nothing(store, tmp_path):
    rows = [{**PAIR, "prompt": f"q{i}"} for i in range(20)] + [{**PAIR, "chosen": ""}]
    (error,) = refused(store, write_jsonl(tmp_path / "p.jsonl", rows))
    assert error.row == 21


def test_the_report_lists_fifty_errors_and_counts_the_rest(store, tmp_path):
    result = import_file(store, write_jsonl(tmp_path / "p.jsonl", [{**PAIR, "chosen": ""}] * 60))
    assert result.error_count == 60 and len(result.errors) == 50
    lines = result.summary().splitlines()
    assert lines[0] == ("Nothing was imported: p.jsonl has 60 problems (a file is imported all or nothing; fix it "
                        "and retry):")
    assert lines[1] == "- line 1, field 'chosen': is empty" and lines[-1] == "… and 10 more."
