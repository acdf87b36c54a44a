"""The Rate tab: its progress line names the generation's state with counts; its callbacks, called directly."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest
from gradio.utils import get_positional_input_parameters

from playground.core.verbatim import verbatim_html
from playground.models.loading import ModelCache
from playground.ratings.batch import BatchRunner
from playground.ratings.store import ComparisonRecord, Side, Store
from playground.ui.rate_tab import (
    RateContext,
    _progress_html,
    batch_choices,
    cast,
    open_batch,
    rate_button,
    requeue_skipped,
    resume_generating,
    show_pair,
    skip_pair,
    start_batch,
    stop_generating,
    tick,
    undo_last,
    upload_visible,
)
from playground.ui.rater import bind


@pytest.mark.parametrize("status, says", [("generating", " · generating <progress"),
                                          ("stopped", " · generation stopped <progress"),
                                          ("interrupted", " · generation interrupted <progress"),
                                          ("failed", " · generation failed <progress")])
def test_the_progress_line_says_how_generation_stands(settings, status, says):
    store = Store(settings.ratings_db)
    batch = store.create_batch("b", ["m1", "m2"], 4, [{"prompt": "x"}])
    store.set_batch_status(batch.id, status)
    line = _progress_html(store, store.batch(batch.id))
    assert says in line and "0 / 4 rated" in line and "0 / 4 generated" in line
    if status != "generating":
        assert "· generating" not in line


def test_a_stopped_batch_no_longer_says_generating(settings):
    store = Store(settings.ratings_db)
    batch = store.create_batch("b", ["m1", "m2"], 4, [{"prompt": "x"}])
    store.set_batch_status(batch.id, "stopped", "Stopped by the user.")
    assert "generating" not in _progress_html(store, store.batch(batch.id))


# ---------------------------------------------------------------------------------------------- callbacks
# The Rate tab's callbacks called directly, without a server: starting a batch, refusing a bad prompt file,
# showing a pair and voting on it, skip, undo, Stop/Resume generating (until now only the browser or the API).

STATUS, PROMPT, LEFT, RIGHT = 2, 3, 4, 5  # show_pair's outputs after the pair id (0) and the progress line (1)
SCORE_LEFT, SCORE_RIGHT = 11, 12  # then the five rating buttons, skip, and the two answers' score rows
LAST, STRENGTH, WHY, MINE = -4, -3, -2, -1  # a vote's outputs after show_pair's


@pytest.fixture
def ctx(settings) -> RateContext:
    store = Store(settings.ratings_db)
    return RateContext(store, BatchRunner(store, ModelCache(settings), lambda: []))


def session(username: str | None = None) -> gr.Request:
    return gr.Request(session_hash="s1", username=username)


def hand_made_batch(store: Store, pairs: int = 3) -> str:
    """A ready batch of ``pairs`` blind pairs (no model runs): model m1 on the right of the first pair."""
    batch = store.create_batch("hand made", ["m1", "m2"], pairs, [{"prompt": f"Q{i}"} for i in range(pairs)])
    for i in range(pairs):
        store.save(ComparisonRecord(
            messages=[{"role": "user", "content": f"Question <{i}>?"}], system_prompt="Be brief." if i == 0 else "",
            a=Side(model="m1", response=f"<b>answer a{i}</b>"), b=Side(model="m2", response=f"answer b{i}"),
            left_side="b" if i == 0 else "a", blind=True, source="rate", batch_id=batch.id, position=i))
    store.set_batch_status(batch.id, "ready")
    return batch.id


def bound_inputs(ctx: RateContext, fn) -> list[str]:
    """The parameters Gradio fills from an event's inputs once ``fn`` is bound to the context, in order."""
    return [parameter.name for parameter in get_positional_input_parameters(bind(fn, ctx))]


def usable(outputs: list) -> list[bool]:
    return [update["interactive"] for update in outputs[6:11]]


