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
