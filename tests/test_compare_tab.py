"""The Compare tab's callbacks called directly, without a server: Send with tiny models, the vote buttons, Reveal,
Regenerate's seed, blind mode and Stop (until now only the browser tests or the API reached them)."""

from __future__ import annotations

import functools
import inspect
import threading

import gradio as gr
import pytest
from gradio import utils

from playground.models.catalog import list_models
from playground.models.loading import ModelCache
from playground.ratings import comparison as cmp
from playground.ratings.store import Store
from playground.ui import compare_tab as tab
from playground.ui.compare_tab import CompareContext, StopRegistry
from playground.ui.rater import bind

# respond's outputs, in build()'s order
STATE, PROMPT, TITLE_L, TITLE_R, CHAT_L, CHAT_R, STATS_L, STATS_R, SENT_L, SENT_R, LOADED = range(11)
BUTTONS = slice(11, 15)
NOTE, SHOWN, PICKERS, BLIND_NOTE = 15, 16, 17, 18


@pytest.fixture
def ctx(settings) -> CompareContext:
    return CompareContext(settings, ModelCache(settings), Store(settings.ratings_db), list_models(settings))


def session(name: str = "s1", username: str | None = None) -> gr.Request:
    return gr.Request(session_hash=name, username=username)


def send(ctx, current, text, a, b, request=None, **changes):
    """Every snapshot ``respond`` yields for one Send, with the tab's default settings unless changed."""
    args = dict(fmt_a="auto", fmt_b="auto", system_text="", temp=0.7, p=0.9, k=50, n=6, rep=1.1, seed_value=42,
                blind_on=False, dtype_value="auto", quant_value="none")
    args.update(changes)
    return list(tab.respond(ctx, current, text, str(a), str(b), **args, request=request or session()))


def regenerate(ctx, current, a, b, **changes):
    args = dict(fmt_a="auto", fmt_b="auto", system_text="", temp=1.0, p=1.0, k=0, n=6, rep=1.0, seed_value=42,
                blind_on=False, dtype_value="auto", quant_value="none")
    args.update(changes)
    return list(tab.regenerate_last(ctx, current, str(a), str(b), **args, request=session()))


def gradio_inputs(fn) -> list[str]:
    """The parameters Gradio fills from an event's inputs, in order (their names are the API's argument names)."""
    return [parameter.name for parameter in utils.get_positional_input_parameters(fn)]


def unlocked(outputs) -> list[bool]:
    return [update["interactive"] for update in outputs[BUTTONS]]


def test_send_streams_both_answers_then_unlocks_the_votes(ctx, tiny_base, tiny_chat):
    snapshots = send(ctx, None, "Explain the moon landing.", tiny_base, tiny_chat)
    assert len(snapshots) >= 2 and all(len(s) == 19 for s in snapshots)
    assert all(unlocked(s) == [False] * 4 for s in snapshots[:-1])  # locked while the answers stream
    last = snapshots[-1]
    comparison = last[STATE]
    assert isinstance(comparison, cmp.Comparison) and comparison.record is not None
    assert unlocked(last) == [True] * 4 and last[NOTE] == "Which answer is better?"
    assert last[PROMPT] == "" and "tiny-base" in last[TITLE_L] and "tiny-chat" in last[TITLE_R]
    assert "tok/s" in last[STATS_L] and "<|assistant|>" in last[SENT_R]
    assert [m["role"] for m in last[CHAT_L]] == ["user", "assistant"] and last[CHAT_R][-1]["content"]
    left, right = last[SHOWN]  # kept for Reveal: the final snapshots of both answers
    assert left.done and right.done and comparison.left[-1]["content"] == left.text
    assert last[PICKERS] == {"__type__": "update", "visible": True}  # not blind: the pickers stay
    assert "tiny-base" in last[LOADED]


def test_an_empty_prompt_or_an_impossible_setting_is_refused(ctx, tiny_base, tiny_chat):
    assert tab.prompt_given("  ")["is_valid"] is False and tab.prompt_given("Hi")["is_valid"] is True
    with pytest.raises(gr.Error, match="Type a prompt first"):
        send(ctx, None, "   ", tiny_base, tiny_chat)
    with pytest.raises(gr.Error, match="max_new_tokens"):
        send(ctx, None, "Hi", tiny_base, tiny_chat, n=0)


def test_vote_saves_the_turn_and_voting_again_changes_it(ctx, tiny_base, tiny_chat):
    comparison = send(ctx, None, "Which is better?", tiny_base, tiny_chat)[-1][STATE]
    state, title_left, title_right, note = tab.vote_button(ctx, "left", comparison, 4, "more fluent", " ana  ",
                                                           session())
    assert state is comparison and "tiny-base" in title_left and "tiny-chat" in title_right
    assert note.startswith("Saved as **Left (") and "is better** · strength 4 (rater: ana)" in note
    saved = ctx.store.comparisons()
    assert len(saved) == 1 and (saved[0].winner, saved[0].strength, saved[0].rationale) == ("a", 4, "more fluent")
    note = tab.cast_vote(ctx, comparison, "tie", 0, "", "ana", session(username="login"))[-1]
    again = ctx.store.comparisons()
    assert "Saved as **a tie** (rater: login)" in note  # a login outranks the typed name
    assert len(again) == 1 and again[0].id == saved[0].id and (again[0].winner, again[0].strength) == ("tie", None)


