"""Preparing the panes' models from start-up: the board's percentage and ETA, the background load, and what a pane
shows before and while it waits."""

from __future__ import annotations

import threading
import time

from playground.models import preparation
from playground.models.catalog import ModelSpec
from playground.models.loading import LoadOptions, ModelCache, estimate_load_seconds
from playground.models.preparation import Board, Preparing
from playground.ui.compare_tab import preparation_line


def test_a_preparation_reports_its_step_percentage_and_time_left():
    item = Preparing("gemma-3-270m", expected_seconds=40, started=100.0, line="reading its tokenizer")
    assert item.percent(now=110.0) == 25 and item.eta_seconds(now=110.0) == 30
    assert item.describe(now=110.0) == "Preparing gemma-3-270m: reading its tokenizer · 25 % · about 30 s left"
    assert item.describe("one of the models", now=110.0).startswith("Preparing one of the models ·")  # blind mode
    # Past its estimate it holds at 99 % and says "almost done" rather than a negative time.
    assert item.percent(now=200.0) == 99 and "almost done" in item.describe(now=200.0)
    item.finished = 130.0
    assert item.percent() == 100 and item.describe() == "gemma-3-270m is ready (prepared in 30 s)."
    failed = Preparing("x", 10, error="out of memory")
    assert failed.describe() == "Could not prepare x: out of memory"


def test_a_model_announced_and_waiting_keeps_its_waited_time_when_its_load_starts():
    board = Board()
    first = board.begin(("k",), "m", expected_seconds=30)
    first.started -= 20  # it has waited 20 s for the model before it
    again = board.begin(("k",), "m", expected_seconds=10)
    assert again is first and 19 <= again.expected_seconds - 10 <= 21  # never jumps back to 0 %
    assert board.active() == [first]
    first.finished = time.monotonic()
    assert board.active() == [] and board.finished_within(5)


def test_the_estimate_counts_one_time_work():
    light = preparation.estimate_seconds(242, needs_tokenizer=False, needs_import=False, weights_mb=242)
    tokenizer = preparation.estimate_seconds(242, needs_tokenizer=True, needs_import=False, weights_mb=242)
    imported = preparation.estimate_seconds(242, needs_tokenizer=False, needs_import=True, weights_mb=968)
    assert light < tokenizer < imported and imported > 60


def test_prepare_loads_the_panes_models_in_the_background_and_a_send_waits_for_it(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    specs = [ModelSpec(str(tiny_base), kind="base"), ModelSpec(str(tiny_chat), kind="instruct")]
    assert all(estimate_load_seconds(spec, LoadOptions(), settings) >= 1 for spec in specs)
    thread = cache.prepare(specs)
    keys = [cache.key(spec, LoadOptions()) for spec in specs]
    assert all(cache.board.get(key) is not None for key in keys)  # both announced at once
    heard: list[str] = []
    loaded = cache.get(specs[1], progress=heard.append)  # a Send while the preparation runs
    thread.join(60)
    assert loaded is cache.get(specs[1]) and len(cache.loaded()) == 2
    assert all(cache.board.get(key).finished is not None for key in keys)
    entries = []
    line = preparation_line(cache, entries, str(tiny_chat), "auto", "none")
    assert f"{specs[1].name} is ready (prepared in" in line
    assert preparation_line(cache, entries, "/no/such/model", "auto", "none") == ""


def test_a_send_during_a_long_preparation_hears_its_progress(settings, tiny_chat, monkeypatch):
    """The pane of a Send that arrives mid-preparation shows the preparation's own line and percentage."""
    import playground.models.loading as loading

    release = threading.Event()
    real_load = loading.load

    def slow_load(spec, settings, options, progress):
        progress("reading its tokenizer")
        release.wait(10)
        return real_load(spec, settings, options, progress)

    monkeypatch.setattr(loading, "load", slow_load)
    cache = ModelCache(settings)
    spec = ModelSpec(str(tiny_chat), kind="instruct")
    thread = cache.prepare([spec])
    heard: list[str] = []
    waiter = threading.Thread(target=lambda: cache.get(spec, progress=heard.append))
    waiter.start()
    deadline = time.monotonic() + 10
    while not heard and time.monotonic() < deadline:
        time.sleep(0.1)
    release.set()
    waiter.join(30)
    thread.join(30)
    assert heard and heard[0].startswith(f"Preparing {spec.name}: reading its tokenizer ·") and "%" in heard[0]


def test_blind_mode_lines_name_no_model_and_no_side(settings, tiny_chat):
    item = Preparing("gemma-3-270m", 40, started=100.0, line="Reading Gemma 3 270M (base)'s tokenizer")
    blind = item.describe("one of the models", now=110.0)
    assert blind == "Preparing one of the models · 25 % · about 30 s left" and "emma" not in blind
    item.error = "gemma-3-270m is not installed"
    assert item.describe("one of the models") == "Could not prepare one of the models."
    item.error, item.finished = None, 130.0
    assert item.describe("one of the models") == "One of the models is ready (prepared in 30 s)."


def test_a_send_gets_its_model_as_soon_as_it_is_ready_not_after_the_next_one(settings, tiny_base, tiny_chat,
                                                                             monkeypatch):
    """The preparation loads the right pane's model, then the left one's for a while: the right pane's answer
    starts when its own model is ready."""
    import playground.models.loading as loading

    gates = {str(tiny_chat): threading.Event(), str(tiny_base): threading.Event()}
    real_load = loading.load

    def gated_load(spec, settings, options, progress):
        gates[spec.source].wait(20)
        return real_load(spec, settings, options, progress)

    monkeypatch.setattr(loading, "load", gated_load)
    monkeypatch.setattr(loading, "estimate_load_seconds",
                        lambda spec, options, settings: 1.0 if spec.source == str(tiny_chat) else 2.0)
    cache = ModelCache(settings)
    right, left = ModelSpec(str(tiny_chat), kind="instruct"), ModelSpec(str(tiny_base), kind="base")
    thread = cache.prepare([left, right])  # quickest first: the right one
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(cache.get(right)))
    waiter.start()
    time.sleep(0.3)
    gates[str(tiny_chat)].set()  # the right model loads; the left one's load then holds the lock (gate closed)
    waiter.join(10)
    assert got and got[0].spec == right and thread.is_alive()  # answered while the left model still loads
    gates[str(tiny_base)].set()
    thread.join(30)
