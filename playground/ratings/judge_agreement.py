"""How far an AI judge agrees with people, and with itself: the Judge tab's agreement panel, as pure functions.

A judge is worth its votes only where it agrees with people on the pairs both judged. Per model pair and overall,
this gives raw agreement and Cohen's κ (:mod:`playground.ratings.agreement`: chance-corrected; *both bad* counts
as a tie), the pairs where they disagree — to read, not just count — and the judge's **position consistency**: how
often its two orders of a pair gave the same verdict (a judge that just likes the first answer scores low). A judge
counts once per pair, by its latest vote: after a rubric change, the new rubric's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from playground.core.verbatim import escape, verbatim_html
from playground.ratings.agreement import Agreement, cohen_kappa, verdict
from playground.ratings.leaderboard import display_names, model_identity
from playground.ratings.selection import is_judge, select
from playground.ratings.store import ComparisonRecord

TABLE_COLUMNS = ["model pair", "pairs", "agreed", "raw agreement", "Cohen's κ"]
SHOWN_DISAGREEMENTS = 50
"""The most disagreeing pairs the panel writes out (the summary says how many there are)."""


@dataclass(frozen=True)
class Matched:
    """One pair a person voted on and the judge judged."""

    human: ComparisonRecord
    judge: ComparisonRecord

    @property
    def agree(self) -> bool:
        return verdict(self.human) == verdict(self.judge)


@dataclass(frozen=True)
class JudgeReport:
    """A judge against people, and against itself."""

    judge: str
    matched: list[Matched]
    """Every pair with a person's vote and this judge's, oldest vote first."""
    overall: Agreement
    per_pair: pd.DataFrame
    judged: int
    """How many votes the judge has (with or without a person's vote on the pair)."""
    consistent: int
    """Of those, how many its two orders agreed on."""
    unreadable: int
    """Of those, how many had an order with no readable verdict."""

    @property
    def disagreements(self) -> list[Matched]:
        return [m for m in self.matched if not m.agree]

    @property
    def consistency(self) -> float:
        """Share of the judge's votes whose two orders agreed (NaN with none)."""
        return self.consistent / self.judged if self.judged else math.nan

    def summary(self) -> str:
        """The panel's Markdown headline."""
        if not self.judged:
            return f"`{self.judge}` has no votes yet: judge a batch or the stored comparisons above."
        consistency = (f"**Position consistency:** both orders gave the same verdict on {self.consistent} of "
                       f"{self.judged} pairs ({100 * self.consistency:.0f}%)"
                       + (f"; {self.unreadable} had an order with no readable verdict" if self.unreadable else "")
                       + ". A disagreement between orders is stored as a tie.")
        if not self.overall.n:
            return f"No pair judged by `{self.judge}` has a person's vote yet.\n\n{consistency}"
        return (f"**Agreement with people** on {self.overall.n} pairs both voted on: "
                f"{100 * self.overall.raw:.0f}% the same verdict (a, b or tie; both bad counts as a tie), "
                f"Cohen's κ {_kappa(self.overall.kappa)} (0 = what chance gives, 1 = always the same). "
                f"{len(self.disagreements)} disagreements below.\n\n{consistency}")


def _kappa(kappa: float) -> str:
    return "undefined (one label throughout)" if math.isnan(kappa) else f"{kappa:.2f}"


def judges(records: Iterable[ComparisonRecord]) -> list[str]:
    """The AI judges (rater names ``judge:<model>``) with votes among ``records``, by name."""
    return sorted({r.rater for r in records if is_judge(r.rater) and r.judge_of})


def _pair_key(record: ComparisonRecord) -> tuple[str, str]:
    a, b = model_identity(record.a) or "(imported)", model_identity(record.b) or "(imported)"
    return (a, b) if a <= b else (b, a)


def _ordered(label: str | None, record: ComparisonRecord) -> str | None:
    """A verdict about a record's sides as one about the pair's models in name order: ``first``, ``second``, tie."""
    if label in (None, "tie"):
        return label
    a, b = model_identity(record.a) or "(imported)", model_identity(record.b) or "(imported)"
    winner, loser = (a, b) if label == "a" else (b, a)
    return "first" if winner < loser or (winner == loser and label == "a") else "second"


def report(records: Iterable[ComparisonRecord], judge: str) -> JudgeReport:
    """``judge`` (a rater name ``judge:<model>``) against people's votes among ``records`` (deleted ones aside).

    The judge's vote on a pair is its latest one: a judge run again with another rubric votes on the same pairs
    again, and two rubrics' votes on one pair are never mixed — nor counted twice in ``judged`` and the position
    consistency. When that latest vote is deleted the pair has no vote from the judge: an older rubric's vote
    doesn't come back in its place. People's votes are :func:`~playground.ratings.selection.select`'s (a repeated pair once). κ per model pair reads
    each vote as "first model / second model / tie" in name order, so a label means the same on every pair of the
    row whichever side each model was on; the overall κ reads it as side a / side b / tie, as
    :func:`~playground.ratings.agreement.verdict` does."""
    records = list(records)
    own = [r for r in records if r.rater == judge and r.judge_of and r.winner is not None]
    newest = {r.judge_of: r for r in sorted(own, key=lambda r: (r.voted_at or r.created_at, r.created_at))}
    latest = {pair: r for pair, r in newest.items() if r.deleted_at is None}
    records = [r for r in records if r.deleted_at is None]
    matched = [Matched(h, latest[h.id]) for h in select(records, "humans") if h.winner is not None and h.id in latest]
    overall = cohen_kappa([verdict(m.human) for m in matched], [verdict(m.judge) for m in matched])
    groups: dict[tuple[str, str], list[Matched]] = {}
    for m in matched:
        groups.setdefault(_pair_key(m.human), []).append(m)
    names = display_names({model for pair in groups for model in pair if model != "(imported)"})
    rows = []
    for (first, second), items in sorted(groups.items()):
        found = cohen_kappa([_ordered(verdict(m.human), m.human) for m in items],
                            [_ordered(verdict(m.judge), m.judge) for m in items])
        rows.append([f"{names.get(first, first)} vs {names.get(second, second)}", found.n, found.agreed,
                     round(found.raw, 3), round(found.kappa, 3)])
    if matched:
        rows.append(["all pairs", overall.n, overall.agreed, round(overall.raw, 3), round(overall.kappa, 3)])
    judgements = [r.judgement or {} for r in latest.values()]
    return JudgeReport(
        judge=judge, matched=matched, overall=overall, per_pair=pd.DataFrame(rows, columns=TABLE_COLUMNS),
        judged=len(latest), consistent=sum(bool(j.get("consistent")) for j in judgements),
        unreadable=sum(any(o.get("verdict") is None for o in j.get("orders", [])) for j in judgements))


VERDICT_WORDS = {"a": "A better", "b": "B better", "tie": "tie"}


def disagreements_html(found: JudgeReport, limit: int = SHOWN_DISAGREEMENTS) -> str:
    """The pairs where the judge and the person disagree, to read: the prompt, both answers, the person's and the
    judge's verdicts and the judge's own words in each order — everything written by a model or a person shown
    verbatim (:mod:`playground.core.verbatim`)."""
    items = found.disagreements
    if not items:
        return ""
    blocks = []
    for m in items[:limit]:
        human, judged = m.human, m.judge
        names = {"a": model_identity(human.a) or "(imported)", "b": model_identity(human.b) or "(imported)"}
        orders = "".join(
            f"<li>shown {escape(' then '.join(str(s).upper() for s in order.get('shown', [])))}: verdict "
            f"<b>{escape(str(order.get('verdict') or 'unreadable'))}</b>{verbatim_html(str(order.get('text', '')))}"
            f"</li>" for order in (judged.judgement or {}).get("orders", []))
        blocks.append(
            f"<details><summary>{escape(' '.join(human.prompt.split())[:100])} — person: "
            f"<b>{escape(VERDICT_WORDS.get(verdict(human) or '', '?'))}</b> "
            f"({escape(human.rater or 'anonymous')}), judge: <b>{escape(VERDICT_WORDS.get(verdict(judged) or '', '?'))}"
            f"</b></summary>"
            f"{_context_html(human)}<p><b>Prompt:</b></p>{verbatim_html(human.prompt)}"
            f"<p><b>A</b> <code>{escape(names['a'])}</code>:</p>{verbatim_html(human.a.response)}"
            f"<p><b>B</b> <code>{escape(names['b'])}</code>:</p>{verbatim_html(human.b.response)}"
            f"<p><b>The person's reason:</b> {escape(human.rationale or '(none)')} · "
            f"<b>the judge's:</b> {escape(judged.rationale or '(none)')}</p>"
            f"<p><b>The judge's answers:</b></p><ul>{orders}</ul></details>")
    more = f"<p>The first {limit} of {len(items)} are shown.</p>" if len(items) > limit else ""
    return f'<div id="judge-disagreements">{"".join(blocks)}{more}</div>'


def _context_html(record: ComparisonRecord) -> str:
    """The system prompt and earlier turns a pair's answers followed, verbatim (nothing for a one-turn pair)."""
    system = f"<p><b>System prompt:</b></p>{verbatim_html(record.system_prompt)}" if record.system_prompt else ""
    turns = "".join(f"<li><b>{escape(m['role'])}</b>:{verbatim_html(m['content'])}</li>"
                    for m in record.messages[:-1])
    return system + (f"<p><b>Earlier turns:</b></p><ul>{turns}</ul>" if turns else "")