def test_opening_a_batch_shows_its_first_pair_verbatim(ctx):
    batch_id = hand_made_batch(ctx.store)
    remembered, pair_id, progress, *rest = open_batch(ctx, batch_id, None)
    first = ctx.store.next_unrated(batch_id)
    assert remembered == batch_id and pair_id == first.id and "0 / 3 rated" in progress
    assert rest[0] == ""  # no status note while there is a pair to rate
    assert rest[1] == "<b>System:</b>" + verbatim_html("Be brief.") + "<b>Prompt:</b>" + verbatim_html("Question <0>?")
    assert rest[2] == verbatim_html("answer b0") and "&lt;b&gt;answer a0" in rest[3]  # m2 left, markup as text
    assert [update["interactive"] for update in rest[4:9]] == [True] * 5 and rest[9:] == [0, 0]  # not scored
    assert batch_choices(ctx, None)["value"] == batch_id and batch_choices(ctx, "gone")["value"] == batch_id
    with pytest.raises(gr.Error, match="There is no batch with id 'made-up'"):
        open_batch(ctx, "made-up", None)


def test_the_pair_on_screen_is_not_sent_again_unless_asked(ctx):
    batch_id = hand_made_batch(ctx.store)
    pair_id = show_pair(ctx, batch_id, None)[0]
    again = show_pair(ctx, batch_id, pair_id)  # e.g. the batch picked again
    assert again[0] == gr.skip() and again[PROMPT:RIGHT + 1] == [gr.skip()] * 3  # the id too: see the tick's test
    assert show_pair(ctx, batch_id, pair_id, redraw=True)[PROMPT].startswith("<b>System:</b>")
    nothing = show_pair(ctx, None, None)
    assert nothing[0] is None and nothing[STATUS] == "No batch yet: start one above."
    assert usable(nothing) == [False] * 5


def test_a_vote_is_saved_as_seen_on_screen_and_reveals_the_models(ctx):
    batch_id = hand_made_batch(ctx.store)
    pair_id = show_pair(ctx, batch_id, None)[0]
    out = rate_button(ctx, "left", batch_id, pair_id, 4, "clearer", " bo ", 0, 0, [], session())
    saved = ctx.store.get(pair_id)
    assert (saved.winner, saved.strength, saved.rationale, saved.rater) == ("b", 4, "clearer", "bo")  # m2 was left
    assert out[LAST] == "Last vote: **left better** — left was `m2`, right was `m1`."
    assert (out[STRENGTH], out[WHY]) == (0, "") and "1 / 3 rated" in out[1]
    assert out[0] != pair_id and out[PROMPT].endswith(verbatim_html("Question <1>?"))  # the next pair
    # Voted already (from another tab, say): not voted twice; the next pair is shown.
    again = rate_button(ctx, "right", batch_id, pair_id, 0, "", "bo", 0, 0, [], session())
    assert ctx.store.get(pair_id).winner == "b" and again[LAST:] == [gr.skip()] * 4
    tie = cast(ctx, batch_id, out[0], "tie", 0, "", "", None, None, [], session(username="login"))
    assert ctx.store.get(out[0]).rater == "login" and "Last vote: **a tie**" in tie[LAST]


def test_skip_undo_and_rate_skipped_pairs(ctx, capsys):
    batch_id = hand_made_batch(ctx.store, pairs=2)
    first = show_pair(ctx, batch_id, None)[0]
    second = skip_pair(ctx, batch_id, first)[0]
    assert second != first and ctx.store.get(first).skipped
    done = rate_button(ctx, "both_bad", batch_id, second, 0, "", "", 0, 0, [], session())
    assert done[0] is None and done[STATUS] == "All done: 1 rated. 1 skipped: press *Rate skipped pairs*."
    assert usable(done) == [False] * 5

    assert [pair for _, pair, _ in done[MINE]] == [second]  # this session's votes, for its Undo
    undone = undo_last(ctx, batch_id, done[MINE])
    assert undone[0] == second and ctx.store.get(second).winner is None and undone[MINE] == []
    assert undone[LAST] == "Vote undone: rate this pair again." and undone[PROMPT]  # shown again, redrawn
    nothing = undo_last(ctx, batch_id, undone[MINE])
    assert "You have no vote to undo in this batch." in capsys.readouterr().out and nothing[LAST] == ""

    back = requeue_skipped(ctx, batch_id)
    assert "1 skipped pair(s) are back in the queue." in capsys.readouterr().out
    assert back[0] == first and not ctx.store.get(first).skipped
    for refused in (lambda: skip_pair(ctx, "made-up", None), lambda: undo_last(ctx, "made-up", []),
                    lambda: rate_button(ctx, "left", "made-up", None, 0, "", "", 0, 0, [], session())):
        with pytest.raises(gr.Error, match="There is no batch with id 'made-up'"):
            refused()


