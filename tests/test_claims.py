"""playground/ratings/claims.py: raters sharing a Rate batch are shown different pairs."""

from __future__ import annotations

import threading

from playground.ratings.claims import PairClaims
from playground.ratings.store import ComparisonRecord, Side, Store


def batch(store: Store, pairs: int) -> str:
    made = store.create_batch("shared", ["m1", "m2"], pairs)
    store.insert_many([ComparisonRecord(messages=[{"role": "user", "content": f"Q{i}"}], a=Side("m1", response="x"),
                                        b=Side("m2", response="y"), source="rate", blind=True, batch_id=made.id,
                                        position=i) for i in range(pairs)])
    return made.id


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_rater_gets_a_pair_nobody_else_is_reading_until_none_is_left(tmp_path):
    store, clock = Store(tmp_path / "ratings.sqlite3"), Clock()
    batch_id, claims = batch(store, 3), PairClaims(30, clock)
    first, second, third = (claims.next_pair(store, batch_id) for _ in range(3))
    assert [first.position, second.position, third.position] == [0, 1, 2]
    assert claims.next_pair(store, batch_id).position == 0  # all claimed: the lowest anyway, not "all done"

    store.vote(first, "a")
    clock.now = 20
    claims.hold(second.id)  # still on its rater's screen; the third rater's tab was closed
    clock.now = 40
    assert claims.next_pair(store, batch_id).position == 2  # the third's claim ran out, the second's was renewed
    store.vote(second, "b")
    assert claims.next_pair(store, batch_id).position == 2  # claimed again just now, but it is all that is left
    store.vote(third, "tie")
    assert claims.next_pair(store, batch_id) is None


def test_raters_asking_at_once_get_different_pairs(tmp_path):
    store = Store(tmp_path / "ratings.sqlite3")
    batch_id, claims = batch(store, 20), PairClaims()
    got, barrier = [], threading.Barrier(8)

    def rater() -> None:
        barrier.wait()
        got.append(claims.next_pair(store, batch_id).position)

    threads = [threading.Thread(target=rater) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(8))
