"""playground/ratings/backup.py: an online backup of the ratings database while votes are being written."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing

import pytest

from playground.ratings.backup import BackupError, backup, main
from playground.ratings.store import ComparisonRecord, Side, Store


def pairs(n: int) -> list[ComparisonRecord]:
    return [ComparisonRecord(messages=[{"role": "user", "content": f"Question {i}"}],
                             a=Side("m1", response="An answer. " * 50), b=Side("m2", response="Another. " * 50))
            for i in range(n)]


def test_a_backup_taken_while_votes_are_written_is_sound_and_holds_every_earlier_vote(settings, tmp_path):
    store = Store(settings.ratings_db)
    records = pairs(3000)
    store.insert_many(records)
    voted: list[str] = []  # ids whose vote has committed, in order
    stop = threading.Event()

    def voter() -> None:
        for r in records:
            if stop.is_set():
                return
            store.vote(r, "a", rater="ann")
            voted.append(r.id)

    writer = threading.Thread(target=voter)
    writer.start()
    try:
        while len(voted) < 20:
            time.sleep(0.01)
        before = list(voted)  # committed before the backup began
        result = backup(settings.ratings_db, tmp_path)
        during, deadline = len(voted), time.monotonic() + 10
        while len(voted) == during < len(records) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(voted) > during or during == len(records), "the writer kept voting after the backup"
    finally:
        stop.set()
        writer.join()
    assert result.path.parent == tmp_path and result.path.name.startswith("ratings-")
    assert not list(tmp_path.glob(".*.tmp")) and not result.path.with_name(result.path.name + "-wal").exists()
    with closing(sqlite3.connect(result.path)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        in_copy = {row[0] for row in copy.execute("SELECT id FROM comparisons WHERE winner = 'a' AND rater = 'ann'")}
        assert copy.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0] == len(records) == result.comparisons
    assert set(before) <= in_copy and result.votes == len(in_copy) >= len(before)
    assert Store(result.path).count() == len(in_copy)  # the app opens the copy as a ratings database


def test_bad_destinations_and_a_missing_database_are_refused_and_change_nothing(settings, tmp_path):
    with pytest.raises(BackupError, match="no ratings database"):
        backup(settings.ratings_db, tmp_path)
    Store(settings.ratings_db)
    taken = tmp_path / "taken.sqlite3"
    taken.write_text("keep me")
    with pytest.raises(BackupError, match="already exists"):
        backup(settings.ratings_db, taken)
    assert taken.read_text() == "keep me"
    with pytest.raises(BackupError, match="doesn't exist"):
        backup(settings.ratings_db, tmp_path / "no-such-folder" / "copy.sqlite3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "taken.sqlite3"]


def test_the_command_line_backs_up_a_data_dir_and_says_why_it_cannot(settings, tmp_path, capsys):
    store = Store(settings.ratings_db)
    store.vote(pairs(1)[0], "b", rater="ann")
    copy = tmp_path / "copy.sqlite3"
    assert main([str(copy), "--data-dir", str(settings.data_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"{copy}: 1 votes in 1 comparisons, integrity ok")
    assert Store(copy).comparisons()[0].rater == "ann"
    assert main([str(copy), "--data-dir", str(settings.data_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
