"""The command line: flags, defaults, and a clear message for an unusable data dir."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import app
from playground.core.settings import DATA_DIR_ENV, Settings, default_data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for flag in ("--host", "--port", "--data-dir", "--auth", "--share", "--i-trust-this-network-without-login"):
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


OPT_OUT = "--i-trust-this-network-without-login"


@pytest.fixture
def fake_ui(monkeypatch):
    """``playground.ui`` replaced by a module whose ``serve`` records its settings: nothing listens, gradio stays
    unimported, and a test sees whether the app would have started."""
    import types

    served: list[Settings] = []
    monkeypatch.setitem(sys.modules, "playground.ui", types.SimpleNamespace(serve=served.append))
    return served


WIDE = [["--host", "0.0.0.0"], ["--host", "::"], ["--host", "192.168.1.20"], ["--host", "my-laptop.local"],
        ["--host", ""], ["--share"], ["--host", "127.0.0.1", "--share"]]


@pytest.mark.parametrize("flags", WIDE, ids=" ".join)
def test_listening_beyond_this_machine_without_a_login_is_refused(flags, tmp_path, capsys, fake_ui):
    data = tmp_path / "data"
    assert app.main([*flags, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "--auth USER:PASS" in err and OPT_OUT in err
    assert fake_ui == [] and not data.exists()  # nothing started, nothing written


def test_the_refusal_is_a_non_zero_exit_before_anything_starts(tmp_path):
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--data-dir", str(data)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "--auth USER:PASS" in done.stderr and OPT_OUT in done.stderr and "--host 0.0.0.0" in done.stderr
    assert done.stdout == "" and not data.exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "LocalHost", "::1", "[::1]",
                                  "::ffff:127.0.0.1"])
def test_every_loopback_form_needs_no_login(host, tmp_path, capsys, fake_ui):
    assert app.main(["--host", host, "--data-dir", str(tmp_path / "data")]) == 0
    assert [s.host for s in fake_ui] == [host]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--share"]], ids=" ".join)
def test_the_opt_out_starts_with_a_loud_warning(flags, tmp_path, capsys, fake_ui):
    assert app.main([*flags, OPT_OUT, "--data-dir", str(tmp_path / "data")]) == 0
    assert len(fake_ui) == 1 and fake_ui[0].auth is None
    err = capsys.readouterr().err
    assert err.startswith("WARNING: no login") and OPT_OUT in err and "--auth USER:PASS" in err


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--share"]], ids=" ".join)
def test_a_login_opens_a_wide_address_without_a_warning(flags, tmp_path, capsys, fake_ui):
    assert app.main([*flags, "--auth", "alice:secret", "--data-dir", str(tmp_path / "data")]) == 0
    assert [s.auth for s in fake_ui] == [("alice", "secret")]
    assert capsys.readouterr().err == ""


def test_settings_refuse_a_wide_address_without_a_login_too(tmp_path):
    """The rule lives in Settings, so code that builds Settings itself can't skip it."""
    from playground.core.settings import NoLoginError

    with pytest.raises(NoLoginError, match="--auth USER:PASS"):
        Settings(data_dir=tmp_path, host="0.0.0.0", memory_budget_gb=1)
    assert Settings(data_dir=tmp_path, host="0.0.0.0", memory_budget_gb=1, open_without_login=True).no_login_warning()
    assert Settings(data_dir=tmp_path, host="0.0.0.0", memory_budget_gb=1, auth=("a", "b")).no_login_warning() is None
