"""The endpoint client against a real OpenAI-compatible server: the app's own ``python -m playground.serve`` on a
tiny model, in its own process, with an API key (tests/serve_process.py). Chat and completions stream with the
panes' stats, Stop ends an answer, a seed gives the same answer again, a wrong key and an unknown model are each a
clear message, and a Compare turn with a vote leaves the key nowhere on disk."""

from __future__ import annotations

import logging
import threading
from typing import Iterator

import pytest

from playground.models import endpoint
from playground.models.catalog import list_models, resolve_choice
from playground.models.endpoint import Endpoint
from playground.models.generation import GenerationParams, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings import comparison as cmp
from playground.ratings.judge import Judge, judge_answers
from playground.ratings.store import Store
from tests.serve_process import RunningServer, serving

KEY = "pg-test-key-7f3a9c2e51"
CLIENT_KEY_ENV = "PLAYGROUND_ENDPOINT_KEY_TEST_SERVE"
"""Where the client reads the key (the server reads it from serve_process.KEY_ENV): endpoint keys are PLAYGROUND_ENDPOINT_KEY_*."""
ASK = [{"role": "user", "content": "Tell me a story."}]
PARAMS = GenerationParams(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_new_tokens=12, seed=7)


@pytest.fixture(scope="module")
def server(tiny_chat, tmp_path_factory) -> Iterator[RunningServer]:
    with serving(tiny_chat, tmp_path_factory.mktemp("serve") / "data", api_key=KEY) as running:
        yield running


@pytest.fixture
def keyed(settings, server, monkeypatch):
    """The served model saved as a chat and a completions endpoint whose key is in CLIENT_KEY_ENV; their choice
    strings."""
    monkeypatch.setenv(CLIENT_KEY_ENV, KEY)
    chat = Endpoint(server.base_url, server.model, "chat", CLIENT_KEY_ENV)
    plain = Endpoint(server.base_url, server.model, "completions", CLIENT_KEY_ENV)
    for added in (chat, plain):
        endpoint.save_endpoint(settings, added)
    return chat.source, plain.source


def ask(settings, choice: str, params: GenerationParams = PARAMS, stop: threading.Event | None = None,
        fmt: str = "auto") -> list[tuple[str, str | None, object]]:
    """(text, finish reason, stats) of each snapshot of one answer."""
    spec = resolve_choice(choice, list_models(settings))
    return [(u.text, u.stats.finish_reason, u) for u in
            answer(ModelCache(settings), spec, LoadOptions(), ASK, fmt, "Be brief.", params, stop or threading.Event())]


@pytest.mark.slow
def test_chat_and_completions_stream_with_stats_and_a_seed_repeats_the_answer(settings, keyed):
    chat, plain = keyed
    texts = {}
    for choice in (chat, plain):
        first = ask(settings, choice)
        text, reason, last = first[-1][0], first[-1][1], first[-1][2]
        assert last.error is None and reason == "length" and text
        assert last.stats.new_tokens == PARAMS.max_new_tokens and last.stats.prompt_tokens > 0
        assert last.stats.time_to_first_token is not None and last.stats.tokens_per_second > 0
        assert len({t for t, _, _ in first if t}) > 1  # it arrived piece by piece
        texts[choice] = text
        again = ask(settings, choice)[-1]
        assert again[0] == text  # same seed: same answer
        if choice == plain:
            assert again[2].prompt_text == "Be brief.\n\nTell me a story."  # the plain text, rendered here
    other = ask(settings, chat, GenerationParams(**{**PARAMS.__dict__, "seed": 8}))[-1][0]
    assert other != texts[chat]  # another seed: another answer


@pytest.mark.slow
def test_stop_mid_stream_keeps_what_arrived(settings, keyed):
    stop = threading.Event()
    spec = resolve_choice(keyed[0], list_models(settings))
    long = GenerationParams(**{**PARAMS.__dict__, "max_new_tokens": 200})
    for update in answer(ModelCache(settings), spec, LoadOptions(), ASK, "auto", "", long, stop):
        if update.text:
            stop.set()
            seen = update.text
    assert update.stats.finish_reason == "stopped" and update.error is None
    assert update.text == seen and update.stats.new_tokens < 200


@pytest.mark.slow
def test_a_wrong_key_and_an_unknown_model_are_clear_messages(settings, server, monkeypatch):
    monkeypatch.setenv(CLIENT_KEY_ENV, "not-the-key")
    endpoint.save_endpoint(settings, Endpoint(server.base_url, server.model, "chat", CLIENT_KEY_ENV))
    last = ask(settings, Endpoint(server.base_url, server.model).source)[-1][2]
    assert "401" in last.error and f"${CLIENT_KEY_ENV}" in last.error and last.stats.finish_reason == "error"
    monkeypatch.setenv(CLIENT_KEY_ENV, KEY)
    missing = Endpoint(server.base_url, "no-such-model", "chat", CLIENT_KEY_ENV)
    endpoint.save_endpoint(settings, missing)
    last = ask(settings, missing.source)[-1][2]
    assert "has no model 'no-such-model'" in last.error and "404" in last.error
    assert f"it serves `{server.model}`" in endpoint.check_connection(Endpoint(server.base_url, server.model,
                                                                                key_env=CLIENT_KEY_ENV))


@pytest.mark.slow
def test_a_compare_turn_and_its_vote_record_the_endpoint_and_the_key_is_nowhere(settings, keyed, server, tiny_base,
                                                                                caplog):
    caplog.set_level(logging.DEBUG)
    chat, _ = keyed
    entries = list_models(settings)
    turn = cmp.start(chat, str(tiny_base), blind=False)
    *_, (left, right) = cmp.run_turn(turn, "Hello?", ModelCache(settings), entries, ("auto", "plain"), "", PARAMS,
                                     LoadOptions(), threading.Event())
    assert left.error is None and right.error is None
    assert cmp.finish_turn(turn, left, right, entries, ("auto", "plain"), "", PARAMS)
    record = cmp.vote(Store(settings.ratings_db), turn, "left")
    saved = Store(settings.ratings_db).comparisons()[0]
    assert (saved.a.model, saved.a.response, saved.a.params["backend"]) == (chat, left.text, "endpoint")
    assert saved.winner == record.winner == "a"
    for path in [*settings.data_dir.rglob("*"), server.log]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text


@pytest.mark.slow
def test_an_endpoint_judges_a_pair_in_both_orders(settings, keyed):
    spec = resolve_choice(keyed[0], list_models(settings))
    judge = Judge(spec, "Q: {question}\n1: {first}\n2: {second}\nBetter:",
                  params=GenerationParams(temperature=0.0, max_new_tokens=6, repetition_penalty=1.0))
    verdict = judge_answers(ModelCache(settings), judge, "Hi?", "Hello!", "Bye.")
    assert judge.model == keyed[0] and judge.rater == f"judge:{keyed[0]}"
    assert [order.shown for order in verdict.orders] == [("a", "b"), ("b", "a")]
    assert all(order.text for order in verdict.orders) and verdict.winner in ("a", "b", "tie")
