"""Leaderboard: Bradley–Terry against hand-solved cases, bootstrap, online Elo, matrices, bias, battle filtering."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from playground.ratings import leaderboard
from playground.ratings.leaderboard import (
    battle_count_matrix,
    battles,
    bootstrap,
    bootstrap_ratings,
    bradley_terry,
    display_name,
    display_names,
    leaderboard_table,
    model_identity,
    online_elo,
    position_bias,
    votes_per_rater,
    win_rate_matrix,
)
from playground.ratings.store import ComparisonRecord, Side

ELO_3_TO_1 = 400 * math.log10(3)  # 3:1 odds ≈ 190.85 points
ELO_2_TO_1 = 400 * math.log10(2)  # 2:1 odds ≈ 120.41 points


def record(a: str | None, b: str | None, winner: str | None, n: int = 0, *, adapter_a: str | None = None,
           adapter_b: str | None = None, left: str = "a", rater: str = "", deleted: bool = False) -> ComparisonRecord:
    return ComparisonRecord(messages=[{"role": "user", "content": "hi"}], a=Side(a, adapter_a), b=Side(b, adapter_b),
                            winner=winner, left_side=left, rater=rater,
                            voted_at=None if winner is None else f"2026-11-27T00:{n:06d}",
                            deleted_at="2026-11-28T00:00:00" if deleted else None)


def votes(*groups: tuple[str, str, str, int]) -> pd.DataFrame:
    """battles() of (model_a, model_b, winner, how many times), in the order given."""
    flat = [(a, b, w) for a, b, w, times in groups for _ in range(times)]
    return battles([record(a, b, w, n) for n, (a, b, w) in enumerate(flat)])


# ---------------------------------------------------------------------------------------------- Bradley–Terry


def test_three_wins_in_four_is_a_190_point_gap():
    ratings = bradley_terry(votes(("A", "B", "a", 2), ("B", "A", "b", 1), ("A", "B", "b", 1)), l2=0)
    assert ratings["A"] - ratings["B"] == pytest.approx(ELO_3_TO_1, abs=1e-3)
    assert ratings.mean() == pytest.approx(1000)


def test_two_wins_and_two_ties_equal_three_wins_in_four():
    ratings = bradley_terry(votes(("A", "B", "a", 2), ("A", "B", "tie", 2)), l2=0)
    assert ratings["A"] - ratings["B"] == pytest.approx(ELO_3_TO_1, abs=1e-3)


def test_symmetric_cycle_gives_equal_ratings():
    ratings = bradley_terry(votes(("A", "B", "a", 2), ("B", "C", "a", 2), ("C", "A", "a", 2)), l2=0)
    assert ratings.to_numpy() == pytest.approx([1000, 1000, 1000], abs=1e-3)


def test_three_models_whose_odds_multiply_are_fitted_exactly():
    # A beats B 2:1 and B beats C 2:1, so Bradley–Terry predicts A beats C 4:1; the data say exactly that, so the
    # likelihood equations hold at A − B = B − C = 400·log10(2).
    ratings = bradley_terry(votes(("A", "B", "a", 2), ("A", "B", "b", 1), ("B", "C", "a", 2), ("B", "C", "b", 1),
                                  ("C", "A", "b", 4), ("C", "A", "a", 1)), l2=0)
    assert ratings[["A", "B", "C"]].to_numpy() == pytest.approx([1000 + ELO_2_TO_1, 1000, 1000 - ELO_2_TO_1], abs=1e-3)


def test_tree_of_comparisons_matches_each_pair():
    # No cycles: each pair's gap is its own odds (A:B 3:1, B:C 1:1); the mean is anchored at 1000.
    ratings = bradley_terry(votes(("A", "B", "a", 3), ("A", "B", "b", 1), ("B", "C", "a", 1), ("B", "C", "b", 1)),
                            l2=0)
    assert ratings[["A", "B", "C"]].to_numpy() == pytest.approx(
        [1000 + 2 * ELO_3_TO_1 / 3, 1000 - ELO_3_TO_1 / 3, 1000 - ELO_3_TO_1 / 3], abs=1e-3)


def test_both_bad_counts_as_a_tie_or_is_dropped():
    data = votes(("A", "B", "a", 2), ("A", "B", "b", 1), ("A", "B", "both_bad", 2), ("A", "C", "both_bad", 1))
    as_tie = bradley_terry(data, both_bad="tie", l2=0)
    dropped = bradley_terry(data, both_bad="drop", l2=0)
    assert as_tie["A"] - as_tie["B"] == pytest.approx(400 * math.log10(3 / 2), abs=0.05)  # 2+1 : 1+1
    assert dropped["A"] - dropped["B"] == pytest.approx(ELO_2_TO_1, abs=1e-3)
    assert "C" in as_tie and "C" not in dropped  # C only ever had a both-bad vote
    with pytest.raises(ValueError, match="both_bad"):
        bradley_terry(data, both_bad="ignore")


def test_unbeaten_model_gets_a_finite_rating_and_l2_barely_moves_well_posed_ones():
    unbeaten = bradley_terry(votes(("A", "B", "a", 5)))
    assert np.isfinite(unbeaten).all() and unbeaten["A"] > unbeaten["B"] + 400
    well_posed = bradley_terry(votes(("A", "B", "a", 30), ("A", "B", "b", 10)))
    assert well_posed["A"] - well_posed["B"] == pytest.approx(ELO_3_TO_1, abs=1.0)


def test_disconnected_models_do_not_crash():
    data = votes(("A", "B", "a", 3), ("A", "B", "b", 1), ("C", "D", "a", 1), ("C", "D", "b", 1))
    for l2 in (leaderboard.L2, 0.0):
        ratings = bradley_terry(data, l2=l2)
        assert np.isfinite(ratings).all() and ratings.mean() == pytest.approx(1000)
        assert ratings["A"] - ratings["B"] == pytest.approx(ELO_3_TO_1, abs=3)
        assert ratings["C"] == pytest.approx(ratings["D"], abs=1e-3)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    wins = rng.integers(0, 9, (5, 5)).astype(float)
    np.fill_diagonal(wins, 0)
    theta = rng.normal(size=5)
    error = check_grad(lambda t: leaderboard._objective(t, wins, 0.3)[0],
                       lambda t: leaderboard._objective(t, wins, 0.3)[1], theta)
    assert error < 1e-5


# ---------------------------------------------------------------------------------------------- bootstrap

SAMPLE = (("A", "B", "a", 14), ("A", "B", "b", 8), ("A", "B", "tie", 3), ("B", "C", "a", 9), ("B", "C", "b", 6),
          ("A", "C", "a", 10), ("A", "C", "b", 3), ("C", "A", "both_bad", 2))


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    data = votes(*SAMPLE)
    first, again, other = bootstrap(data, rounds=50, seed=3), bootstrap(data, rounds=50, seed=3), \
        bootstrap(data, rounds=50, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["lower"], other["lower"])
    assert (first["lower"] < first["rating"]).all() and (first["rating"] < first["upper"]).all()
    assert first["rating"].to_dict() == pytest.approx(bradley_terry(data).to_dict())
    assert first["battles"].to_dict() == {"A": 40, "B": 40, "C": 30}
    with pytest.raises(ValueError, match="rounds"):
        bootstrap(data, rounds=0)


def test_multinomial_bootstrap_matches_resampling_rows():
    data, rounds = votes(*SAMPLE), 300
    ours = bootstrap_ratings(data, rounds=rounds, seed=0)
    rng = np.random.default_rng(1)
    naive = pd.DataFrame([bradley_terry(data.iloc[rng.integers(len(data), size=len(data))]) for _ in range(rounds)])
    for strong, weak in (("A", "B"), ("A", "C"), ("B", "C")):
        ours_gap, naive_gap = ours[strong] - ours[weak], naive[strong] - naive[weak]
        assert ours_gap.mean() == pytest.approx(naive_gap.mean(), abs=0.3 * naive_gap.std())
        assert ours_gap.std() == pytest.approx(naive_gap.std(), rel=0.15)


# ---------------------------------------------------------------------------------------------- other views


def test_online_elo_two_votes_by_hand():
    ratings = online_elo(votes(("A", "B", "a", 1), ("A", "B", "b", 1)), k=4)
    # Vote 1: equal ratings, expected 0.5 → A 1002, B 998. Vote 2: B expected 1/(1 + 10^(4/400)) → B gains 4(1 − E).
    gain = 4 * (1 - 1 / (1 + 10 ** (4 / 400)))
    assert ratings["B"] == pytest.approx(998 + gain) and ratings["A"] == pytest.approx(1002 - gain)
    assert ratings["B"] == pytest.approx(1000.02302, abs=1e-5)


def test_online_elo_follows_vote_order():
    forward = online_elo(votes(("A", "B", "a", 1), ("A", "B", "b", 1)))
    backward = online_elo(votes(("A", "B", "b", 1), ("A", "B", "a", 1)))
    assert forward["A"] < forward["B"] and backward["A"] > backward["B"]


def test_win_rate_and_battle_count_matrices():
    data = votes(("A", "B", "a", 2), ("B", "A", "a", 1), ("A", "B", "tie", 1), ("C", "B", "a", 1))
    rate = win_rate_matrix(data)
    assert rate.loc["A", "B"] == pytest.approx(2.5 / 4) and rate.loc["B", "A"] == pytest.approx(1.5 / 4)
    assert rate.loc["C", "B"] == 1 and rate.loc["B", "C"] == 0
    assert np.isnan(rate.loc["A", "C"]) and np.isnan(rate.loc["A", "A"])
    count = battle_count_matrix(data)
    assert count.to_numpy().tolist() == [[0, 4, 0], [4, 0, 1], [0, 1, 0]]
    assert list(count.index) == ["A", "B", "C"]


def test_position_bias_counts_the_left_side():
    data = battles([record("A", "B", "a", 0, left="a"), record("A", "B", "b", 1, left="b"),
                    record("A", "B", "b", 2, left="b"), record("A", "B", "a", 3, left="b"),
                    record("A", "B", "tie", 4), record("A", "B", "both_bad", 5)])
    bias = position_bias(data)
    assert {k: bias[k] for k in ("left_wins", "right_wins", "ties", "both_bad")} == \
        {"left_wins": 3, "right_wins": 1, "ties": 1, "both_bad": 1}
    assert bias["left_win_rate"] == pytest.approx(3 / 4)
    assert bias["p_value"] == pytest.approx(0.625)  # two-sided binomial test of 3 in 4 against 1/2


def test_votes_per_rater_most_first():
    data = battles([record("A", "B", "a", n, rater=r) for n, r in enumerate(["bo", "ana", "ana", "ana", "", "bo"])])
    assert votes_per_rater(data).to_dict() == {"ana": 3, "bo": 2, "": 1}
    assert list(votes_per_rater(data).index) == ["ana", "bo", ""]


# ---------------------------------------------------------------------------------------------- battles and names


def test_battles_keeps_only_votes_that_rate_models():
    records = [
        record("A", "B", "a", 5),
        record("A", "B", "b", 1),
        record("A", "B", None),  # not voted
        record("A", "B", "a", 2, deleted=True),
        record(None, "B", "a", 3),  # imported, no model
        record("A", "A", "tie", 4),  # a model against itself
        record("A", "A", "a", 6, adapter_b="/runs/sft/final"),  # the adapter makes it another model
    ]
    frame = battles(records)
    assert list(frame.columns) == leaderboard.COLUMNS
    assert frame[["model_a", "model_b", "winner"]].to_numpy().tolist() == [
        ["A", "B", "b"], ["A", "B", "a"], ["A", "A + /runs/sft/final", "a"]]  # oldest vote first


def test_imported_votes_without_a_vote_time_sort_by_creation():
    imported = ComparisonRecord(messages=[], a=Side("A"), b=Side("B"), winner="a", created_at="2026-01-01T00:00:00")
    assert battles([record("A", "B", "b", 1), imported])["voted_at"].tolist()[0] == "2026-01-01T00:00:00"


def test_identity_keeps_same_named_adapters_apart():
    one, two = Side("gemma-3-270m", "/runs/a/final"), Side("gemma-3-270m", "/runs/b/final")
    assert model_identity(Side(None)) is None and model_identity(Side("gemma-3-270m")) == "gemma-3-270m"
    assert model_identity(one) != model_identity(two)
    assert display_name(model_identity(one)) == "gemma-3-270m + final"
    assert display_name("/models/my-model") == "my-model"
    names = display_names([model_identity(one), model_identity(two), "gemma-3-270m"])
    assert names == {"gemma-3-270m + /runs/a/final": "gemma-3-270m + /runs/a/final",
                     "gemma-3-270m + /runs/b/final": "gemma-3-270m + /runs/b/final", "gemma-3-270m": "gemma-3-270m"}


# ---------------------------------------------------------------------------------------------- the table


def test_leaderboard_table_is_sorted_and_ranks_by_interval():
    data = votes(("A", "B", "a", 60), ("A", "B", "b", 10), ("B", "C", "a", 60), ("B", "C", "b", 10),
                 ("C", "D", "a", 11), ("C", "D", "b", 10))
    table = leaderboard_table(data, rounds=60)
    assert list(table.columns) == leaderboard.TABLE_COLUMNS
    assert table["model"].tolist() == ["A", "B", "C", "D"]
    assert table["rank"].tolist() == [1, 2, 3, 3]  # C and D can't be told apart yet, so they share a rank
    assert table["rating"].is_monotonic_decreasing and table["rating"].dtype.kind == "i"
    assert table["95% CI"].str.fullmatch(r"−\d+ / \+\d+").all()
    assert table.set_index("model").loc["A", "win rate %"] == pytest.approx(100 * 60 / 70, abs=0.05)
    assert table.set_index("model").loc["B", "battles"] == 140


def test_everything_copes_with_no_votes():
    empty = battles([record("A", "B", None)])
    assert empty.empty and list(empty.columns) == leaderboard.COLUMNS
    assert bradley_terry(empty).empty and online_elo(empty).empty and votes_per_rater(empty).empty
    assert bootstrap(empty).empty and leaderboard_table(empty).empty and win_rate_matrix(empty).empty
    assert math.isnan(position_bias(empty)["left_win_rate"])
