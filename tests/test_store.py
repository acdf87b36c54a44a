"""The ratings store: votes are durable (concurrent writers, a killed process), schema migrations, batches."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from playground.ratings.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AlreadyVoted,
    ComparisonRecord,
    Side,
    Store,
    StoreError,
    _statements,
)


def record(prompt: str = "Say hi", **fields) -> ComparisonRecord:
    a = Side("tiny-base", params={"seed": 1, "temperature": 0.7}, response="hello", prompt_tokens=3,
             completion_tokens=1, time_to_first_token=0.1, tokens_per_second=20.0, finish_reason="eos")
    b = Side("tiny-chat", adapter="/adapters/x", response="hi there", finish_reason="length")
    return ComparisonRecord(messages=[{"role": "user", "content": prompt}], a=a, b=b, **fields)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "ratings.sqlite3")


def test_new_database_is_wal_and_current(store):
    assert store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_vote_round_trips_the_whole_record(store):
    original = record(system_prompt="Be brief.", left_side="b", blind=True)
    store.vote(original, "b", strength=4, rationale="  clearer  ", rater="ana")
    saved = store.get(original.id)
    assert saved.winner == "b" and saved.strength == 4 and saved.rationale == "clearer" and saved.rater == "ana"
    assert saved.a == original.a and saved.b == original.b
    assert (saved.messages, saved.system_prompt, saved.left_side, saved.blind) == \
        (original.messages, "Be brief.", "b", True)
    assert saved.voted_at and saved.app_version
    assert store.raters() == ["ana"]


def test_changing_a_vote_updates_the_record_instead_of_adding_one(store):
    first = store.vote(record(), "a")
    store.vote(first, "tie")
    store.vote(first, "both_bad", strength=2)
    assert store.count() == 1
    assert store.get(first.id).winner == "both_bad"


@pytest.mark.parametrize("winner, strength", [("left", None), ("a", 0), ("a", 6), ("a", 2.5), ("a", True)])
def test_bad_votes_are_refused_and_change_nothing(store, winner, strength):
    with pytest.raises(ValueError):
        store.vote(record(), winner, strength=strength)
    assert store.count() == 0


def test_soft_delete_and_restore(store):
    saved = store.vote(record(), "a")
    assert store.delete(saved.id)
    assert store.count() == 0 and store.comparisons() == []
    assert store.get(saved.id).deleted_at is not None
    assert store.restore(saved.id)
    assert store.count() == 1


def test_insert_many_is_all_or_nothing(store):
    existing = store.vote(record("one"), "a")
    fresh = [record("two", winner="a"), record("three", winner="b")]
    with pytest.raises(StoreError, match="already in the database"):
        store.insert_many(fresh + [existing])
    assert store.count() == 1
    store.insert_many(fresh)
    assert store.count() == 3


def test_votes_from_eight_threads_are_all_stored(store):
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def voter(n: int) -> None:
        try:
            for i in range(25):
                saved = store.vote(record(f"thread {n} vote {i}"), "a" if i % 2 else "b", rater=f"rater{n}")
                with lock:
                    ids.append(saved.id)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=voter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 200 == len(set(ids))
    assert {c.id for c in store.comparisons()} == set(ids)
    assert len(store.raters()) == 8
    assert store.integrity_check() == "ok"


VOTER = textwrap.dedent("""
    import sys
    from playground.ratings.store import Store, ComparisonRecord, Side
    store = Store(sys.argv[1])
    i = 0
    while True:
        r = ComparisonRecord(messages=[{"role": "user", "content": f"q{i}" * 50}], a=Side("m1", response="x" * 500),
                             b=Side("m2", response="y" * 500))
        saved = store.vote(r, "a" if i % 3 else "tie", rater="killer")
        print(saved.id, flush=True)  # acknowledged: the vote is committed
        i += 1
