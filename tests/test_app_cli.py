"""The command line: flags, defaults, and a clear message for an unusable data dir."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import app
from playground.settings import DATA_DIR_ENV, Settings, default_data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for flag in ("--host", "--port", "--data-dir", "--auth", "--share"):
        assert flag in out.stdout
    assert "127.0.0.1" in out.stdout


def test_defaults_are_private():
    args = app.parse_args([])
    assert args.host == "127.0.0.1"
    assert args.share is False
    assert args.auth is None


def test_auth_needs_user_and_password():
    assert app.parse_args(["--auth", "ann:secret:with:colons"]).auth == ("ann", "secret:with:colons")
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "nopassword"])


def test_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    assert Settings().data_dir == (tmp_path / "elsewhere").resolve()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the file-in-the-way case")
def test_unwritable_data_dir_message(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert app.main(["--data-dir", str(locked / "data")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_data_dir_that_is_a_file_gets_a_clear_message(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert app.main(["--data-dir", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "--data-dir" in err


def test_bad_port_is_rejected(capsys, tmp_path):
    assert app.main(["--port", "70000", "--data-dir", str(tmp_path)]) == 2
    assert "port" in capsys.readouterr().err
