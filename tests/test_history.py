"""Vote history: filters, the detail view and votes per model pair."""

from __future__ import annotations

from dataclasses import replace

import pytest

from playground.ratings import history
from tests.preference_records import record, sample_records
from tests.test_verbatim import read


def test_table_lists_newest_first_with_short_names():
    records = sample_records()
    frame = history.table(records)
    assert list(frame.columns) == history.TABLE_COLUMNS
    assert len(frame) == len(records)
    assert frame.iloc[0]["voted (UTC)"] == "2025-03-02 08:30:00"  # the newest vote
    assert "smollm + dpo-1" in set(frame["model B"])  # an adapter is part of the model's name


def test_the_id_column_comes_last_and_still_finds_the_record():
    records = sample_records()
    frame = history.table(records)
    assert list(frame.columns)[0] == "voted (UTC)" and list(frame.columns)[-1] == "id"
    assert {r.id for r in records} == set(frame["id"])  # the detail view opens a row by its id


@pytest.mark.parametrize("filters, expected", [
    (history.Filters(winner="tie"), 1),
    (history.Filters(winner="a"), 4),
    (history.Filters(model="smollm + runs/dpo-1"), 1),
    (history.Filters(model="gemma"), 8),
    (history.Filters(rater="nobody"), 0),
    (history.Filters(since="2025-03-02"), 1),
    (history.Filters(until="2025-03-01"), 7),
    (history.Filters(since="2025-03-01", until="2025-03-01", winner="b"), 2),
])
def test_filters(filters, expected):
    assert len(history.table(sample_records(), filters)) == expected


@pytest.mark.parametrize("bad", [{"since": "yesterday"}, {"until": "2025-13-45"}, {"winner": "left"}])
def test_bad_filters_are_explained(bad):
    with pytest.raises(ValueError):
        history.Filters(**bad)


def test_model_options_cover_both_sides():
    options = dict(history.model_options(sample_records()))
    assert set(options.values()) == {"gemma", "smollm", "smollm + runs/dpo-1"}


def test_pair_counts_merge_both_orders():
    records = [record("a"), record("b"), record("a", model_a="smollm", model_b="gemma"), record("tie"),
               record("both_bad"), record("a", model_b=None)]  # the last has no model: not counted
    counts = history.pair_counts(records)
    assert len(counts) == 1
    row = counts.iloc[0]
    # gemma sorts first: gemma won twice (as A), smollm once as B and once as A.
    assert (row["first model"], row["votes"], row["first wins"], row["second wins"], row["tie"], row["both bad"]) \
        == ("gemma", 5, 1, 2, 1, 1)


def test_detail_shows_everything_about_a_comparison():
    shown = history.detail(record("b", system="Be brief.", strength=4, left="b", blind=True))
    for part in ("B better", "strength 4", "blind", "Be brief.", "Explain the moon landing.",
                 "People flew to the moon", "cheese", "&quot;seed&quot;: 1", "<code>smollm</code> (left)",
                 "<code>gemma</code> (right)"):
        assert part in shown


def test_detail_rounds_times_speeds_and_settings():
    base = record("a")
    timed = replace(base, a=replace(base.a, time_to_first_token=0.6963803410000082, tokens_per_second=35.23456,
                                    params={"temperature": 0.7500000000000001, "seed": 1}))
    shown = read(history.detail(timed)).text
    assert "TTFT 0.70 s" in shown and "tok/s 35.2" in shown and '"temperature": 0.75' in shown
    assert "0.69638" not in shown and "35.23456" not in shown and "0.7500000000000001" not in shown


def test_detail_shows_prompt_and_answers_verbatim():
    """Tags, type parameters and control tokens in model text are shown as text, not parsed (nor dropped)."""
    from tests.test_verbatim import TRICKY

    prompt, answer_a, answer_b = TRICKY[0], "<start_of_image>and the rest " + TRICKY[2], TRICKY[4]
    shown = read(history.detail(record("a", prompt=prompt, answer_a=answer_a, answer_b=answer_b,
                                       rater="<b>eve</b>", earlier=[{"role": "user", "content": "<i>hi</i>"},
                                                                    {"role": "assistant", "content": "$$"}])))
    for text in (prompt, answer_a, answer_b, "<b>eve</b>", "<i>hi</i>"):
        assert text in shown.text
    assert not {"img", "script", "i", "start_of_image"} & set(shown.tags)
