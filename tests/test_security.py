"""Safe by default, tested: private address, login on every endpoint, uploads that stay in the data dir, run
configs that can't turn on remote code or write elsewhere, and weights that never run code."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from playground.core.settings import Settings
from playground.data import instructions, preference_pairs
from playground.models.catalog import ModelSpec
from playground.models.loading import ModelLoadError, load
from playground.train.config import ConfigError, from_dict
from tests.app_server import serve


def test_the_app_listens_on_this_machine_only_by_default():
    from app import parse_args

    assert parse_args([]).host == "127.0.0.1" and Settings().host == "127.0.0.1"
    assert parse_args([]).share is False


def test_with_auth_every_endpoint_refuses_a_request_without_login(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1, auth=("alice", "secret"))
    settings.ensure_dirs()
    with serve(settings) as client:
        endpoints = [name for name in client.view_api(print_info=False, return_format="dict")["named_endpoints"]]
        assert len(endpoints) > 20  # the app documents many endpoints; every one is checked
        root = client.src.rstrip("/")
        for path in ("/gradio_api/info", "/config"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{root}{path}", timeout=10)
            assert refused.value.code in (401, 403), path
        for endpoint in endpoints:
            request = urllib.request.Request(f"{root}/gradio_api/call{endpoint}", data=b'{"data": []}',
                                             headers={"Content-Type": "application/json"}, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code in (401, 403), endpoint
        assert client.predict("instructions", api_name="/datasets")  # logged in, the same endpoints answer


def test_a_login_still_guards_the_app_on_a_wide_address(tmp_path, tiny_base, tiny_chat):
    """``python app.py --host 0.0.0.0 --auth …`` starts, listens on every interface and asks for the login; every
    request here goes to 127.0.0.1 only."""
    import psutil
    from gradio_client import Client

    from tests.app_process import start_app

    app = start_app(tmp_path / "data", tiny_base, tiny_chat, "--host", "0.0.0.0", "--auth", "alice:secret")
    try:
        assert app.url.startswith("http://127.0.0.1:")
        port = int(app.url.rstrip("/").rsplit(":", 1)[1])
        listening = {c.laddr.ip for c in psutil.Process(app.process.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"0.0.0.0"}
        for path in ("config", "gradio_api/info"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{app.url}{path}", timeout=10)
            assert refused.value.code in (401, 403), path
        wrong = urllib.parse.urlencode({"username": "alice", "password": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{app.url}login", data=wrong, timeout=10)
        assert refused.value.code == 400 and b"Incorrect credentials" in refused.value.read()
        client = Client(app.url, auth=("alice", "secret"), verbose=False)
        assert client.predict("instructions", api_name="/datasets")
        assert "WARNING: no login" not in app.log.read_text()
    finally:
        app.stop()


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "..", "a/../../b", "C:\\evil", ".hidden",
                                  "nul\x00byte", "x" * 500])
def test_uploaded_names_cannot_leave_the_data_dir(settings, tmp_path, name):
    source = tmp_path / "upload.jsonl"
    source.write_text(json.dumps({"prompt": "Hi?", "completion": "Hello."}) + "\n")
    saved = instructions.save_upload(source, settings, name)
    assert saved.path.parent.resolve() == settings.datasets_dir.resolve() and not saved.path.name.startswith(".")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}) + "\n")
    kept = preference_pairs.save_upload(pairs, settings, name)
    assert kept.saved.path.parent.resolve() == preference_pairs.folder(settings).resolve()
    assert not kept.saved.path.name.startswith(".")


def test_links_in_the_data_dir_are_not_offered(settings, tmp_path):
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"prompt": "password?", "completion": "hunter2"}) + "\n")
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, settings.datasets_dir / "linked.jsonl")
    preference_pairs.folder(settings).mkdir(parents=True)
    os.symlink(secret, preference_pairs.folder(settings) / "linked.jsonl")
    assert "linked" not in [d.name for d in instructions.list_datasets(settings)]
    assert "linked" not in [s.name for s in preference_pairs.list_sets(settings)]


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo"])
@pytest.mark.parametrize("key, value", [("trust_remote_code", True), ("output_dir", "/tmp/elsewhere"),
                                        ("run_dir", "/etc"), ("model_init_kwargs", {"trust_remote_code": True})])
def test_a_run_config_cannot_turn_on_remote_code_or_write_elsewhere(stage, key, value):
    with pytest.raises(ConfigError, match="unknown setting") as refused:
        from_dict(stage, {key: value})
    assert refused.value.field == key


@pytest.mark.parametrize("name", ["../outside", "/abs/path", "a/b", ".hidden", "~user"])
def test_a_run_name_is_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="letters, digits") as refused:
        from_dict("sft", {"name": name})
    assert refused.value.field == "name"


def test_a_recipe_cannot_move_the_data_dir(tmp_path, tiny_base):
    """The Train form sets data_dir itself: a recipe's data_dir (a form field it is not) is ignored."""
    from playground.runs.jobs import Jobs
    from tests.app_server import serve as serve_app

    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    with serve_app(settings) as client:
        from playground.train.config import SFTConfig
        from playground.ui.train_tab import GROUPS

        defaults = SFTConfig().to_dict() | {"name": "safe", "base_model": str(tiny_base), "max_steps": 1}
        values = [defaults[name] for names in GROUPS["sft"].values() for name in names]
        _, _, config_text, *_ = client.predict(*values, api_name="/train_start")
    assert f"data_dir: {settings.data_dir}" in config_text
    Jobs(settings, poll=False).wait("safe", 120)


def test_model_code_in_a_folder_is_never_run(settings, tmp_path, tiny_base):
    """A model folder whose config asks for custom code (auto_map) is refused; its code is never imported."""
    import shutil

    folder = tmp_path / "remote-code"
    shutil.copytree(tiny_base, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom.Config", "AutoModelForCausalLM": "custom.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (folder / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    try:
        load(ModelSpec(str(folder)), settings)
    except ModelLoadError:
        pass  # refusing is fine; running the code is not
    assert not marker.exists()


def test_pickled_weights_are_refused(settings, tmp_path, tiny_base):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_base, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.save(AutoModelForCausalLM.from_pretrained(tiny_base).state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load(ModelSpec(str(folder)), settings)