def test_there_is_nothing_to_vote_on_before_a_complete_turn(ctx):
    with pytest.raises(gr.Error, match="Nothing to vote on yet"):
        tab.cast_vote(ctx, None, "left", 0, "", "", session())
    with pytest.raises(gr.Error, match="The vote was not saved: Nothing to vote on"):
        tab.cast_vote(ctx, cmp.start("a", "b", blind=False), "left", 0, "", "", session())


def test_a_blind_turn_hides_the_models_until_reveal(ctx, tiny_base, tiny_chat):
    last = send(ctx, None, "Hello?", tiny_base, tiny_chat, blind_on=True)[-1]
    comparison = last[STATE]
    shown = " ".join(str(part) for part in last[TITLE_L:SENT_R + 1])
    assert "tiny" not in shown and "<|assistant|>" not in shown and "llama.cpp" not in shown
    assert (last[TITLE_L], last[TITLE_R]) == ("### Left: Model 1", "### Right: Model 2")
    assert last[SENT_L] == last[SENT_R] == tab.HIDDEN_PROMPT and "tok/s" in last[STATS_L]
    assert (last[PICKERS]["visible"], last[BLIND_NOTE]["visible"]) == (False, True)  # pickers would tell

    revealed = tab.reveal_names(comparison, last[SHOWN], True)
    assert revealed[0] is comparison and comparison.revealed
    titles = revealed[1] + revealed[2]
    assert "tiny-base" in titles and "tiny-chat" in titles
    assert "<|assistant|>" in revealed[7] + revealed[8]  # the exact prompts blind mode hid
    assert (revealed[9]["visible"], revealed[10]["visible"]) == (True, False)


def test_a_blind_vote_reveals_the_names(ctx, tiny_base, tiny_chat):
    last = send(ctx, None, "Blind question", tiny_base, tiny_chat, blind_on=True)[-1]
    comparison = last[STATE]
    _, title_left, title_right, _ = tab.vote_button(ctx, "right", comparison, 0, "", "", session())
    assert "tiny" in title_left and "tiny" in title_right
    record = ctx.store.comparisons()[0]
    assert record.blind and record.rater == "anonymous"
    assert record.winner == ("a" if record.left_side == "b" else "b")  # "right" is whichever model was there
    view = tab.revealed_view(comparison, last[SHOWN], True)  # what the vote buttons show next
    assert len(view) == 10 and "<|assistant|>" in view[6] + view[7]


def test_reveal_and_revealed_view_leave_what_is_not_blind_alone(ctx):
    assert tab.revealed_view(cmp.start("a", "b", blind=False), None, False) == [gr.skip()] * 10
    assert tab.revealed_view(None, None, True) == [gr.skip()] * 10
    assert tab.reveal_names(None, None, True) == [None] + [gr.skip()] * 10
    blind = cmp.start("a", "b", blind=True)
    view = tab.reveal_names(blind, None, True)  # nothing sent yet on this one: titles only
    assert set(view[1:3]) == {"### Left: a", "### Right: b"} or set(view[1:3]) == {"### Left: b", "### Right: a"}
    assert view[3:9] == [gr.skip()] * 6


def test_regenerate_asks_again_with_the_next_seed(ctx, tiny_base, tiny_chat):
    first = send(ctx, None, "Tell me a story.", tiny_base, tiny_chat, temp=1.0, p=1.0, k=0, rep=1.0)[-1][STATE]
    assert first.record.a.params["seed"] == 42
    again = regenerate(ctx, first, tiny_base, tiny_chat, seed_value=42)[-1]
    assert again[STATE] is first and len(first.left) == len(first.right) == 2  # the last turn is replaced
    assert first.left[0]["content"] == "Tell me a story." and first.record.a.params["seed"] == 43
    assert tab.next_seed(42) == 43 and tab.next_seed(None) == 1  # what the Seed box shows next
    # The same seed gives the same answers: Regenerate's turn can be made again from the shown seed.
    fresh = send(ctx, None, "Tell me a story.", tiny_base, tiny_chat, temp=1.0, p=1.0, k=0, rep=1.0,
                 seed_value=43)[-1]
    assert fresh[STATE].left[-1]["content"] == first.left[-1]["content"]
    assert fresh[STATE].right[-1]["content"] == first.right[-1]["content"]


