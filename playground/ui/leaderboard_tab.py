"""Leaderboard tab: every model and adapter ranked from the votes (Bradley–Terry with bootstrap intervals)."""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from playground.ratings import leaderboard as lb
from playground.ratings.selection import RATER_KINDS, check_kind, is_judge, select
from playground.ratings.store import Store
from playground.ui.rater import bind

INTRO = """
The lecture's reward model assumes **Bradley–Terry**: the chance that answer *i* beats answer *j* is
σ(r_i − r_j). The same model ranks whole models from your votes: each model gets a strength, fitted by maximum
likelihood over all votes at once, shown on the familiar Elo scale (a 400-point gap means 10:1 odds; the mean is
1000). The interval is a 95% bootstrap interval: models whose intervals overlap share a rank until more votes tell
them apart. Online Elo (updated vote by vote, K = 4) is shown as a second view. A model with an adapter is its own
entry.
"""

BOTH_BAD = {"count as a tie": "tie", "leave out": "drop"}


def heatmap(matrix: pd.DataFrame, title: str, percent: bool) -> go.Figure | None:
    """A models × opponents heatmap with the value written in each cell; None when there is nothing to draw."""
    if matrix.empty:
        return None
    names = lb.display_names(matrix.index)
    labels = [names[m] for m in matrix.index]
    values = matrix.to_numpy(dtype=float) * (100 if percent else 1)
    text = [["" if math.isnan(v) else (f"{v:.0f}%" if percent else f"{v:.0f}") for v in row] for row in values]
    figure = go.Figure(go.Heatmap(
        z=values, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="RdBu" if percent else "Blues",
        zmin=0 if percent else None, zmax=100 if percent else None, hoverongaps=False,
        colorbar={"title": "% won" if percent else "votes"},
        hovertemplate="%{y} vs %{x}: %{text}<extra></extra>"))
    figure.update_layout(title=title, xaxis_title="opponent", yaxis_title="model", yaxis_autorange="reversed",
                         height=420, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def bias_text(battles: pd.DataFrame) -> str:
    """Position bias in a sentence: how often the left answer won people's votes, and whether that could be chance.
    An AI judge's votes are left out: it read each pair in both orders, not the sides a person was shown (its own
    position consistency is in the Judge tab)."""
    judged = battles["rater"].map(is_judge).astype(bool)
    battles = battles[~judged]
    if battles.empty and judged.any():
        return ("**Position bias:** an AI judge reads each pair in both orders, so it has no left and right; see its "
                "position consistency in the Judge tab.")
    bias = lb.position_bias(battles)
    decisive = bias["left_wins"] + bias["right_wins"]
    if not decisive:
        return "**Position bias:** no decisive votes yet."
    verdict = "could well be chance" if bias["p_value"] >= 0.05 else "is unlikely to be chance — shuffle sides " \
                                                                       "(blind mode) to cancel it"
    return (f"**Position bias:** the left answer won {bias['left_wins']} of {decisive} decisive votes "
            f"({100 * bias['left_win_rate']:.0f}%; 50% = none), which {verdict} (binomial p = {bias['p_value']:.2g}). "
            f"Ties: {bias['ties']}, both bad: {bias['both_bad']}.")


def compute(store: Store, both_bad_label: str, rounds_value: float, seed_value: float,
            raters_value: str = "humans") -> list[Any]:
    """Everything the tab shows, from the votes now in the store of the chosen kind of rater — people's (the
    default), AI judges' or both (the /leaderboard endpoint; also run when the tab opens or a choice changes):
    summary, table, win-rate and count heatmaps, position bias, votes per rater. A pair asked again to measure
    consistency counts once. Fewer than 10 or more than 2000 bootstrap rounds are refused."""
    rounds, seed = int(rounds_value or 0), int(seed_value or 0)
    if not 10 <= rounds <= 2000:
        raise gr.Error("Bootstrap rounds must be between 10 and 2000.")
    try:
        kind = check_kind(raters_value or "humans")
    except ValueError as error:
        raise gr.Error(str(error)) from error
    both_bad = BOTH_BAD.get(both_bad_label, "tie")
    battles = lb.battles(select(store.comparisons(), kind))
    if battles.empty:
        empty = f"No votes from {RATER_KINDS[kind]} between named models yet: vote in the Compare or Rate tab."
        return [empty, pd.DataFrame(columns=lb.TABLE_COLUMNS), None, None, "", pd.DataFrame(columns=["rater",
                                                                                                     "votes"])]
    table = lb.leaderboard_table(battles, rounds=rounds, seed=seed, both_bad=both_bad)
    raters = lb.votes_per_rater(battles).rename_axis("rater").reset_index()
    summary = (f"{len(battles)} votes from {RATER_KINDS[kind]} between {len(table)} models · {rounds} bootstrap rounds (seed {seed})"
               f" · both-bad votes {'counted as ties' if both_bad == 'tie' else 'left out'}.")
    return [summary, table,
            heatmap(lb.win_rate_matrix(battles, both_bad), "How often the row model beat the column model", True),
            heatmap(lb.battle_count_matrix(battles), "Votes between each pair", False),
            bias_text(battles), raters]


def build(store: Store, tab: gr.Tab) -> None:
    """Lay out the Leaderboard tab and wire its events (layout first, events at the end)."""
    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        kinds = gr.Radio([(label, kind) for kind, label in RATER_KINDS.items()], value="humans", label="Votes from")
        both_bad = gr.Radio(list(BOTH_BAD), value="count as a tie", label="“Both are bad” votes")
        rounds = gr.Number(100, precision=0, minimum=10, maximum=2000, label="Bootstrap rounds")
        seed = gr.Number(0, precision=0, minimum=0, label="Bootstrap seed")
        refresh = gr.Button("Refresh", size="sm")
    summary = gr.Markdown("")
    table = gr.Dataframe(pd.DataFrame(columns=lb.TABLE_COLUMNS), interactive=False, label="Leaderboard")
    with gr.Row():
        win_rates = gr.Plot(label="Win rates")
        counts = gr.Plot(label="Battle counts")
    bias = gr.Markdown("")
    raters = gr.Dataframe(pd.DataFrame(columns=["rater", "votes"]), interactive=False, label="Votes per rater")

    outputs = [summary, table, win_rates, counts, bias, raters]
    inputs = [both_bad, rounds, seed, kinds]

    refresh_board = bind(compute, store)
    refresh.click(refresh_board, inputs, outputs, api_name="leaderboard")
    both_bad.change(refresh_board, inputs, outputs, api_visibility="private")
    kinds.change(refresh_board, inputs, outputs, api_visibility="private")
    tab.select(refresh_board, inputs, outputs, api_visibility="private")
