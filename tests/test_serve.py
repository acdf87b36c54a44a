"""``python -m playground.serve``: a real server process on a tiny model + LoRA adapter, driven by the real ``openai``
client. One server (listening on every interface, so with an API key) is shared by the module; its answers are
checked against the app's own generation of the same model and prompt."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from playground.core.settings import Settings
from playground.models.catalog import spec_for_folder
from playground.models.generation import GenerationParams, StreamStats, StreamUpdate, stream
from playground.models.loading import load
from playground.models.prompting import RenderedPrompt, render
from playground.serve.served_model import GenerationFailed, answer_pieces, safe_length, stop_hit
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
    """The server as a user exposes it: on every interface (0.0.0.0: a loopback client reaches it), with a key."""
    with serving(adapter, tmp_path_factory.mktemp("serve") / "data", "--host", "0.0.0.0", api_key=KEY) as running:
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


def test_a_wide_host_with_a_key_serves_only_requests_with_the_key(server):
    assert f"at http://0.0.0.0:{server.base_url.split(':')[-1]} — API key required" in server.log.read_text()
    with pytest.raises(urllib.error.HTTPError) as no_header:
        urllib.request.urlopen(f"{server.base_url}/models", timeout=10)
    assert no_header.value.code == 401 and b'"invalid_api_key"' in no_header.value.read()


def test_errors_come_in_openais_shape(server, client):
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    assert wrong_key.value.status_code == 401 and wrong_key.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert unknown.value.code == "model_not_found" and server.model in unknown.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=server.model, prompt=PROMPT, temperature=9)
    assert bad.value.status_code == 400 and "temperature" in bad.value.message
    with pytest.raises(openai.BadRequestError) as wrong_turns:
        client.chat.completions.create(model=server.model, messages=[{"role": "assistant", "content": "Hi"}])
    assert "should be from the user" in wrong_turns.value.message


def test_unsupported_fields_are_refused_not_ignored(server, client):
    refused = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "tool_choice": "auto",
               "functions": [{"name": "f", "parameters": {}}], "function_call": "auto",
               "response_format": {"type": "json_object"}, "top_logprobs": 2, "modalities": ["text", "audio"]}
    for field, value in refused.items():
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=2,
                                           extra_body={field: value})
        assert bad.value.param == field and f"Unsupported {field}" in bad.value.message
    # Their values that ask for nothing more, and bookkeeping fields, are accepted.
    fine = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=2, user="me",
                                          response_format={"type": "text"}, tool_choice="none")
    assert fine.usage.completion_tokens <= 2


def test_a_prompt_over_the_context_window_is_refused_before_streaming(server, client):
    for stream_it in (False, True):
        with pytest.raises(openai.BadRequestError) as too_long:
            client.completions.create(model=server.model, prompt="Once upon a time " * 2000, max_tokens=2,
                                      stream=stream_it)
        assert too_long.value.code == "context_length_exceeded" and too_long.value.param == "prompt"
        assert "maximum context length is 8192 tokens" in too_long.value.message
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=8190)
    assert too_many.value.code == "context_length_exceeded" and too_many.value.param == "messages"
    assert "8190 for the answer" in too_many.value.message


def cancellations(server, since: int, said: str, timeout: float = 30) -> list[str]:
    """The server's log lines after its first ``since`` lines that contain ``said``, waiting up to ``timeout``
    seconds for one."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log.read_text().splitlines()[since:] if said in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_a_client_that_goes_away_stops_its_answer(server, client):
    since = len(server.log.read_text().splitlines())
    answer = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8000, temperature=0,
                                       stream=True)
    for seen, _ in enumerate(answer):
        if seen == 2:
            break
    # While the stream has the model, a plain request waits for it; its client gives up: it leaves the queue.
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=1.0).completions.create(model=server.model, prompt=PROMPT, max_tokens=2)
    assert len(cancellations(server, since, "while it waited for the model")) == 1
    answer.close()
    said = cancellations(server, since, "stopped after")
    assert len(said) == 1 and int(said[0].split("stopped after ")[1].split()[0]) < 8000
    # The model is free again at once (the 8000-token answer would hold it for minutes).
    assert client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2).usage.completion_tokens == 2
    assert "Traceback" not in server.log.read_text()


def test_a_plain_request_whose_client_times_out_stops_its_answer(server, client):
    since = len(server.log.read_text().splitlines())
    with pytest.raises(openai.APITimeoutError):  # tokens keep coming all along: the server must still notice
        client.with_options(timeout=1.5).completions.create(model=server.model, prompt=PROMPT, max_tokens=8000,
                                                            temperature=0)
    said = cancellations(server, since, "stopped after")
    assert len(said) == 1 and int(said[0].split("stopped after ")[1].split()[0]) < 8000
    started = time.monotonic()
    assert client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2).usage.completion_tokens == 2
    assert time.monotonic() - started < 10


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
    assert safe_length("ab\ufffd", ["bé"]) == 1  # "b" may start the stop string once "\ufffd" becomes "é"
    # What the tokenizer's clean-up may still rewrite waits for the next token: "Hello " may become "Hello.".
    assert [safe_length(text, []) for text in ("Hello ", "I do n", "I do n'", "it '", "it 's")] == [5, 4, 4, 2, 5]


def updates(*texts: str, finish: str = "length") -> list[StreamUpdate]:
    """Generation's snapshots: the whole answer decoded again after each token, the last one done."""
    last = len(texts) - 1
    return [StreamUpdate(text, StreamStats(prompt_tokens=3, new_tokens=i + 1, finish_reason=finish if i == last else None),
                         done=i == last) for i, text in enumerate(texts)]


def pieces_of(snapshots: list[StreamUpdate], stops: list[str] | None = None) -> tuple[list[str], str, str]:
    """The pieces :func:`answer_pieces` sends for ``snapshots``, the last piece's whole answer and finish reason."""
    pieces = list(answer_pieces(iter(snapshots), stops or [], threading.Event()))
    return [piece.text for piece in pieces], pieces[-1].answer, pieces[-1].finish_reason


def test_pieces_add_up_to_the_answer_when_decoding_cleans_up_spaces():
    # A tokenizer with clean_up_tokenization_spaces: the space before "." and "n't" goes once they arrive.
    sent, answer, finish = pieces_of(updates("Hello", "Hello ", "Hello.", "Hello. I", "Hello. I do", "Hello. I do n",
                                             "Hello. I don't", "Hello. I don't know", "Hello. I don't know."))
    assert "".join(sent) == answer == "Hello. I don't know." and finish == "length"
    assert all(sent)
    # A rewrite nothing foresaw: the text after the common prefix is sent again rather than dropped.
    sent, answer, _ = pieces_of(updates("abc", "abd", "abde"))
    assert "".join(sent) == "abcde" and answer == "abde"


def test_pieces_leave_out_the_stop_string_even_while_a_character_is_unfinished():
    sent, answer, finish = pieces_of(updates("ab\ufffd", "abé", "abé and more"), stops=["bé"])
    assert sent == ["a", ""] and answer == "a" and finish == "stop"
    sent, answer, finish = pieces_of(updates("one", "one two", "one two.", finish="eos"), stops=["User:"])
    assert "".join(sent) == answer == "one two." and finish == "stop"
    with pytest.raises(GenerationFailed, match="out of memory"):
        list(answer_pieces(iter([StreamUpdate("x"), StreamUpdate("x", error="out of memory", done=True)]), [],
                           threading.Event()))


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
