"""How reliable the ratings are: a rater against themself on repeated pairs, scores against scores and against the
votes, and rater against rater on the same pairs. Pure functions over records; the Reliability tab shows them.

The lecture collects pairwise comparisons because human judgments are noisy and miscalibrated: an absolute score
drifts (one person's 4 is another's 3, and the same person's 4 moves over a session) while "which of the two is
better?" is answered more consistently. Three measures let a person see that on their own data:

- **Self-consistency**: a Rate batch asks a share of its pairs a second time, later and with the sides swapped
  (``repeat_of``, :mod:`playground.ratings.batch`). On each pair voted both times by the same rater, the same
  verdict about the pair (a, b or tie: :func:`playground.ratings.agreement.verdict`; the stored sides a and b are
  the same in both records, only the screen swapped them), as a share and as Cohen's κ.
- **Scores**: the optional 1–5 scores of a repeated pair's answers given both times (the same score, within ±1),
  and over every vote with both answers scored (a repeat not counted), whether the higher-scored answer is the one voted better, and how
  often the two answers got the same score though the vote picked one (the scale can't tell what the comparison
  can: the calibration problem).
- **Between raters**: two raters who voted on the same pair — the same prompt and the same two answers, either
  one on the left — agree or not; raw agreement and κ per pair of raters. Each rater's first vote on a pair
  counts (a repeat is not a second opinion).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from playground.ratings.agreement import Agreement, cohen_kappa, verdict
from playground.ratings.selection import RaterKind, select
from playground.ratings.store import ComparisonRecord

FEW = 10
"""Below this many cases a measure is marked *few*: one vote more or less moves a share by 10 points or more."""

RATER_COLUMNS = ["rater", "votes", "pairs asked again", "same verdict", "κ", "scores given twice", "same score",
                 "within ±1", "votes with both scores", "higher score voted better", "same score, one voted better",
                 "note"]
PAIR_COLUMNS = ["rater", "other rater", "pairs both voted", "same verdict", "κ", "note"]

Key = tuple[str, str, tuple[str, str]]
"""A pair as the raters saw it: system prompt, conversation, and the two answers in a fixed (sorted) order."""


@dataclass(frozen=True)
class ScoreRetest:
    """A rater's 1–5 scores of the same answer given at both showings of a repeated pair."""

    n: int
    """Answers scored both times (up to two per repeated pair)."""
    same: int
    within_one: int

    @property
    def same_share(self) -> float:
        return self.same / self.n if self.n else math.nan

    @property
    def within_one_share(self) -> float:
        return self.within_one / self.n if self.n else math.nan


@dataclass(frozen=True)
class ScoreVote:
    """Whether a rater's scores say what their votes say, over the votes with both answers scored."""

    scored: int
    """Votes with both answers scored."""
    unequal: int
    """Of those, votes that picked a better answer (not a tie or both bad) with the two scores different."""
    agreed: int
    """Of ``unequal``, votes where the higher-scored answer is the one voted better."""
    equal: int
    """Votes that picked a better answer though both answers got the same score."""

    @property
    def agreed_share(self) -> float:
        return self.agreed / self.unequal if self.unequal else math.nan


@dataclass(frozen=True)
class RaterReliability:
    """One rater against themself."""

    rater: str
    votes: int
    """The rater's votes, a repeat not counted (as everywhere else)."""
    repeats: Agreement
    """Verdicts on each pair the rater voted on both times: first showing against the repeat."""
    scores: ScoreRetest
    score_vote: ScoreVote


@dataclass(frozen=True)
class RaterPair:
    """Two raters on the pairs both voted on."""

    first: str
    second: str
    agreement: Agreement


@dataclass(frozen=True)
class Report:
    """Everything the Reliability tab shows: each rater against themself, and each pair of raters with a pair in
    common."""

    raters: list[RaterReliability]
    pairs: list[RaterPair]
    repeats: int
    """Pairs voted on twice by the same rater, all raters together."""


def voted(records: Iterable[ComparisonRecord]) -> list[ComparisonRecord]:
    """The records with a vote that still counts (not deleted), in their order."""
    return [r for r in records if r.winner is not None and r.deleted_at is None]


def repeat_pairs(records: Iterable[ComparisonRecord]) -> list[tuple[ComparisonRecord, ComparisonRecord]]:
    """(first showing, repeat) for every repeated pair voted on both times by the same rater, in the repeats'
    order. A repeat voted by someone else than its original is no measure of self-consistency (it still counts
    between raters: :func:`inter_rater`); an unvoted or deleted one is left out."""
    kept = voted(records)
    by_id = {r.id: r for r in kept}
    return [(by_id[r.repeat_of], r) for r in kept
            if r.repeat_of in by_id and by_id[r.repeat_of].rater == r.rater]


def self_consistency(pairs: Iterable[tuple[ComparisonRecord, ComparisonRecord]]) -> Agreement:
    """How often the repeat got the same verdict (a, b or tie) as the first showing, and Cohen's κ."""
    pairs = list(pairs)
    return cohen_kappa([verdict(first) for first, _ in pairs], [verdict(again) for _, again in pairs])


def score_retest(pairs: Iterable[tuple[ComparisonRecord, ComparisonRecord]]) -> ScoreRetest:
    """Each answer of a repeated pair scored at both showings: the same score, and within ±1."""
    both = [(x, y) for first, again in pairs
            for x, y in ((first.score_a, again.score_a), (first.score_b, again.score_b))
            if x is not None and y is not None]
    return ScoreRetest(len(both), sum(x == y for x, y in both), sum(abs(x - y) <= 1 for x, y in both))


