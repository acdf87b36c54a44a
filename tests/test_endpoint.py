"""OpenAI-compatible endpoints as a model source: the choice string and the saved list, and the failures a real
server can't be made to show on demand (429, a stream cut mid-answer, a refused connection, a stalled server and
Stop), each from a small real HTTP server on a free port (the openai client is used as is, never patched).
Also: only PLAYGROUND_ENDPOINT_KEY* variables are keys and each is sent only to the origin it was saved with; a
server that refuses top_k (OpenAI's 400) still answers; concurrent saves keep every change.
The client against the app's own server (``python -m playground.serve``): tests/test_endpoint_serve.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from playground.core.verbatim import verbatim_html
from playground.models import endpoint
from playground.models.catalog import CatalogError, list_models, resolve_choice
from playground.models.endpoint import Endpoint, EndpointError
from playground.models.generation import GenerationParams, answer, stream_pair
from playground.models.loading import LoadOptions, ModelCache, ModelLoadError, check_available
from playground.models.prompting import PromptError
from playground.ratings.batch import BatchRunner, BatchSettings
from playground.ratings.store import Store
from playground.ui import compare_tab, endpoints_panel

ASK = [{"role": "user", "content": "Say hello."}]
PARAMS = GenerationParams(max_new_tokens=8, seed=3)


class FakeServer(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions by the requested model's name: ``good…`` streams "Hel", "lo!" and stops;
    ``limited`` is 429; ``cut`` sends "Hel" and drops the connection mid-body; ``stall`` sends "Hel" and hangs."""

    protocol_version = "HTTP/1.1"
    released = threading.Event()
    seen: list[tuple[str, str | None, dict]] = []
    """(Host header, Authorization header, JSON body or {}) of every request, in order."""
    strict = False
    """Refuse fields outside OpenAI's API with OpenAI's own 400, as api.openai.com does."""

    def log_message(self, *args: object) -> None:  # the test's output stays clean
        pass

    def do_GET(self) -> None:
        self.seen.append((self.headers["Host"], self.headers.get("Authorization"), {}))
        self._json(200, {"object": "list", "data": [{"id": "good", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.headers["Host"], self.headers.get("Authorization"), body))
        unknown = [name for name in body if name not in OPENAI_FIELDS]  # as sent: top_k first
        if self.strict and unknown:
            self._json(400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                       "type": "invalid_request_error", "param": None, "code": None}})
            return
        model = body["model"]
        if model == "limited":
            self._json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}, {"Retry-After": "7"})
            return
        if not model.startswith("good") and model not in ("cut", "stall"):
            self._json(404, {"error": {"message": f"The model {model} does not exist"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event({"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]})
        if model == "cut":
            self.wfile.write(b"40\r\ndata: {\"choi")  # half a chunk, then the connection drops
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if model == "stall":
            FakeServer.released.wait(30)
            return
        self._event({"choices": [{"index": 0, "delta": {"content": "lo!"}, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, data: dict) -> None:
        self._chunk(f"data: {json.dumps({'id': 'x', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'm', **data})}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, data: dict, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


OPENAI_FIELDS = {"model", "messages", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p",
                 "seed", "stop", "n"}


class StrictServer(FakeServer):
    """FakeServer as OpenAI's API: a field it doesn't know (top_k…) is 400 "Unrecognized request argument"."""

    strict = True


def serve(handler: type[FakeServer]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    FakeServer.released.set()
    server.shutdown()


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    yield from serve(FakeServer)


@pytest.fixture(scope="module")
def strict() -> Iterator[str]:
    yield from serve(StrictServer)


def run(settings, source: str, stop: threading.Event | None = None, fmt: str = "auto"):
    """Every snapshot of one endpoint answer through generation.answer, as a pane runs it (copied: a stream
    updates one snapshot object in place)."""
    spec = resolve_choice(source, list_models(settings))
    updates = answer(ModelCache(settings), spec, None, ASK, fmt, "", PARAMS, stop or threading.Event())
    return [replace(u, stats=replace(u.stats)) for u in updates]


# ---------------------------------------------------------------------------------------------- the source


def test_the_choice_string_round_trips_and_names_server_model_and_api():
    server = Endpoint("http://127.0.0.1:8000/v1/", "org/model:q4", "completions", "$PLAYGROUND_ENDPOINT_KEY_MY")
    assert server.source == "endpoint:completions:org/model:q4@http://127.0.0.1:8000/v1"
    assert endpoint.parse_source(server.source, "PLAYGROUND_ENDPOINT_KEY_MY") == server
    assert (server.key_env, server.kind, server.name) == ("PLAYGROUND_ENDPOINT_KEY_MY", "base",
                                                          "org/model:q4 @ 127.0.0.1:8000")
    assert server.origin == "http://127.0.0.1:8000" and Endpoint("HTTPS://API.x.com/v1", "m").origin == \
        "https://api.x.com:443"


@pytest.mark.parametrize("fields, says", [
    (("ftp://x/v1", "m"), r"not an http\(s\) URL"),
    (("http://user:secret@host/v1", "m"), "carries credentials"),
    (("http://host/v1", ""), "empty or has spaces"),
    (("http://host/v1", "m", "chat", "sk-abc123"), "not an environment variable's name"),
    (("http://host/v1", "m", "chat", "HF_TOKEN"), "can't be an endpoint's key: only variables named "
                                                   "PLAYGROUND_ENDPOINT_KEY"),
    (("http://host/v1", "m", "chat", "PLAYGROUND_ENDPOINT_KEYS"), "can't be an endpoint's key"),
    (("http://host/v1?api_key=sk-1", "m"), "has a query or fragment"),
    (("http://host/v1#sk-1", "m"), "has a query or fragment"),
    (("http://host:99999/v1", "m"), "bad port"),
    (("http://host/v1", "m", "rest"), "chat or completions"),
])
def test_a_bad_endpoint_is_refused_with_what_to_fix(fields, says):
    with pytest.raises(EndpointError, match=says):
        Endpoint(*fields)


def test_a_saved_endpoint_is_in_every_model_list_and_resolves_with_its_key_name(settings):
    server = Endpoint("http://127.0.0.1:9/v1", "judge-model", "chat", "PLAYGROUND_ENDPOINT_KEY_JUDGE")
    endpoint.save_endpoint(settings, server)
    endpoint.save_endpoint(settings, server)  # saved again: still once
    entries = [e for e in list_models(settings) if e.spec.source_type == "endpoint"]
    assert [(e.label, e.note) for e in entries] == [
        (server.source, "endpoint · chat · key from $PLAYGROUND_ENDPOINT_KEY_JUDGE")]
    spec = resolve_choice(server.source, list_models(settings))
    assert (spec.source, spec.kind, spec.api_key_env) == (server.source, "instruct", "PLAYGROUND_ENDPOINT_KEY_JUDGE")
    saved = json.loads(settings.endpoints_file.read_text())
    assert saved["endpoints"][0]["key_env"] == "PLAYGROUND_ENDPOINT_KEY_JUDGE" and "key" not in saved["endpoints"][0]
    endpoint.remove_endpoint(settings, server.source)
    assert not [e for e in list_models(settings) if e.spec.source_type == "endpoint"]


def test_a_typed_endpoint_resolves_without_a_key_and_a_malformed_one_says_how_to_write_it(settings):
    spec = resolve_choice("endpoint:chat:m@http://localhost:1/v1", [])
    assert (spec.source_type, spec.api_key_env, spec.name) == ("endpoint", None, "m @ localhost:1")
    with pytest.raises(CatalogError, match="endpoint:chat:MODEL@"):
        resolve_choice("endpoint:chat:no-url", [])


def test_an_endpoint_has_no_weights_to_load_or_train(settings):
    with pytest.raises(ModelLoadError, match="no weights here"):
        check_available(resolve_choice("endpoint:chat:m@http://localhost:1/v1", []))


def test_a_missing_key_variable_is_named(settings, monkeypatch):
    monkeypatch.delenv("PLAYGROUND_ENDPOINT_KEY_TEST_UNSET", raising=False)
    endpoint.save_endpoint(settings, Endpoint("http://127.0.0.1:9/v1", "m", "chat", "PLAYGROUND_ENDPOINT_KEY_TEST_UNSET"))
    last = run(settings, "endpoint:chat:m@http://127.0.0.1:9/v1")[-1]
    assert last.stats.finish_reason == "error" and "PLAYGROUND_ENDPOINT_KEY_TEST_UNSET" in last.error
    assert "not set" in last.error


def test_a_format_the_api_cant_take_is_refused_before_anything_is_sent(settings, fake):
    with pytest.raises(PromptError, match="chat endpoint"):
        run(settings, f"endpoint:chat:good@{fake}", fmt="plain")
    with pytest.raises(PromptError, match="completions endpoint"):
        run(settings, f"endpoint:completions:good@{fake}", fmt="chat")


# ---------------------------------------------------------------------------------------------- a fake server


def test_an_answer_streams_with_the_panes_stats(settings, fake):
    updates = run(settings, f"endpoint:chat:good@{fake}")
    last = updates[-1]
    assert [u.text for u in updates if u.text][:2] == ["Hel", "Hello!"]
    assert (last.text, last.done, last.error, last.stats.finish_reason) == ("Hello!", True, None, "eos")
    assert (last.stats.prompt_tokens, last.stats.new_tokens, last.stats.backend) == (5, 2, "endpoint")
    assert last.stats.time_to_first_token is not None and last.stats.tokens_per_second > 0
    assert json.loads(last.prompt_text) == ASK


def test_a_429_is_the_panes_error_and_the_other_pane_carries_on(settings, fake):
    entries = list_models(settings)

    def pane(model: str):
        spec = resolve_choice(f"endpoint:chat:{model}@{fake}", entries)
        return lambda stop: answer(ModelCache(settings), spec, None, ASK, "auto", "", PARAMS, stop)

    *_, (left, right) = stream_pair(pane("limited"), pane("good"))
    assert left.done and left.stats.finish_reason == "error"
    assert "429 Too Many Requests" in left.error and "retry after 7 s" in left.error and "Rate limit" in left.error
    assert (right.text, right.stats.finish_reason, right.error) == ("Hello!", "eos", None)


def test_an_unknown_model_says_so(settings, fake):
    last = run(settings, f"endpoint:chat:nobody@{fake}")[-1]
    assert "has no model 'nobody'" in last.error and "404" in last.error


def test_a_stream_cut_mid_answer_keeps_the_text_exactly_and_says_it_was_cut(settings, fake):
    last = run(settings, f"endpoint:chat:cut@{fake}")[-1]
    assert (last.text, last.stats.finish_reason) == ("Hel", "error")
    assert "broke off mid-answer" in last.error and "cut there" in last.error


def test_a_refused_connection_says_the_server_cant_be_reached(settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    last = run(settings, f"endpoint:chat:m@{url}")[-1]
    assert last.stats.finish_reason == "error" and f"Can't reach {url}" in last.error and "running" in last.error
    with pytest.raises(EndpointError, match="Can't reach"):
        endpoint.check_connection(Endpoint(url, "m"))


def test_stop_ends_a_stalled_answer_at_once_keeping_what_arrived(settings, fake):
    stop = threading.Event()
    spec = resolve_choice(f"endpoint:chat:stall@{fake}", [])
    updates = answer(ModelCache(settings), spec, None, ASK, "auto", "", PARAMS, stop)
    for update in updates:
        if update.text:
            stop.set()
            started = time.monotonic()
    assert (update.text, update.stats.finish_reason, update.error) == ("Hel", "stopped", None)
    assert time.monotonic() - started < 2


def test_test_connection_lists_the_models_and_says_whether_ours_is_one(fake):
    assert "it serves `good`" in endpoint.check_connection(Endpoint(fake, "good"))
    assert "doesn't list `other`" in endpoint.check_connection(Endpoint(fake, "other"))


# ---------------------------------------------------------------------------------------------- the app around it


def test_the_panel_tests_adds_and_removes_an_endpoint_and_refuses_a_key_for_a_name(settings, fake, monkeypatch):
    import gradio as gr

    choices = lambda: compare_tab.model_choices(list_models(settings))  # noqa: E731 - as compare_tab passes it
    assert "it serves `good`" in endpoints_panel.test_endpoint(settings, fake, "good", "chat", "")
    with pytest.raises(gr.Error, match="NAME of the variable"):
        endpoints_panel.add_endpoint(settings, choices, fake, "good", "chat", "sk-live-1234")
    assert not settings.endpoints_file.exists()  # a refused input changes nothing
    monkeypatch.delenv("PLAYGROUND_ENDPOINT_KEY_TEST_UNSET", raising=False)
    note, box_a, box_b = endpoints_panel.add_endpoint(settings, choices, fake, "good", "chat",
                                                      "PLAYGROUND_ENDPOINT_KEY_TEST_UNSET", "x", "y")
    said = endpoints_panel.test_endpoint(settings, fake, "good", "chat", "PLAYGROUND_ENDPOINT_KEY_TEST_UNSET")
    assert said.startswith("**Not usable:**") and "PLAYGROUND_ENDPOINT_KEY_TEST_UNSET" in said and "not set" in said
    source = f"endpoint:chat:good@{fake}"
    assert source in note and (box_a["value"], box_b["value"]) == ("x", "y")
    assert source in [value for _, value in box_a["choices"]]
    note, box_a, _ = endpoints_panel.drop_endpoint(settings, choices, fake, "good", "chat", "", "x", "y")
    assert note == f"Removed `{source}`." and source not in [value for _, value in box_a["choices"]]


def test_compare_shows_a_cut_answer_as_written_with_the_reason_and_the_other_pane_complete(settings, fake):
    ctx = compare_tab.CompareContext(settings, ModelCache(settings), Store(settings.ratings_db), [])
    outputs = list(compare_tab.respond(
        ctx, None, "Say hello.", f"endpoint:chat:cut@{fake}", f"endpoint:chat:good@{fake}", "auto", "auto", "", 0.7,
        0.9, 50, 8, 1.1, 3, False, "auto", "none", request=gr_request()))[-1]
    chat_left, chat_right, stats_left, stats_right = outputs[4], outputs[5], outputs[6], outputs[7]
    assert chat_left[-1]["content"] == verbatim_html("Hel") and "broke off mid-answer" in stats_left
    assert chat_right[-1]["content"] == verbatim_html("Hello!") and "finished: eos · on endpoint" in stats_right
    assert "Only complete answers can be voted on" in outputs[15]


def test_a_rate_batch_asks_endpoints_and_records_them_as_the_sides_models(settings, fake):
    runner = BatchRunner(Store(settings.ratings_db), ModelCache(settings), lambda: list_models(settings))
    models = [f"endpoint:chat:good@{fake}", f"endpoint:chat:good-too@{fake}"]
    batch = runner.start("endpoints", [{"prompt": "Hi?"}, {"prompt": "Bye?"}], models,
                         BatchSettings(PARAMS, LoadOptions()))
    runner.wait(60)
    assert runner.store.batch(batch.id).status == "ready"
    items = runner.store.comparisons(voted_only=False, batch_id=batch.id)
    assert len(items) == 2 and all({i.a.model, i.b.model} == set(models) for i in items)
    assert all(i.a.response == i.b.response == "Hello!" and i.a.finish_reason == "eos" for i in items)


def gr_request():
    import gradio as gr

    return gr.Request(session_hash="endpoint-test")


def test_rate_and_the_judge_relist_their_model_boxes_with_an_endpoint_added_since(settings):
    server = Endpoint("http://127.0.0.1:9/v1", "late", "completions")
    assert server.source not in [v for _, v in compare_tab.relist_models(settings, "x")["choices"]]
    endpoint.save_endpoint(settings, server)
    box = compare_tab.relist_models(settings, "x")
    assert box["value"] == "x" and (f"{server.source}  ·  {server.note}", server.source) in box["choices"]


# ---------------------------------------------------------------------------------------------- keys, extras, the file


def test_a_key_variable_outside_the_prefix_is_refused_and_nothing_is_saved_or_sent(settings, fake, monkeypatch):
    import gradio as gr

    monkeypatch.setenv("HF_TOKEN", "hf-secret-do-not-send")
    FakeServer.seen.clear()
    for callback in (endpoints_panel.test_endpoint, lambda *a: endpoints_panel.add_endpoint(a[0], list, *a[1:])):
        with pytest.raises(gr.Error, match=r"\$HF_TOKEN can't be an endpoint's key.*PLAYGROUND_ENDPOINT_KEY_<NAME>"):
            callback(settings, fake, "good", "chat", "HF_TOKEN")
    assert not settings.endpoints_file.exists() and FakeServer.seen == []


def test_a_key_is_sent_only_to_the_origin_it_was_saved_with(settings, fake, monkeypatch):
    """Host A and host B are one real server under two names (127.0.0.1 and localhost): the key reaches it
    under A's name only; B is refused by Add and Test connection, after A's removal too."""
    import gradio as gr

    var, secret = "PLAYGROUND_ENDPOINT_KEY_TEST_A", "sk-only-for-host-a"
    monkeypatch.setenv(var, secret)
    host_b = fake.replace("127.0.0.1", "localhost")
    FakeServer.seen.clear()
    said = endpoints_panel.test_endpoint(settings, fake, "good", "chat", var)  # not bound yet: nothing sent
    assert said.startswith("**Not usable:**") and "add the endpoint first" in said
    endpoints_panel.add_endpoint(settings, list, fake, "good", "chat", var)
    assert "it serves `good`" in endpoints_panel.test_endpoint(settings, fake, "good", "chat", var)
    assert run(settings, f"endpoint:chat:good@{fake}")[-1].text == "Hello!"
    with pytest.raises(EndpointError, match=f"is already saved with its key in \\${var}"):
        endpoint.save_endpoint(settings, Endpoint(fake, "good", "chat", None))  # the same source, another key
    before = settings.endpoints_file.read_text()
    for attempt in range(2):  # with A saved, then with A removed: the binding stays
        with pytest.raises(gr.Error, match=f"{var} is the key for http://127.0.0.1:\\d+ only"):
            endpoints_panel.add_endpoint(settings, list, host_b, "good", "chat", var)
        said = endpoints_panel.test_endpoint(settings, host_b, "good", "chat", var)
        assert said.startswith("**Not usable:**") and "never sent to http://localhost" in said
        if attempt == 0:
            assert settings.endpoints_file.read_text() == before  # a refused save changes nothing
            endpoints_panel.drop_endpoint(settings, list, fake, "good", "chat", var)
    assert run(settings, f"endpoint:chat:good@{host_b}")[-1].text == "Hello!"  # typed: no key
    rows = json.loads(settings.endpoints_file.read_text())  # a hand-edited entry for B with A's key: not used
    rows["endpoints"].append({"base_url": host_b, "model": "good", "api": "chat", "key_env": var})
    settings.endpoints_file.write_text(json.dumps(rows))
    assert endpoint.saved_endpoints(settings) == []
    sent = {(host, auth) for host, auth, _ in FakeServer.seen}
    assert sent == {(fake.split("/")[2], f"Bearer {secret}"), (host_b.split("/")[2], f"Bearer {endpoint.NO_KEY}")}


def test_a_server_that_refuses_top_k_like_openai_is_asked_again_without_it(settings, strict, monkeypatch):
    monkeypatch.setattr(endpoint, "_REFUSED_EXTRAS", set(), raising=False)  # forget other tests' servers
    FakeServer.seen.clear()
    last = run(settings, f"endpoint:chat:good@{strict}")[-1]  # PARAMS: top_k 50, repetition penalty 1.1
    assert (last.text, last.error, last.stats.finish_reason) == ("Hello!", None, "eos")
    assert "top_k, repetition_penalty not sent: 127.0.0.1 refused top_k" in last.stats.summary()
    assert [("top_k" in body, "repetition_penalty" in body) for *_, body in FakeServer.seen] == [(True, True),
                                                                                                 (False, False)]
    FakeServer.seen.clear()  # a Rate batch on its defaults: the server isn't sent the extras again
    runner = BatchRunner(Store(settings.ratings_db), ModelCache(settings), lambda: list_models(settings))
    models = [f"endpoint:chat:good@{strict}", f"endpoint:chat:good-too@{strict}"]
    batch = runner.start("openai-like", [{"prompt": "Hi?"}], models, BatchSettings(GenerationParams(max_new_tokens=8),
                                                                                   LoadOptions()))
    runner.wait(60)
    assert runner.store.batch(batch.id).status == "ready" and len(FakeServer.seen) == 2
    assert all("top_k" not in body for *_, body in FakeServer.seen)


def test_extras_are_not_sent_to_a_host_known_to_refuse_them(settings, strict, monkeypatch):
    monkeypatch.setattr(endpoint, "_REFUSED_EXTRAS", set())
    monkeypatch.setattr(endpoint, "NO_EXTRAS_HOSTS", frozenset({"127.0.0.1"}))  # as api.openai.com
    FakeServer.seen.clear()
    last = run(settings, f"endpoint:chat:good@{strict}")[-1]
    assert last.text == "Hello!" and "not sent: 127.0.0.1 doesn't take them" in last.stats.summary()
    assert len(FakeServer.seen) == 1 and "top_k" not in FakeServer.seen[0][2]


def test_concurrent_adds_and_removes_keep_every_change(settings):
    def work(worker: int) -> None:
        for n in range(6):
            endpoint.save_endpoint(settings, Endpoint(f"http://127.0.0.1:{9000 + worker}/v1", f"m{n}"))
        for n in range(0, 6, 2):
            endpoint.remove_endpoint(settings, Endpoint(f"http://127.0.0.1:{9000 + worker}/v1", f"m{n}").source)

    errors: list[Exception] = []
    threads = [threading.Thread(target=_catch, args=(work, w, errors)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    expected = {Endpoint(f"http://127.0.0.1:{9000 + w}/v1", f"m{n}").source for w in range(8) for n in (1, 3, 5)}
    assert {e.source for e in endpoint.saved_endpoints(settings)} == expected
    assert len(json.loads(settings.endpoints_file.read_text())["endpoints"]) == len(expected)
    assert not list(settings.endpoints_file.parent.glob("*.tmp"))


def _catch(work, worker: int, errors: list) -> None:
    try:
        work(worker)
    except Exception as error:  # a worker's failure is the test's
        errors.append(error)