def test_regenerate_with_nothing_sent_warns_and_changes_nothing(ctx, tiny_base, tiny_chat):
    with pytest.warns(UserWarning, match="Nothing to regenerate yet"):
        assert regenerate(ctx, None, tiny_base, tiny_chat) == []
    with pytest.warns(UserWarning, match="Nothing to regenerate yet"):
        assert regenerate(ctx, cmp.start("a", "b", blind=False), tiny_base, tiny_chat) == []


def test_stop_ends_this_sessions_answers_and_no_one_elses(ctx, tiny_base, tiny_chat):
    turns = tab.respond(ctx, None, "Tell me everything.", str(tiny_base), str(tiny_chat), "plain", "plain", "",
                        1.0, 1.0, 0, 1024, 1.0, 1, False, "auto", "none", request=session("mine"))
    snapshots = [next(turns)]  # the answers are on their way
    other = ctx.stops.fresh("theirs")
    tab.stop_answers(ctx, session("theirs"))
    snapshots += [next(turns)]
    assert other.is_set() and "stopped" not in snapshots[-1][STATS_L]  # their Stop left these answers going
    tab.stop_answers(ctx, session("mine"))
    snapshots += list(turns)
    last = snapshots[-1]
    assert "finished: stopped" in last[STATS_L] and "finished: stopped" in last[STATS_R]
    assert unlocked(last) == [False] * 4 and last[NOTE].startswith("Only complete answers can be voted on")
    assert last[STATE].record is None


def test_the_stop_registry_keeps_one_flag_per_session():
    stops = StopRegistry()
    mine, theirs = stops.fresh("mine"), stops.fresh("theirs")
    stops.stop("mine")
    stops.stop("nobody")  # a session that never sent anything: nothing to stop
    assert mine.is_set() and not theirs.is_set()
    assert not stops.fresh("mine").is_set()  # the next Send starts with a fresh flag
    assert isinstance(mine, threading.Event)


def test_clear_and_blind_mode_start_a_new_conversation(ctx):
    cleared = tab.clear_all("model-a", "model-b")
    assert cleared[:4] == [None, None, "### Left: model-a", "### Right: model-b"] and cleared[4:6] == [[], []]
    assert [u["interactive"] for u in cleared[10:14]] == [False] * 4 and cleared[14] == tab.LOCKED_NOTE
    blind = tab.toggle_blind(True, "model-a", "model-b")
    assert blind[0]["visible"] is True  # the Reveal button
    assert blind[3:5] == ["### Left: Model 1", "### Right: Model 2"]
    assert (blind[-2]["visible"], blind[-1]["visible"]) == (False, True)
    assert tab.toggle_blind(False, "model-a", "model-b")[0]["visible"] is False


def test_no_preparation_line_while_nothing_is_prepared(ctx, tiny_base, tiny_chat):
    left, right, timer = tab.preparing(ctx, str(tiny_base), str(tiny_chat), False, "auto", "none")
    assert (left, right) == ("", "") and isinstance(timer, gr.Timer) and timer.active is False
    assert tab.preparing(ctx, "no/such-model", str(tiny_chat), True, "auto", "none")[:2] == ["", ""]


def test_rescan_keeps_both_picks_and_unload_frees_the_models(ctx, tiny_base, tiny_chat, capsys):
    a, b = tab.rescan(ctx, str(tiny_base), "typed/model")
    assert (a["value"], b["value"]) == (str(tiny_base), "typed/model") and a["choices"] == b["choices"]
    send(ctx, None, "Hi", tiny_base, tiny_chat)
    assert "tiny-base" in ctx.cache.describe()
    assert tab.unload_all(ctx) == "No models loaded."
    assert "Unloaded 2 model(s)." in capsys.readouterr().out


def test_bound_callbacks_show_gradio_their_inputs_by_name_and_keep_the_request_injected(ctx):
    """``bind`` fixes the context the way Gradio can still read: the inputs it sees are the API's argument names,
    the ``gr.Request`` stays Gradio's to fill (a bare ``functools.partial`` hides its type hint), and a streaming
    callback stays a generator function."""
    respond = bind(tab.respond, ctx)
    assert gradio_inputs(respond) == ["current", "text", "a", "b", "fmt_a", "fmt_b", "system_text", "temp", "p", "k",
                                      "n", "rep", "seed_value", "blind_on", "dtype_value", "quant_value"]
    assert inspect.isgeneratorfunction(respond) and inspect.isgeneratorfunction(bind(tab.regenerate_last, ctx))
    assert gradio_inputs(bind(tab.cast_vote, ctx)) == ["current", "side", "strength_value", "why", "typed_rater"]
    assert gradio_inputs(bind(tab.vote_button, ctx, "left")) == ["current", "strength_value", "why", "typed_rater"]
    assert gradio_inputs(bind(tab.stop_answers, ctx)) == []
    assert "request" in gradio_inputs(functools.partial(tab.stop_answers, ctx))  # why bind exists
