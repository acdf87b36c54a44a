"""How far two sets of judgments of the same items agree: raw agreement and Cohen's κ.

Used for a person against an AI judge (:mod:`playground.ratings.judge`), a person against themself on a repeated
pair, and two people who rated the same pairs (:mod:`playground.ratings.reliability`). Cohen's κ (Cohen 1960)
corrects raw agreement for the agreement two raters would reach by chance with their own label frequencies:
κ = (p_o − p_e) / (1 − p_e). Written here because none of our dependencies has it (scikit-learn's
``cohen_kappa_score`` would be a large dependency for one formula).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from playground.ratings.store import ComparisonRecord

Verdict = str
"""a, b or tie (see :func:`verdict`)."""


def verdict(record: ComparisonRecord) -> Verdict | None:
    """A vote as one of three labels about the pair, whoever showed it on which side: ``a``, ``b``, or ``tie``
    (a tie or both bad: neither answer preferred). None when the record has no vote."""
    if record.winner is None:
        return None
    return record.winner if record.winner in ("a", "b") else "tie"


@dataclass(frozen=True)
class Agreement:
    """Agreement of two raters over the same ``n`` items."""

    n: int
    agreed: int
    kappa: float
    """Cohen's κ; NaN when it is undefined (no items, or both raters gave one and the same label throughout, so
    chance agreement is 1)."""

    @property
    def raw(self) -> float:
        """Share of items with the same label (NaN without items)."""
        return self.agreed / self.n if self.n else math.nan


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> Agreement:
    """Raw agreement and Cohen's κ of two raters' labels for the same items, item i being ``first[i]`` and
    ``second[i]``. Raises ValueError when the sequences differ in length."""
    if len(first) != len(second):
        raise ValueError(f"two raters' labels must cover the same items: {len(first)} and {len(second)} given")
    n = len(first)
    if not n:
        return Agreement(0, 0, math.nan)
    agreed = sum(x == y for x, y in zip(first, second))
    left, right = Counter(first), Counter(second)
    expected = sum(left[label] * right[label] for label in left) / (n * n)
    observed = agreed / n
    kappa = math.nan if expected >= 1.0 else (observed - expected) / (1.0 - expected)
    return Agreement(n, agreed, kappa)