def test_generation_states_are_named_in_the_status_note(ctx):
    batch_id = hand_made_batch(ctx.store, pairs=1)
    ctx.store.set_batch_status(batch_id, "failed", "Couldn't load m1.")
    assert show_pair(ctx, batch_id, None)[STATUS] == "**Generation failed:** Couldn't load m1."
    ctx.store.set_batch_status(batch_id, "stopped")
    assert show_pair(ctx, batch_id, None)[STATUS] == "Generation stopped. Resume it to generate the remaining pairs."


def test_starting_a_batch_says_how_many_pairs_and_picks_it(ctx, tiny_base, tiny_chat, capsys):
    picker, section = start_batch(ctx, "Bundled prompts", None, [str(tiny_base), str(tiny_chat)], 2, 4, 0.7, 1, 10)
    ctx.runner.wait(120)
    created = ctx.store.batches()[0]
    assert "Generating 2 pairs in the background; rate them as they arrive." in capsys.readouterr().out
    assert picker["value"] == created.id and [value for _, value in picker["choices"]] == [created.id]
    assert section == {"__type__": "update", "open": False}
    assert created.name == "prompts · 2 prompts · 2 models" and created.status == "ready"
    assert ctx.store.progress(created.id).generated == 2
    assert created.settings["params"]["max_new_tokens"] == 4 and created.settings["params"]["seed"] == 1


def test_a_bad_prompt_file_or_model_choice_is_refused_before_anything_starts(ctx, tiny_base, tiny_chat, tmp_path):
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"prompt": "Fine?"}\n{"question": "no prompt field"}\nnot json\n')
    models = [str(tiny_base), str(tiny_chat)]
    with pytest.raises(gr.Error, match=r"(?s)mine\.jsonl.*line 2.*line 3: not valid JSON"):
        start_batch(ctx, "Upload a file", str(bad), models, 0, 4, 0.7, 1, 10)
    with pytest.raises(gr.Error, match="Upload a prompt file first"):
        start_batch(ctx, "Upload a file", None, models, 0, 4, 0.7, 1, 10)
    with pytest.raises(gr.Error, match="at least two different models"):
        start_batch(ctx, "Bundled prompts", None, [str(tiny_base), str(tiny_base)], 0, 4, 0.7, 1, 10)
    with pytest.raises(gr.Error, match="max_new_tokens"):
        start_batch(ctx, "Bundled prompts", None, models, 0, 0, 0.7, 1, 10)
    assert ctx.store.batches() == [] and ctx.runner.running() is None
    assert upload_visible("Upload a file")["visible"] is True and upload_visible("Bundled prompts")["visible"] is False


