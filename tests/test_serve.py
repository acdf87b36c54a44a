"""``python -m playground.serve``: a real server process on a tiny model + LoRA adapter, driven by the real ``openai``
client. One server (with an API key) is shared by the module; its answers are checked against the app's own
generation of the same model and prompt."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from playground.core.settings import Settings
from playground.models.catalog import spec_for_folder
from playground.models.generation import GenerationParams, stream
from playground.models.loading import load
from playground.models.prompting import RenderedPrompt, render
from playground.serve.served_model import safe_length, stop_hit
from tests.serve_process import ROOT, serving
from tests.tiny_models import build_adapter, build_model

KEY = "test-key-0123456789"
MESSAGES = [{"role": "user", "content": "Explain the moon landing."}]
PROMPT = "Once upon a time there was"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on a tiny chat model whose context (8192 tokens) leaves room for a long answer."""
    base = build_model(tmp_path_factory.mktemp("models") / "tiny-chat", chat=True, context=8192, seed=5)
    return build_adapter(base, tmp_path_factory.mktemp("adapters") / "tiny-chat-lora", seed=3)


@pytest.fixture(scope="module")
def server(adapter, tmp_path_factory):
    with serving(adapter, tmp_path_factory.mktemp("serve") / "data", api_key=KEY) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def app_answers(adapter, tmp_path_factory) -> dict[str, str]:
    """What the app's generation writes for MESSAGES (chat) and PROMPT (completion), greedy, 12 tokens."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("app") / "data", memory_budget_gb=1.0)
    loaded = load(spec_for_folder(adapter), settings)
    params = GenerationParams(temperature=0, max_new_tokens=12)
    chat = render(MESSAGES, "auto", loaded.kind, loaded.tokenizer)
    assert chat.format == "chat"
    return {name: list(stream(loaded, prompt, params))[-1].text
            for name, prompt in (("chat", chat), ("completion", RenderedPrompt(PROMPT, "plain", True)))}


def test_models_lists_the_base_plus_adapter(server, client):
    assert server.model == "tiny-chat + tiny-chat-lora"
    assert [m.id for m in client.models.list()] == [server.model]


def test_chat_streamed_and_not_equal_the_apps_generation(server, client, app_answers):
    whole = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=12,
                                                 temperature=0, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content == streamed == app_answers["chat"] != ""
    assert whole.choices[0].finish_reason == "length" == [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    assert whole.usage.completion_tokens == 12 == chunks[-1].usage.completion_tokens
    assert whole.usage.prompt_tokens == chunks[-1].usage.prompt_tokens > 5
    assert chunks[0].choices[0].delta.role == "assistant"


def test_completion_streamed_and_not_equal_the_apps_generation(server, client, app_answers):
    whole = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=12, temperature=0)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=server.model, prompt=PROMPT, max_tokens=12, temperature=0, stream=True))
    assert whole.choices[0].text == streamed == app_answers["completion"] != ""
    tokens = whole.usage.completion_tokens  # this prompt's greedy answer may end with the end token
    assert whole.choices[0].finish_reason == ("length" if tokens == 12 else "stop") and 0 < tokens <= 12


def test_a_seed_gives_the_same_sample_and_a_stop_string_ends_it(server, client):
    def sample(seed: int, **more) -> openai.types.Completion:
        return client.completions.create(model=server.model, prompt=PROMPT, max_tokens=16, temperature=1.5,
                                         top_p=1, seed=seed, **more)

    first, again, other = sample(7), sample(7), sample(8)
    assert first.choices[0].text == again.choices[0].text != other.choices[0].text
    text = first.choices[0].text
    # A stop string the seeded answer is sure to write (whole characters: a random model writes stray bytes, U+FFFD).
    stop = next(text[at:at + 2] for at in range(len(text) // 2, len(text)) if "\ufffd" not in text[at:at + 2])
    cut = sample(7, stop=[stop])
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=server.model, prompt=PROMPT, max_tokens=16, temperature=1.5, top_p=1, seed=7, stop=stop, stream=True))
    assert streamed == cut.choices[0].text


def test_errors_come_in_openais_shape(server, client):
    with pytest.raises(openai.AuthenticationError) as no_key:
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    assert no_key.value.status_code == 401 and no_key.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert unknown.value.code == "model_not_found" and server.model in unknown.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=server.model, prompt=PROMPT, temperature=9)
    assert bad.value.status_code == 400 and "temperature" in bad.value.message
    with pytest.raises(openai.BadRequestError) as wrong_turns:
        client.chat.completions.create(model=server.model, messages=[{"role": "assistant", "content": "Hi"}])
    assert "should be from the user" in wrong_turns.value.message


def test_a_client_that_goes_away_stops_its_answer(server, client):
    answer = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8000, temperature=0,
                                       stream=True)
    for seen, _ in enumerate(answer):
        if seen == 2:
            break
    answer.close()
    deadline = time.monotonic() + 60
    while "the request was cancelled" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    said = [line for line in server.log.read_text().splitlines() if "the request was cancelled" in line]
    assert len(said) == 1 and int(said[0].split("stopped after ")[1].split()[0]) < 8000
    # The model is free again at once (the 8000-token answer would hold it for minutes).
    assert client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2).usage.completion_tokens == 2


def test_refuses_a_wide_host_without_a_key(tmp_path):
    result = subprocess.run([sys.executable, "-m", "playground.serve", "gemma-3-270m", "--host", "0.0.0.0",
                             "--data-dir", str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "--host 0.0.0.0" in result.stderr and "--api-key-env" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_stop_strings_hold_back_only_what_may_become_one():
    assert stop_hit("ab\n\nUser:", ["User:", "\n\n"]) == 2
    assert safe_length("hello Us", ["User:"]) == len("hello ")
    assert safe_length("hello", ["User:"]) == 5
    assert safe_length("caf\ufffd", []) == 3  # an unfinished character waits for its other bytes


def test_the_runs_tab_shows_the_serve_command_for_a_finished_language_model_run(settings):
    from playground.runs.jobs import Jobs
    from playground.ui import runs_tab
    from tests.test_lecture import make_run

    jobs = Jobs(settings, poll=False)
    make_run(settings, "dpo-1", "dpo", "finished", adapter="CAUSAL_LM")
    make_run(settings, "dpo-2", "dpo", "running", adapter="CAUSAL_LM")
    make_run(settings, "rm-1", "reward", "finished", adapter="SEQ_CLS")
    command = runs_tab.details(jobs, "dpo-1", "")[-1]
    adapter = settings.runs_dir / "dpo-1" / "adapter"
    assert f"\npython -m playground.serve {adapter} --data-dir {settings.data_dir}" in command
    assert "playground.serve" not in runs_tab.details(jobs, "dpo-2", "")[-1]  # not while it trains
    assert "playground.serve" not in runs_tab.details(jobs, "rm-1", "")[-1]  # a reward model scores, it can't answer
