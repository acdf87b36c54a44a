"""Which pairs of a Rate batch are on some rater's screen, so that raters sharing a batch are shown different pairs.

Without this, every rater of a batch is shown the batch's lowest unrated pair: with twenty raters, twenty people
read the same pair, one vote lands and nineteen are told it already has one (``bench/raters.py`` measured 76 of
1,046 votes landing). Here, a pair handed to a rater is *claimed* for :data:`CLAIM_SECONDS` and the next rater gets
the lowest unrated pair nobody has claimed; the Rate tab renews the claim on the pair on screen every second (its
timer), so a pair stays with whoever is reading it, and a closed tab lets it go within :data:`CLAIM_SECONDS`.

Claims live in the app's memory, not in the database: they are only about who is looking now, and a restart
forgets them harmlessly. They steer, they don't lock: when every unrated pair is claimed (the end of a batch), the
lowest is shown anyway, and if two raters then vote on it, the store keeps the first vote and tells the second
(``Store.vote(..., unrated_only=True)``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from playground.ratings.store import ComparisonRecord, Store

CLAIM_SECONDS = 30.0
"""How long a pair stays with the rater it was shown to without being renewed (the Rate tab renews it every second
while it is on screen)."""


class PairClaims:
    """The claimed pairs of one app (every session's), thread-safe: pair id → when the claim runs out."""

    def __init__(self, seconds: float = CLAIM_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self._clock = seconds, clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, pair_id: str) -> None:
        """Claim (or renew the claim on) the pair ``pair_id``: it is on a rater's screen."""
        with self._lock:
            self._until[pair_id] = self._clock() + self.seconds

    def next_pair(self, store: Store, batch_id: str) -> ComparisonRecord | None:
        """The batch's next unrated pair that no rater has on screen, claimed for the caller; when every unrated
        pair is claimed, the lowest unrated one anyway; None when none is left. Picking and claiming are one step
        (under the lock), so two raters asking at once get different pairs."""
        with self._lock:
            now = self._clock()
            self._until = {pair: until for pair, until in self._until.items() if until > now}
            record = store.next_unrated(batch_id, exclude=self._until) or store.next_unrated(batch_id)
            if record is not None:
                self._until[record.id] = now + self.seconds
            return record
