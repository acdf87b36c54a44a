"""Whose votes count: people's, an AI judge's, or both — and a repeated pair counted once.

An AI judge (:mod:`playground.ratings.judge`) votes as a rater of its own kind, named ``judge:<model>``: its votes
sit in the same table as people's, so the leaderboard, history, export and training read them the same way, but
they are never mixed with people's unless asked (``raters="all"``). A pair the Rate tab shows a second time to
measure consistency (``repeat_of``) is there for :mod:`playground.ratings.reliability` only: its vote is never a
second data point.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from playground.ratings.store import ComparisonRecord

RaterKind = Literal["humans", "judges", "all"]
RATER_KINDS: dict[str, str] = {"humans": "people", "judges": "AI judges", "all": "people and AI judges"}
"""Each choice and how the UI words it."""

JUDGE_PREFIX = "judge:"


def judge_rater(model: str) -> str:
    """The rater name an AI judge votes under: ``judge:<model>``."""
    return f"{JUDGE_PREFIX}{model}"


def is_judge(rater: str) -> bool:
    """Whether a rater name is an AI judge's (people can't take such a name: :func:`human_rater_error`)."""
    return rater.startswith(JUDGE_PREFIX)


def human_rater_error(name: str) -> str | None:
    """Why a person can't vote under ``name`` (it would pass for an AI judge), or None when it is fine."""
    if is_judge(name.strip()):
        return f"Rater names starting with {JUDGE_PREFIX!r} are kept for AI judges: pick another name."
    return None


def check_kind(raters: str) -> RaterKind:
    """``raters`` as a :data:`RaterKind`, or ValueError naming the choices."""
    if raters not in RATER_KINDS:
        raise ValueError(f"raters must be one of {', '.join(RATER_KINDS)}, got {raters!r}")
    return raters  # type: ignore[return-value]


def kind_of(record: ComparisonRecord) -> Literal["humans", "judges"]:
    return "judges" if is_judge(record.rater) else "humans"


def select(records: Iterable[ComparisonRecord], raters: RaterKind = "humans",
           repeats: bool = False) -> list[ComparisonRecord]:
    """The records whose votes count for ``raters`` (people's by default), in their order. Repeated pairs are left
    out unless ``repeats``: the first showing of a pair is its vote, the repeat measures consistency only. A judge
    that judged a pair again (with a new rubric) counts once, with its newest verdict."""
    kind = check_kind(raters)
    records = list(records)
    latest: dict[tuple[str, str], ComparisonRecord] = {}  # a judge asked again (a new rubric): its newest verdict
    for r in records:
        if r.judge_of is not None:
            key = (r.rater, r.judge_of)
            if key not in latest or (r.voted_at or r.created_at) >= (latest[key].voted_at or latest[key].created_at):
                latest[key] = r
    return [r for r in records
            if (kind == "all" or kind_of(r) == kind) and (repeats or r.repeat_of is None)
            and (r.judge_of is None or latest[(r.rater, r.judge_of)] is r)]
