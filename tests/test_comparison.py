"""A comparison session: blind shuffling, per-model formats, conversation keeping, regenerate."""

import random
import threading

import pytest

from playground.models.generation import GenerationParams, StreamStats, StreamUpdate
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings import comparison as cmp
from playground.ratings.store import Store


def test_blind_mode_shuffles_and_records_the_order():
    seen = {cmp.start("a", "b", blind=True, rng=random.Random(seed)).swapped for seed in range(20)}
    assert seen == {True, False}
    swapped = next(c for c in (cmp.start("a", "b", True, random.Random(s)) for s in range(20)) if c.swapped)
    assert swapped.side_models == ("b", "a")
    assert swapped.labels() == ("Model 1", "Model 2")
    swapped.revealed = True
    assert swapped.labels() == ("b", "a")


def test_not_blind_never_swaps_and_shows_names():
    c = cmp.start("a", "b", blind=False)
    assert not c.swapped and c.labels() == ("a", "b")


def test_changing_a_model_starts_a_new_conversation():
    c = cmp.start("a", "b", False)
    assert cmp.continue_or_start(c, "a", "b", False) is c
    assert cmp.continue_or_start(c, "a", "c", False) is not c
    assert cmp.continue_or_start(c, "a", "b", True) is not c


def test_turns_keep_both_conversations_and_formats_follow_the_model(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    c = cmp.Comparison(model_a=str(tiny_base), model_b=str(tiny_chat), blind=True, swapped=True)
    params = GenerationParams(max_new_tokens=6)
    for prompt in ("First question?", "Second question?"):
        *_, (left, right) = cmp.run_turn(c, prompt, cache, [], ("plain", "chat"), "", params, LoadOptions(),
                                               threading.Event())
    # Model B (chat) is on the left because of the swap, and got the chat format it was given.
    assert "<|assistant|>" in left.prompt_text and "First question?" in left.prompt_text
    assert right.prompt_text.startswith("<s>First question?")
    assert [m["role"] for m in c.left] == ["user", "assistant", "user", "assistant"]
    assert c.left[-1]["content"] == left.text and c.right[-1]["content"] == right.text
    # Voting on the finished second turn: "left" is model B, and B's own earlier answer is kept on its side.
    assert cmp.finish_turn(c, left, right, [], ("plain", "chat"), "Be brief.", params)
    saved = cmp.vote(Store(settings.ratings_db), c, "left", strength=2, rater="r")
    assert (saved.winner, saved.left_side, saved.blind, saved.strength) == ("b", "b", True, 2)
    assert saved.a.model == str(tiny_base) and saved.a.prompt_format == "plain" and saved.b.prompt_format == "chat"
    assert saved.a.response == c.right[-1]["content"] and saved.b.response == c.left[-1]["content"]
    assert saved.messages == c.right[:-1] and saved.b.history == c.left[:-1]
    assert saved.system_prompt == "Be brief." and c.revealed
    assert cmp.drop_last_turn(c) == "Second question?"
    assert len(c.left) == len(c.right) == 2


def test_regenerate_with_nothing_sent():
    c = cmp.start("a", "b", False)
    assert cmp.drop_last_turn(c) is None


def test_only_complete_answers_can_be_voted_on(settings):
    c = cmp.start("a", "b", False)
    stopped = StreamUpdate(text="partial", done=True, stats=StreamStats(finish_reason="stopped"))
    complete = StreamUpdate(text="whole", done=True, stats=StreamStats(finish_reason="eos"))
    assert not cmp.finish_turn(c, stopped, complete, [], ("auto", "auto"), "", GenerationParams())
    with pytest.raises(ValueError, match="Nothing to vote on"):
        cmp.vote(Store(settings.ratings_db), c, "left")
