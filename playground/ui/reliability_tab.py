"""Reliability tab: how consistent the votes are — each rater against themself on repeated pairs, scores against
scores and votes, and rater against rater on the same pairs (:mod:`playground.ratings.reliability`)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from playground.core.row_files import counted
from playground.ratings import reliability as rel
from playground.ratings.selection import RATER_KINDS, check_kind
from playground.ratings.store import Store
from playground.ui.rater import bind

INTRO = f"""
The lecture collects **pairwise comparisons** because human judgments are noisy and miscalibrated: a score on an
absolute scale drifts — one person's 4 is another's 3, and your own 4 moves over a session — while "which of these
two answers is better?" is answered more consistently. This tab measures that on your own votes.

- **You against yourself.** A Rate batch asks a share of its pairs again later, sides swapped, without saying so.
  *Same verdict* is how often you said the same thing about the pair both times (a tie and "both bad" are one
  verdict: neither preferred). **Cohen's κ** corrects that for the agreement you would reach by chance with your own
  habits: 1 = fully consistent, 0 = no better than chance, below 0 = worse than chance.
- **Your scores.** If you scored the answers 1–5 as well: how often an answer shown again got the *same score*, and
  a score *within ±1*. Then, over every vote with both answers scored: how often the *higher score went to the answer
  you voted better*, and how often you gave both answers *the same score yet picked one* — the comparison saw a
  difference your scale did not. That is the calibration problem.
- **Rater against rater.** People who voted on the same pair — the same prompt and the same two answers, either one
  on the left (batches made with the same prompts, models and seed, or imported votes): how often they agree, and κ.

**Reading the numbers.** Every share comes with its count. Under {rel.FEW} cases the note says *few*: one vote more
or less moves such a share by 10 points or more, so read it as a hint, not a finding. κ is shown as "—" where it is
undefined: with nothing to compare, or when both sides gave one and the same verdict every time (chance agreement is
then 100 %, and there is nothing left to correct for). A judge's votes (`judge:…`) are left out unless you ask for them.
"""


# ---------------------------------------------------------------------------------------------- callbacks
# Module-level, over the store (fixed with ``bind`` in build()); the parameter left is the event's input, by the name
# the API documents.


def compute(store: Store, raters_value: str = "humans") -> list[Any]:
    """Everything the tab shows, from the votes now in the store of the chosen kind of rater — people's (the
    default), AI judges' or both (the /reliability endpoint; also run when the tab opens or the choice changes): a
    summary line, each rater against themself, and each two raters on the pairs both voted on. An unknown kind of
    rater is refused with a message."""
    try:
        kind = check_kind(raters_value or "humans")
    except ValueError as error:
        raise gr.Error(str(error)) from error
    report = rel.reliability(store.comparisons(), kind)
    return [summary(report, kind), rel.rater_table(report), rel.pair_table(report)]


def summary(report: rel.Report, kind: str) -> str:
    """The line above the tables: how much there is to measure, and what to do when there is nothing yet."""
    who = RATER_KINDS[kind]
    if not report.raters:
        return f"No votes from {who} yet: vote in the Compare or Rate tab."
    votes = sum(r.votes for r in report.raters)
    text = (f"{counted(votes, 'vote')} from {who} ({counted(len(report.raters), 'rater')}) · "
            f"{counted(report.repeats, 'pair')} voted twice by the same rater · "
            f"{counted(len(report.pairs), 'pair')} of raters with pairs in common.")
    if not report.repeats:
        text += (" No pair has been voted on twice yet: start a Rate batch with some pairs asked again (the default "
                 "10 %) and rate past them.")
    return text


def build(store: Store, tab: gr.Tab) -> None:
    """Lay out the Reliability tab and wire its events (layout first, events at the end)."""
    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        kinds = gr.Radio([(label, kind) for kind, label in RATER_KINDS.items()], value="humans", label="Votes from")
        refresh = gr.Button("Refresh", size="sm")
    text = gr.Markdown("")
    raters = gr.Dataframe(pd.DataFrame(columns=rel.RATER_COLUMNS), interactive=False,
                          label="Each rater against themself (pairs asked again; scores)")
    pairs = gr.Dataframe(pd.DataFrame(columns=rel.PAIR_COLUMNS), interactive=False,
                         label="Rater against rater (the same pairs)")

    outputs = [text, raters, pairs]
    refresh_view = bind(compute, store)
    refresh.click(refresh_view, kinds, outputs, api_name="reliability")
    kinds.change(refresh_view, kinds, outputs, api_visibility="private")
    tab.select(refresh_view, kinds, outputs, api_visibility="private")
