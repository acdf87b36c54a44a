"""The Leaderboard tab's refresh, called directly (no server): empty store, refused settings, and the board drawn
from votes with the both-bad choice applied."""

from __future__ import annotations

import gradio as gr
import pytest

from playground.ratings.store import Store
from playground.ui import leaderboard_tab
from tests.preference_records import record


def test_no_votes_says_where_to_vote_and_draws_nothing(settings):
    summary, table, win_rates, counts, bias, raters = leaderboard_tab.compute(Store(settings.ratings_db),
                                                                              "count as a tie", 100, 0)
    assert "No votes from people between named models yet" in summary
    assert table.empty and win_rates is None and counts is None and bias == "" and raters.empty


@pytest.mark.parametrize("rounds", [0, 9, 2001, None])
def test_bootstrap_rounds_out_of_range_are_refused(settings, rounds):
    with pytest.raises(gr.Error, match="between 10 and 2000"):
        leaderboard_tab.compute(Store(settings.ratings_db), "count as a tie", rounds, 0)


def test_the_board_ranks_the_voted_models_and_says_how_both_bad_counted(settings):
    store = Store(settings.ratings_db)
    for winner in ["a", "a", "a", "b", "both_bad"]:
        store.save(record(winner, rater="ann" if winner == "a" else "bob"))
    summary, table, win_rates, counts, bias, raters = leaderboard_tab.compute(store, "count as a tie", 20.0, 3.0)
    assert summary == "5 votes from people between 2 models · 20 bootstrap rounds (seed 3) · both-bad votes counted as ties."
    assert len(table) == 2 and win_rates is not None and counts is not None
    assert bias.startswith("**Position bias:** the left answer won 3 of 4 decisive votes")
    assert dict(zip(raters["rater"], raters["votes"])) == {"ann": 3, "bob": 2}

    summary = leaderboard_tab.compute(store, "leave out", 20, 3)[0]
    assert summary.endswith("both-bad votes left out.")
    assert leaderboard_tab.compute(store, "not a choice", 20, 3)[0].endswith("counted as ties.")  # the default