def score_vote(records: Iterable[ComparisonRecord]) -> ScoreVote:
    """Over the votes with both answers scored: does the higher score go to the answer voted better, and how many
    votes picked a better answer between two answers scored the same.

    Repeats are left out, as from the vote count: a repeat is there to measure self-consistency (:func:`score_retest`),
    and counting it here would make "votes with both scores" more than the votes."""
    scored = [r for r in voted(records) if r.repeat_of is None and r.score_a is not None and r.score_b is not None]
    picked = [r for r in scored if r.winner in ("a", "b")]
    unequal = [r for r in picked if r.score_a != r.score_b]
    agreed = sum(("a" if (r.score_a or 0) > (r.score_b or 0) else "b") == r.winner for r in unequal)
    return ScoreVote(len(scored), len(unequal), agreed, len(picked) - len(unequal))


def pair_key(record: ComparisonRecord) -> Key:
    """The pair a record shows, whichever answer is a and which is on the left: system prompt, conversation and
    both answers (spaces at the ends ignored), the answers sorted."""
    first, second = sorted((record.a.response.strip(), record.b.response.strip()))
    return (record.system_prompt.strip(), json.dumps(record.messages, sort_keys=True, ensure_ascii=False),
            (first, second))


def oriented_verdict(record: ComparisonRecord) -> str | None:
    """A vote as a verdict about the pair's answers in :func:`pair_key`'s order: ``first``, ``second`` or ``tie``
    (None without a vote), so two records that hold the same answers as a and b the other way round compare."""
    said = verdict(record)
    if said in (None, "tie"):
        return said
    won = (record.a if said == "a" else record.b).response.strip()
    return "first" if won == pair_key(record)[2][0] else "second"


def inter_rater(records: Iterable[ComparisonRecord]) -> list[RaterPair]:
    """Raw agreement and κ for every two raters who voted on at least one same pair, raters in name order.

    Each rater's first vote on a pair counts: the first showing before a repeat, then the oldest vote."""
    first: dict[str, dict[Key, str | None]] = {}
    ordered = sorted(voted(records), key=lambda r: (r.repeat_of is not None, r.voted_at or r.created_at))
    for record in ordered:
        first.setdefault(record.rater, {}).setdefault(pair_key(record), oriented_verdict(record))
    found = []
    for one, other in itertools.combinations(sorted(first), 2):
        shared = sorted(first[one].keys() & first[other].keys())
        if shared:
            found.append(RaterPair(one, other, cohen_kappa([first[one][k] for k in shared],
                                                           [first[other][k] for k in shared])))
    return found


def reliability(records: Iterable[ComparisonRecord], raters: RaterKind = "humans") -> Report:
    """Every measure for the votes of ``raters`` — people's by default, AI judges' or both
    (:mod:`playground.ratings.selection`) — repeats included (they are what is measured here)."""
    kept = voted(select(records, raters, repeats=True))
    pairs = repeat_pairs(kept)
    per_rater = []
    for name in sorted({r.rater for r in kept}):
        own = [r for r in kept if r.rater == name]
        mine = [p for p in pairs if p[1].rater == name]
        per_rater.append(RaterReliability(name, sum(r.repeat_of is None for r in own), self_consistency(mine),
                                          score_retest(mine), score_vote(own)))
    return Report(per_rater, inter_rater(kept), len(pairs))


# ---------------------------------------------------------------------------------------------- as tables


def share_text(part: int, whole: int) -> str:
    """``3 / 4 · 75%``, or "—" when there is nothing to take a share of."""
    return f"{part} / {whole} · {100 * part / whole:.0f}%" if whole else "—"


def kappa_text(agreement: Agreement) -> str:
    """κ to two decimals, or "—" where it is undefined (no cases, or one and the same verdict throughout)."""
    return "—" if math.isnan(agreement.kappa) else f"{agreement.kappa:.2f}"


def few_note(**counts: int) -> str:
    """Which measures rest on fewer than :data:`FEW` cases (but some): ``few repeats (4)``."""
    return "; ".join(f"few {what.replace('_', ' ')} ({n})" for what, n in counts.items() if 0 < n < FEW)


def rater_table(report: Report) -> pd.DataFrame:
    """One row per rater: their votes, self-consistency on repeated pairs (share and κ), scores given twice (the
    same, within ±1), and scores against votes; the note says which numbers rest on few cases."""
    rows = [(r.rater or "—", r.votes, r.repeats.n, share_text(r.repeats.agreed, r.repeats.n), kappa_text(r.repeats),
             r.scores.n, share_text(r.scores.same, r.scores.n), share_text(r.scores.within_one, r.scores.n),
             r.score_vote.scored, share_text(r.score_vote.agreed, r.score_vote.unequal),
             share_text(r.score_vote.equal, r.score_vote.unequal + r.score_vote.equal),
             few_note(repeats=r.repeats.n, scores_given_twice=r.scores.n, scored_votes=r.score_vote.scored))
            for r in report.raters]
    return pd.DataFrame(rows, columns=RATER_COLUMNS)


def pair_table(report: Report) -> pd.DataFrame:
    """One row per two raters with pairs in common: how many, the same verdict (share) and κ."""
    rows = [(p.first or "—", p.second or "—", p.agreement.n, share_text(p.agreement.agreed, p.agreement.n),
             kappa_text(p.agreement), few_note(pairs=p.agreement.n)) for p in report.pairs]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)