def test_an_uploaded_prompt_file_is_used(ctx, tiny_base, tiny_chat, tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("First question?\nSecond question?\nThird question?\n")
    start_batch(ctx, "Upload a file", str(mine), [str(tiny_base), str(tiny_chat)], 2, 4, 0.7, 1, 10)
    ctx.runner.wait(120)
    created = ctx.store.batches()[0]
    assert created.name == "mine · 2 prompts · 2 models"
    assert [p["prompt"] for p in created.prompts] == ["First question?", "Second question?"]


def test_stop_and_resume_generating(ctx, tiny_base, tiny_chat, capsys):
    stop_generating(ctx, None)
    assert "This batch is not generating." in capsys.readouterr().out
    start_batch(ctx, "Bundled prompts", None, [str(tiny_base), str(tiny_chat)], 8, 4, 0.7, 1, 10)
    batch_id = ctx.store.batches()[0].id
    stop_generating(ctx, batch_id)
    ctx.runner.wait(120)
    assert ctx.store.batch(batch_id).status == "stopped" and ctx.store.progress(batch_id).generated < 8
    assert "This batch is not generating." not in capsys.readouterr().out
    assert show_pair(ctx, batch_id, None)[STATUS] == "Generation stopped. Resume it to generate the remaining pairs."
    resume_generating(ctx, batch_id)
    ctx.runner.wait(120)
    # 8 pairs and, at the default 10 %, one of them asked again: 9 to rate, all generated after the resume
    assert ctx.store.batch(batch_id).total == 9 and ctx.store.batch(batch_id).settings["repeat_share"] == 0.1
    assert ctx.store.batch(batch_id).status == "ready" and ctx.store.progress(batch_id).generated == 9
    resume_generating(ctx, None)  # nothing picked: nothing to do
    with pytest.raises(gr.Error, match="That batch no longer exists"):
        resume_generating(ctx, "made-up")


def test_bound_callbacks_keep_the_api_argument_names(ctx):
    """What Gradio sees once build() fixes the context: the inputs by name (the API's argument names), the
    ``gr.Request`` left for Gradio to fill."""
    assert bound_inputs(ctx, start_batch) == ["kind", "file", "picked", "n", "tokens", "temp", "seed_value",
                                              "repeat_percent"]
    assert [p.name for p in get_positional_input_parameters(bind(rate_button, ctx, "left"))] == \
        ["batch_id", "current_id", "strength_value", "why", "typed_rater", "left_score", "right_score", "mine"]
    assert bound_inputs(ctx, open_batch) == ["batch_id", "current_id"]
    assert bound_inputs(ctx, undo_last) == ["batch_id", "mine"]  # mine is a gr.State: the API takes batch_id only
    assert bound_inputs(ctx, tick) == ["batch_id", "current_id"]


# ---------------------------------------------------------------------------------------------- answer scores
# The optional 1–5 score of each answer, given with the vote: the screen's left and right map to the stored a and b.


def test_scores_are_stored_on_the_side_that_was_shown_there(ctx):
    batch_id = hand_made_batch(ctx.store, pairs=2)
    first = show_pair(ctx, batch_id, None)  # the first pair shows b (m2) on the left
    assert ctx.store.get(first[0]).left_side == "b" and first[SCORE_LEFT:SCORE_RIGHT + 1] == [0, 0]
    out = rate_button(ctx, "left", batch_id, first[0], 0, "", "ann", 2, 5, [], session())
    saved = ctx.store.get(first[0])
    assert (saved.winner, saved.score_a, saved.score_b) == ("b", 5, 2)  # left (b) got 2, right (a) got 5
    assert out[SCORE_LEFT:SCORE_RIGHT + 1] == [0, 0]  # the next pair starts "not scored"
    second = out[0]
    rate_button(ctx, "right", batch_id, second, 0, "", "ann", 4.0, 0, [], session())  # a on the left this time
    saved = ctx.store.get(second)
    assert (saved.left_side, saved.winner, saved.score_a, saved.score_b) == ("a", "b", 4, None)


def test_undo_puts_the_scores_back_where_they_were_on_screen(ctx):
    batch_id = hand_made_batch(ctx.store, pairs=2)
    pair_id = show_pair(ctx, batch_id, None)[0]
    voted = rate_button(ctx, "tie", batch_id, pair_id, 3, "close", "ann", 1, 4, [], session())
    undone = undo_last(ctx, batch_id, voted[MINE])
    assert undone[0] == pair_id and undone[SCORE_LEFT:SCORE_RIGHT + 1] == [1, 4]
    assert undone[LAST:] == ["Vote undone: rate this pair again.", 3, "close", []]
    cleared = ctx.store.get(pair_id)
    assert (cleared.winner, cleared.score_a, cleared.score_b) == (None, None, None)
    # The timer's next tick leaves the restored rows alone: the pair on screen is the same.
    assert tick(ctx, batch_id, pair_id)[SCORE_LEFT:SCORE_RIGHT + 1] == [gr.skip()] * 2


@pytest.mark.parametrize("left, right", [(6, 0), (0, -1), (2.5, 0), (0, "3"), (True, 0), (float("inf"), 0),
                                         (0, float("-inf")), (float("nan"), 0)])
def test_a_bad_score_is_refused_and_changes_nothing(ctx, left, right):
    batch_id = hand_made_batch(ctx.store, pairs=1)
    pair_id = show_pair(ctx, batch_id, None)[0]
    before = ctx.store.get(pair_id)
    with pytest.raises(gr.Error, match="The vote was not saved: an answer's score must be a whole number from 1 to 5"):
        rate_button(ctx, "left", batch_id, pair_id, 0, "", "ann", left, right, [], session())
    assert ctx.store.get(pair_id) == before and ctx.store.progress(batch_id).rated == 0


def test_a_repeated_pair_looks_like_any_other_on_screen(ctx):
    """The rater is not told that a pair is asked again: nothing the tab shows about it differs from a pair that
    is not a repeat (same prompt and answers, sides as stored)."""
    batch_id = hand_made_batch(ctx.store, pairs=1)
    original = ctx.store.next_unrated(batch_id)
    again = replace(original, id="again", repeat_of=original.id, position=1, left_side="a")
    ctx.store.save(again)
    plain = replace(again, id="plain", repeat_of=None, position=2)
    ctx.store.save(plain)
    after = rate_button(ctx, "left", batch_id, original.id, 0, "", "ann", 0, 0, [], session())
    shown = show_pair(ctx, batch_id, after[0], redraw=True)  # the pair this rater was given next, drawn whole
    assert shown[0] == "again" and shown[LEFT] == verbatim_html("<b>answer a0</b>")  # the sides swapped
    voted = rate_button(ctx, "left", batch_id, "again", 0, "", "ann", 0, 0, [], session())
    control = show_pair(ctx, batch_id, "plain", redraw=True)
    assert shown[2:] == control[2:]
    assert not any("repeat" in str(part).lower() for part in shown + voted)


def test_a_share_of_pairs_is_asked_again_when_asked(ctx, tiny_base, tiny_chat, capsys):
    with pytest.raises(gr.Error, match=r"share of pairs to repeat must be from 0 to 50% \(0 = no repeats\), got 80%"):
        start_batch(ctx, "Bundled prompts", None, [str(tiny_base), str(tiny_chat)], 4, 4, 0.7, 1, 80)
    assert ctx.store.batches() == []
    start_batch(ctx, "Bundled prompts", None, [str(tiny_base), str(tiny_chat)], 4, 4, 0.7, 1, 50)
    ctx.runner.wait(120)
    created = ctx.store.batches()[0]
    assert "Generating 6 pairs in the background" in capsys.readouterr().out  # 4 pairs, 2 of them asked again
    assert created.total == 6 and created.settings["repeat_share"] == 0.5
    items = ctx.store.comparisons(voted_only=False, batch_id=created.id)
    assert len(items) == 6 and sum(r.repeat_of is not None for r in items) == 2


class OtherRaterFirst(Store):
    """A store where another rater's vote lands just after this session read the pair: the race of two raters
    shown the same next pair, voting at the same moment."""

    def get(self, comparison_id: str) -> ComparisonRecord | None:
        record = super().get(comparison_id)
        if record is not None and record.winner is None:
            super().vote(record, "a", rater="other")  # between the vote's read and its write
        return record


def test_a_vote_that_loses_the_race_to_another_raters_is_refused_not_written_over_it(ctx, settings):
    batch_id = hand_made_batch(ctx.store)
    pair_id = show_pair(ctx, batch_id, None)[0]
    racing = RateContext(OtherRaterFirst(settings.ratings_db), ctx.runner)
    out = rate_button(racing, "right", batch_id, pair_id, 2, "mine", "bo", 0, 0, [], session())
    kept = ctx.store.get(pair_id)
    assert (kept.winner, kept.rater, kept.strength, kept.rationale) == ("a", "other", None, "")
    assert out[LAST:] == [gr.skip()] * 4 and out[0] != pair_id  # no "Last vote" reveal; the next pair is shown


def test_raters_sharing_a_batch_are_shown_different_pairs_and_each_keeps_its_own(ctx):
    batch_id = hand_made_batch(ctx.store)
    ann = open_batch(ctx, batch_id, None)[1]
    bo = open_batch(ctx, batch_id, None)[1]
    assert ann != bo
    assert tick(ctx, batch_id, ann)[0] == gr.skip() and tick(ctx, batch_id, bo)[0] == gr.skip()  # the timer: kept
    after = rate_button(ctx, "left", batch_id, ann, 0, "", "ann", 0, 0, [], session())
    assert after[0] not in (ann, bo) and "Last vote" in after[LAST]  # ann's next pair is neither one


# ---------------------------------------------------------------------------------------------- many raters, one batch
# Undo takes back only the session's own vote; the timer never points the next vote at a pair that isn't on screen.


def test_undo_takes_back_this_sessions_own_vote_never_another_raters(ctx):
    batch_id = hand_made_batch(ctx.store)
    ann, bo = open_batch(ctx, batch_id, None)[1], open_batch(ctx, batch_id, None)[1]  # two sessions, two pairs
    ann_voted = rate_button(ctx, "left", batch_id, ann, 0, "", "team", 0, 0, [], session(username="team"))
    bo_voted = rate_button(ctx, "right", batch_id, bo, 2, "why", "team", 0, 0, [], session(username="team"))
    assert ctx.store.last_voted(batch_id).id == bo  # bo's vote is the batch's latest, under the same login
    undone = undo_last(ctx, batch_id, ann_voted[MINE])
    assert undone[0] == ann and ctx.store.get(ann).winner is None and undone[LAST].startswith("Vote undone")
    kept = ctx.store.get(bo)
    assert (kept.winner, kept.strength, kept.rationale, kept.rater) == ("b", 2, "why", "team")  # m2 on the left
    # bo's own Undo takes back bo's vote.
    assert undo_last(ctx, batch_id, bo_voted[MINE])[0] == bo and ctx.store.progress(batch_id).rated == 0


def test_undo_leaves_a_vote_alone_that_was_changed_since(ctx, capsys):
    batch_id = hand_made_batch(ctx.store)
    pair_id = show_pair(ctx, batch_id, None)[0]
    voted = rate_button(ctx, "left", batch_id, pair_id, 0, "", "ann", 0, 0, [], session())
    ctx.store.clear_vote(pair_id)  # undone from another tab of the same rater …
    again = ctx.store.vote(ctx.store.get(pair_id), "tie", rater="bo")  # … and then voted again by someone else
    out = undo_last(ctx, batch_id, voted[MINE])
    assert "deleted or undone elsewhere since; nothing was undone" in capsys.readouterr().out
    assert ctx.store.get(pair_id) == again and out[MINE] == [] and out[LAST] == ""
    other = hand_made_batch(ctx.store)  # a vote in another batch isn't undone from this one
    assert undo_last(ctx, other, voted[MINE])[LAST] == "" and ctx.store.get(pair_id) == again
    assert "You have no vote to undo in this batch." in capsys.readouterr().out


def drawn_with_its_texts(outputs: list) -> bool:
    """The screen stays whole: the pair id output changes only together with the prompt and both answers."""
    texts = outputs[PROMPT:RIGHT + 1]
    if outputs[0] == gr.skip():
        return texts == [gr.skip()] * 3
    return all(isinstance(text, str) for text in texts)


def test_a_late_timer_tick_never_points_the_next_vote_at_a_pair_not_on_screen(ctx):
    """One session, in Gradio's order of events: a tick can start before a vote or an Undo and land after it, with
    the pair id it was given when it started."""
    batch_id = hand_made_batch(ctx.store)
    first = open_batch(ctx, batch_id, None)[1]
    voted = rate_button(ctx, "left", batch_id, first, 0, "", "ann", 0, 0, [], session())
    second = voted[0]
    undone = undo_last(ctx, batch_id, voted[MINE])  # the screen shows the first pair again
    assert undone[0] == first
    late_from_before_the_undo = tick(ctx, batch_id, second)
    late_from_before_the_vote = tick(ctx, batch_id, first)
    revoted = rate_button(ctx, "tie", batch_id, first, 0, "", "ann", 0, 0, undone[MINE], session())
    late_after_the_pair_was_voted = tick(ctx, batch_id, first)
    for late in (late_from_before_the_undo, late_from_before_the_vote, late_after_the_pair_was_voted):
        assert late[0] == gr.skip() and drawn_with_its_texts(late)  # what the vote or Undo showed stays
        assert "rated" in late[1]  # the progress line is still refreshed
    assert ctx.store.get(first).winner == "tie" and ctx.store.get(second).winner is None
    # With nothing on screen, the tick shows a pair: id and texts together.
    fresh = tick(ctx, batch_id, None)
    assert fresh[0] not in (None, first, revoted[0])  # the next pair nobody has on screen
    assert drawn_with_its_texts(fresh) and fresh[PROMPT].startswith("<b>Prompt:</b>")
    assert all(drawn_with_its_texts(show_pair(ctx, batch_id, pair)) for pair in (None, first, second, fresh[0]))
