"""bench/raters.py: a few logged-in raters on one batch through the real app; every acknowledged vote is stored."""

from __future__ import annotations

import argparse

import pytest

from bench.raters import check, prepare, rate, report
from playground.core.settings import Settings
from playground.ratings.store import Store
from tests.app_server import serve


@pytest.mark.slow
def test_raters_sharing_a_batch_through_the_api_lose_no_acknowledged_vote(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1.0, auth=("ann", "secret"),
                        prepare_models=False)
    batch_ids = prepare(settings.data_dir, 200, 1)
    store = Store(settings.ratings_db)
    with serve(settings) as client:
        result = rate(client.src, settings.auth, batch_ids, 3, 4)
    votes = result.all("votes")
    acknowledged = result.acknowledged
    assert acknowledged and not [e for r in result.raters for e in r.errors]  # no tick replaced a pair on screen
    assert all(r.ticks for r in result.raters)  # each session's timer ticked (once a second; calls are slow here)
    # Every vote call was either acknowledged or told another rater's vote landed first; nothing else.
    assert len(acknowledged) + sum(r.already_voted for r in result.raters) == len(votes) <= len(result.all("opens"))
    stored = [c for c in store.comparisons() if c.batch_id == batch_ids[0]]
    assert len(stored) == len(acknowledged) and {c.rater for c in stored} == {"ann"}  # the login, not typed names
    assert check(store, batch_ids, result, "ann") == []

    # The check sees a lost vote, a changed one and a vote nobody was told about.
    (first, _), (second, _) = acknowledged[:2]
    by_pair = {int(c.prompt.split()[1].rstrip(":")): c for c in stored}
    store.clear_vote(by_pair[first].id)
    flipped = {"a": "b", "b": "a", "tie": "both_bad", "both_bad": "tie"}[by_pair[second].winner]
    store.vote(by_pair[second], flipped, rater="ann")
    stray = store.at_position(batch_ids[0], 199)  # the batch's last pair: far beyond what 3 raters reach in 4 s
    assert stray.winner is None
    store.vote(stray, "a", rater="ann")
    problems = check(store, batch_ids, result, "ann")
    assert f"acknowledged vote on pair {first} is not in the database" in problems
    assert any(p.startswith(f"pair {second}: acknowledged") for p in problems)
    assert f"pair {stray.position} has a vote nobody was told about" in problems
    # ... unless that pair's vote call failed before its answer came back: saved, never acknowledged, not lost.
    result.raters[0].unanswered.append((stray.position, "a"))
    assert f"pair {stray.position} has a vote nobody was told about" not in check(store, batch_ids, result, "ann")
    result.raters[0].unanswered.clear()

    text = report(result, problems, argparse.Namespace(raters=3, batches=1), (1.0, 2.0), len(stored))
    assert f"votes acknowledged: **{len(acknowledged)}**" in text and "rater: **NO** — 3 problems" in text
    assert f"| the tab's 1 s timer (`/rate_tick`, every rater) | {len(result.all('ticks')) / result.seconds:.1f} |" \
        in text