""")


def test_a_killed_process_loses_no_acknowledged_vote(tmp_path):
    path = tmp_path / "ratings.sqlite3"
    Store(path)
    process = subprocess.Popen([sys.executable, "-c", VOTER, str(path)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    acknowledged = []
    for line in process.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) == 60:
            break
    process.send_signal(signal.SIGKILL)  # in the middle of the stream: it is writing the next votes
    rest = process.stdout.read()  # lines it printed before dying also count as acknowledged
    process.wait()
    acknowledged += rest.split()
    store = Store(path)  # reopening replays the WAL
    assert store.integrity_check() == "ok"
    stored = {c.id: c for c in store.comparisons()}
    assert set(acknowledged) <= set(stored)
    assert all(stored[i].rater == "killer" and stored[i].winner in ("a", "tie") for i in acknowledged)
    assert len(stored) - len(acknowledged) <= 1  # at most the vote committed but not yet printed


def test_migrates_an_old_database_keeping_its_votes(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a database from the first release: migration 1 only
        for statement in _statements(MIGRATIONS[0]):
            db.execute(statement)
        db.execute("PRAGMA user_version=1")
        db.execute("INSERT INTO comparisons (id, created_at, updated_at, voted_at, source, messages, model_a, side_a,"
                   " response_a, model_b, side_b, response_b, left_side, blind, winner, app_version) VALUES "
                   "('old', 't', 't', 't', 'compare', '[{\"role\": \"user\", \"content\": \"q\"}]', 'm1', '{}', "
                   "'x', 'm2', '{}', 'y', 'a', 0, 'b', '0.0.1')")
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    old = store.get("old")
    assert old.winner == "b" and old.batch_id is None and not old.skipped


def test_a_database_from_a_newer_app_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_a_damaged_file_gets_a_clear_message(tmp_path):
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="move it aside"):
        Store(path)


def test_batch_progress_skip_and_undo(store):
    batch = store.create_batch("set", ["m1", "m2"], total=3)
    items = [record(f"q{i}", source="rate", batch_id=batch.id, position=i) for i in range(3)]
    store.insert_many(items[:2])
    assert store.progress(batch.id).summary() == "0 / 3 rated · 2 / 3 generated"
    first = store.next_unrated(batch.id)
    assert first.id == items[0].id
    store.skip(first.id)
    second = store.next_unrated(batch.id)
    assert second.id == items[1].id
    store.vote(second, "a")
    assert store.progress(batch.id).summary() == "1 / 3 rated · 1 skipped · 2 / 3 generated"
    assert store.next_unrated(batch.id) is None
    assert store.next_unrated(batch.id, include_skipped=True).id == first.id
    store.clear_vote(store.last_voted(batch.id).id)  # U: undo the last vote
    assert store.progress(batch.id).rated == 0
    assert store.next_unrated(batch.id).id == second.id


class FullDiskStore(Store):
    """A store whose database may not grow: SQLite answers SQLITE_FULL, exactly as on a full disk."""

    @contextmanager
    def _connect(self):
        with super()._connect() as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={pages}")
            yield db


def test_a_full_disk_refuses_the_vote_clearly_and_changes_nothing(tmp_path):
    store = FullDiskStore(tmp_path / "ratings.sqlite3")
    big = record("x" * 200_000)  # needs new pages
    with pytest.raises(StoreError, match="disk is full"):
        store.vote(big, "a")
    assert store.count() == 0 and store.integrity_check() == "ok"


def test_of_two_raters_voting_on_one_pair_at_once_exactly_one_vote_lands(tmp_path):
    """``unrated_only`` (the Rate tab's votes): the check that the pair has no vote and the write are one
    transaction, so a rater who read the pair before another's vote landed is refused instead of overwriting it."""
    store = Store(tmp_path / "ratings.sqlite3")
    pair = store.save(record())
    store.vote(pair, "a", rater="first", unrated_only=True)
    with pytest.raises(AlreadyVoted):
        store.vote(pair, "b", rater="second", unrated_only=True)  # ``pair`` was read before the first vote
    assert (store.get(pair.id).winner, store.get(pair.id).rater) == ("a", "first")
    assert store.vote(pair, "b", rater="first").winner == "b"  # without it, a vote is changed as before

    contested = store.save(record("Contested"))
    landed, barrier = [], threading.Barrier(8)

    def voter(n: int) -> None:
        barrier.wait()
        try:
            landed.append(store.vote(contested, "tie", rater=f"rater{n}", unrated_only=True).rater)
        except AlreadyVoted:
            pass

    threads = [threading.Thread(target=voter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(landed) == 1 and store.get(contested.id).rater == landed[0]


def test_clearing_a_vote_by_its_time_clears_only_that_very_vote(store):
    """The Rate tab's Undo names the vote it means (pair and ``voted_at``): a vote cast since, by anyone, or a
    deleted one is left as it is."""
    batch = store.create_batch("set", ["m1", "m2"], total=2)
    first, second = (record(f"q{i}", source="rate", batch_id=batch.id, position=i) for i in range(2))
    store.insert_many([first, second])
    mine = store.vote(first, "a", rater="team")
    assert store.clear_vote(first.id, "2000-01-01T00:00:00.000000+00:00") is False  # not that vote
    assert store.get(first.id).winner == "a"
    assert store.clear_vote(first.id, mine.voted_at) is True and store.get(first.id).winner is None
    assert store.clear_vote(first.id, mine.voted_at) is False  # already undone: nothing to do
    theirs = store.vote(store.get(first.id), "b", rater="team")
    assert store.clear_vote(first.id, mine.voted_at) is False and store.get(first.id) == theirs
    deleted = store.vote(second, "tie")
    store.delete(second.id)
    assert store.clear_vote(second.id, deleted.voted_at) is False and store.get(second.id).winner == "tie"
