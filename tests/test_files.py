"""playground.core.files: what the app keeps is written whole or not at all."""

from __future__ import annotations

import os

import pytest

from playground.core.files import publish_unique, staged_file, staged_folder, write_atomic


def test_a_staged_file_replaces_the_old_one_only_when_the_block_succeeds(tmp_path):
    final = tmp_path / "data.jsonl"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with staged_file(final) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert final.read_text() == "old" and os.listdir(tmp_path) == ["data.jsonl"]
    with staged_file(final) as temporary:
        temporary.write_text("new")
        assert final.read_text() == "old" and temporary.parent == tmp_path and temporary.name.startswith(".")
    assert final.read_text() == "new" and os.listdir(tmp_path) == ["data.jsonl"]


def test_write_atomic_writes_utf8_and_makes_the_folder(tmp_path):
    path = tmp_path / "new" / "status.json"
    write_atomic(path, "Größe 🙂")
    assert path.read_bytes() == "Größe 🙂".encode() and os.listdir(path.parent) == ["status.json"]


def test_a_staged_folder_takes_the_old_folders_place_whole_or_not_at_all(tmp_path):
    final = tmp_path / "adapter"
    final.mkdir()
    (final / "old.bin").write_text("old")
    with pytest.raises(OSError):
        with staged_folder(final) as temporary:
            (temporary / "weights.bin").write_text("half")
            raise OSError(28, "No space left on device")
    assert os.listdir(final) == ["old.bin"] and os.listdir(tmp_path) == ["adapter"]
    with staged_folder(final) as temporary:
        assert temporary.is_dir() and not any(temporary.iterdir())
        (temporary / "weights.bin").write_text("new")
    assert os.listdir(final) == ["weights.bin"] and os.listdir(tmp_path) == ["adapter"]
    with staged_folder(tmp_path / "fresh") as temporary:
        (temporary / "a").write_text("a")
    assert (tmp_path / "fresh" / "a").read_text() == "a"


def test_publish_unique_takes_the_first_free_name_and_never_replaces_a_file(tmp_path):
    (tmp_path / "set.jsonl").write_text("someone else's")
    final = publish_unique(tmp_path, lambda p: p.write_text("mine"), ["set.jsonl", "set-2.jsonl", "set-3.jsonl"])
    assert final == tmp_path / "set-2.jsonl" and final.read_text() == "mine"
    assert (tmp_path / "set.jsonl").read_text() == "someone else's"
    assert sorted(os.listdir(tmp_path)) == ["set-2.jsonl", "set.jsonl"]
    assert publish_unique(tmp_path, lambda p: p.write_text("x"), ["set.jsonl"]) is None
    assert sorted(os.listdir(tmp_path)) == ["set-2.jsonl", "set.jsonl"]
    with pytest.raises(OSError):
        publish_unique(tmp_path, lambda p: (_ for _ in ()).throw(OSError("disk full")), ["other.jsonl"])
    assert sorted(os.listdir(tmp_path)) == ["set-2.jsonl", "set.jsonl"]


def test_what_is_written_gets_the_permissions_of_an_ordinary_file_or_folder(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "status.json", "{}")
        with staged_folder(tmp_path / "adapter") as temporary:
            (temporary / "w").write_text("w")
        uploaded = publish_unique(tmp_path, lambda p: p.write_text("x"), ["up.jsonl"])
    finally:
        os.umask(old)
    assert oct((tmp_path / "status.json").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "adapter").stat().st_mode & 0o777) == oct(0o755)
    assert oct(uploaded.stat().st_mode & 0o777) == oct(0o644)


def test_a_folder_that_must_not_replace_another_is_refused_and_the_other_kept(tmp_path):
    final = tmp_path / "export"
    final.mkdir()
    (final / "theirs").write_text("theirs")
    with pytest.raises(FileExistsError):
        with staged_folder(final, replace=False) as temporary:
            (temporary / "mine").write_text("mine")
    assert os.listdir(final) == ["theirs"] and os.listdir(tmp_path) == ["export"]
    with pytest.raises(FileExistsError):  # published by someone else while the block wrote
        with staged_folder(tmp_path / "race", replace=False) as temporary:
            (tmp_path / "race").mkdir()
            (tmp_path / "race" / "theirs").write_text("theirs")
            (temporary / "mine").write_text("mine")
    assert os.listdir(tmp_path / "race") == ["theirs"] and sorted(os.listdir(tmp_path)) == ["export", "race"]


def test_a_replaced_folder_sweeps_what_a_killed_writer_left_and_nothing_else(tmp_path):
    left = tmp_path / ".adapter.0123456789ab.tmp"
    left.mkdir()
    other = tmp_path / ".adapter-old.0123456789ab.tmp"
    other.mkdir()
    with staged_folder(tmp_path / "adapter") as temporary:
        (temporary / "w").write_text("w")
    assert sorted(os.listdir(tmp_path)) == [".adapter-old.0123456789ab.tmp", "adapter"]


def test_publish_unique_moves_on_when_a_name_is_taken_between_the_check_and_the_link(tmp_path, monkeypatch):
    real_link = os.link

    def racing_link(source, target):
        if os.path.basename(target) == "set.jsonl":  # another upload takes the name first
            with open(target, "w") as other:
                other.write("theirs")
        return real_link(source, target)

    monkeypatch.setattr(os, "link", racing_link)
    final = publish_unique(tmp_path, lambda p: p.write_text("mine"), ["set.jsonl", "set-2.jsonl"])
    assert final == tmp_path / "set-2.jsonl" and final.read_text() == "mine"
    assert (tmp_path / "set.jsonl").read_text() == "theirs"
    assert sorted(os.listdir(tmp_path)) == ["set-2.jsonl", "set.jsonl"]


def test_numbered_names_and_listed_files(tmp_path):
    from itertools import islice

    from playground.core.files import listed_files, numbered_names

    assert list(islice(numbered_names("set", ".jsonl", {"set", "set-3"}), 3)) == ["set-2.jsonl", "set-4.jsonl",
                                                                                  "set-5.jsonl"]
    for name in ("b.jsonl", "a.CSV", ".hidden.jsonl", ".new.x.tmp", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    assert [p.name for p in listed_files(tmp_path, {".jsonl", ".csv"})] == ["a.CSV", "b.jsonl"]
    assert listed_files(tmp_path / "missing", {".jsonl"}) == [] and listed_files(None, {".jsonl"}) == []
