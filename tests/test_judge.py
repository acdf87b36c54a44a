"""The AI judge (RLAIF): a tiny model whose greedy answers we choose judges through the real answer → parse path;
both orders stored, position bias made a tie, unreadable answers a tie; background runs with stop and resume; the
agreement panel on hand-computed cases; judge votes in the leaderboard, history and export filters."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace

import gradio as gr
import pytest

from playground.data import preference_pairs
from playground.models.catalog import ModelSpec
from playground.models.generation import GenerationParams
from playground.models.loading import ModelCache
from playground.ratings import history, judge_agreement
from playground.ratings.export import export_all
from playground.ratings.judge import (
    DEFAULT_RUBRIC,
    Judge,
    TooLong,
    check_rubric,
    fill,
    judge_answers,
    judge_record,
    left_out_reason,
    parse_verdict,
    question_text,
    reason,
)
from playground.ratings.judge_runs import ALL, JudgeRunner, runs_dir
from playground.ratings.selection import judge_rater
from playground.ratings.store import ComparisonRecord, Store
from playground.ui import history_tab, judge_tab, leaderboard_tab
from tests.at_once import starting_at_once
from tests.preference_records import record
from tests.tiny_judge import build_judge

RUBRIC = "{question} {first} {second}"
"""Ends with the second answer shown, so the tiny judge's verdict depends on that answer's last word."""
NEW_RUBRIC = "Judge: {question} {first} {second}"
"""The rubric edited: the same judge, asked again."""
GOOD, BAD, MEH, ODD = "Red and blue good", "It cheese bad", "It reply meh", "People flew there odd"
"""Answers the tiny judge reads: shown second, ``bad`` → "Verdict:A", ``good`` → "Verdict:B", ``meh`` → tie,
``odd`` → no verdict (tests/tiny_judge.py)."""


@pytest.fixture(scope="session")
def judge_model(tmp_path_factory):
    return build_judge(tmp_path_factory.mktemp("judges") / "tiny-judge")


@pytest.fixture
def cache(settings):
    return ModelCache(settings)


@pytest.fixture
def judge(judge_model):
    return Judge(ModelSpec(str(judge_model)), RUBRIC)


def pair(answer_a: str, answer_b: str, **changes) -> ComparisonRecord:
    return replace(record(None, prompt="Which answer is better?", answer_a=answer_a, answer_b=answer_b,
                          model_a="alpha", model_b="beta"), **changes)


# ---------------------------------------------------------------------------------------------- the rubric


@pytest.mark.parametrize("text, expected", [
    ("The first is clearer.\nVerdict: A", "A"), ("**Verdict:** b", "B"), ("verdict - TIE", "tie"),
    ("I pick [[A]].", "A"), ("Verdict:B", "B"), ("Verdict: A. On reflection, Verdict: B", None),
    ("Both are fine.", None), ("Verdicts A", None), ("", None), ("Verdict: A. So, verdict: a", "A"),
    ("My verdict: a tie.", "tie"), ("The verdict is B", "B"), ("Verdict: an apple", None), ("[[ tie ]]", "tie"),
    # markdown round the word and the label, and the label named as an answer, assistant or response
    ("**Verdict**: **B**", "B"), ("Verdict: Answer A", "A"), ("Verdict: Assistant B", "B"), ("Verdict (B)", "B"),
    ("**Final verdict:** Response A.", "A"), ("Verdict: **[[B]]**", "B"), ("- Verdict: `tie`\n", "tie"),
    ("Verdict: Answer: B", "B"), ("verdict = tie", "tie"), ("Verdict: A is better.", "A"),
    # "a" before a word is the article, not A; a draw is a tie
    ("The verdict is a draw. Verdict: B", "B"), ("The verdict is a draw.", "tie"), ("Verdict: a draw", "tie"),
    ("The verdict is a close call, so no pick.", None), ("The verdict is B. Verdict: A", "A"),
    # a verdict on a line of its own at the end is the final word; several such lines must agree
    ("Verdict: A\n\nOn reflection the second is right.\nVerdict: B", "B"), ("Verdict: A\n\nVerdict: A", "A"),
    ("Verdict: A\nVerdict: B\nVerdict: tie", None),  # the rubric's choices read back, not a verdict
    ('End with "Verdict: A", "Verdict: B" or "Verdict: tie".', None),
    ("Verdict: B\nThe first answer has an error.", "B"),  # no verdict line last: the one explicit verdict
])
def test_verdicts_are_read_from_the_judges_words(text, expected):
    assert parse_verdict(text) == expected


def test_the_reason_is_the_text_before_the_explicit_verdict():
    assert reason("The verdict is a draw. Verdict: B") == "The verdict is a draw."
    assert reason("First wins.\n**Verdict**: **A**") == "First wins."
    assert reason("The verdict is B, plainly.") == "The"


def test_a_rubric_needs_its_three_places_and_says_which_are_missing():
    assert check_rubric(DEFAULT_RUBRIC) == DEFAULT_RUBRIC
    with pytest.raises(ValueError, match="missing: {second}"):
        check_rubric("Judge {question}: {first}")
    with pytest.raises(ValueError, match="The rubric is empty"):
        Judge(ModelSpec("x/y"), "  ")


def test_the_rubric_is_filled_in_one_pass_and_the_conversation_read_whole():
    assert fill(RUBRIC, "Q?", "uses {second} literally", "B") == "Q? uses {second} literally B"
    assert question_text([{"role": "user", "content": "Hi"}]) == "Hi"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
             {"role": "user", "content": "More"}]
    assert question_text(turns, "Be brief.") == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: More"


def test_pairs_a_judge_cannot_read_fairly_are_left_out():
    assert left_out_reason(pair(GOOD, BAD)) is None
    assert left_out_reason(pair(GOOD, " ")) == "empty"
    assert left_out_reason(pair(GOOD, BAD, repeat_of="x")) == "repeat"
    assert left_out_reason(pair(GOOD, BAD, rater=judge_rater("m"))) == "judge"
    assert left_out_reason(pair(GOOD, BAD, judge_of="x")) == "judge"
    turns = [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Other"}]
    assert left_out_reason(replace(pair(GOOD, BAD), b=replace(pair(GOOD, BAD).b, history=turns))) == "turns"


# ---------------------------------------------------------------------------------------------- judging a pair


@pytest.mark.parametrize("answer_a, answer_b, winner, consistent", [
    (GOOD, BAD, "a", True),   # a wins in both orders
    (BAD, GOOD, "b", True),   # b wins in both orders
    (MEH, MEH, "tie", True),  # a tie in both orders
    (BAD, BAD, "tie", False),  # "the first is better" whichever is first: the orders disagree
])
def test_both_orders_are_asked_and_only_a_verdict_both_give_counts(cache, judge, answer_a, answer_b, winner,
                                                                    consistent):
    found = judge_answers(cache, judge, "Which answer is better?", answer_a, answer_b)
    assert [o.shown for o in found.orders] == [("a", "b"), ("b", "a")]
    assert (found.winner, found.consistent) == (winner, consistent)
    assert all(o.text.startswith(("First wins.", "Second shines.", "Equal quality.")) for o in found.orders)


def test_position_bias_is_stored_as_a_tie_with_both_answers(cache, judge):
    found = judge_answers(cache, judge, "Which answer is better?", BAD, BAD)
    assert [(o.text, o.verdict) for o in found.orders] == [("First wins. Verdict:A", "a"),
                                                           ("First wins. Verdict:A", "b")]
    assert found.rationale == "The two orders disagree (shown A then B: a; shown B then A: b): a tie."


def test_an_unreadable_verdict_makes_a_tie_and_says_so(cache, judge):
    found = judge_answers(cache, judge, "Which answer is better?", ODD, BAD)
    assert [o.verdict for o in found.orders] == ["a", None]  # shown b then a, the judge read "odd" last
    assert found.orders[1].text == "Hmm dunno."
    assert found.winner == "tie" and not found.consistent
    assert found.rationale == "No readable verdict when shown B then A: a tie."
    assert found.to_dict()["orders"][1] == {"shown": ["b", "a"], "text": "Hmm dunno.", "verdict": None}


def test_a_pair_longer_than_the_judges_context_is_refused(cache, judge):
    with pytest.raises(TooLong, match="too long for tiny-judge's context"):
        judge_answers(cache, judge, "Which answer is better?", " ".join(["good"] * 400), BAD)


def test_a_judges_vote_is_its_own_record_that_never_enters_a_rate_queue(settings, cache, judge):
    store = Store(settings.ratings_db)
    judged = store.save(pair(GOOD, BAD, batch_id=None, position=3, left_side="b", blind=True, source="rate"))
    vote = store.save(judge_record(cache, judge, judged))
    assert vote.id != judged.id and vote.judge_of == judged.id
    assert vote.rater == f"judge:{judge.spec.source}" == judge.rater
    assert (vote.winner, vote.rationale, vote.batch_id, vote.position) == ("a", "First wins.", None, None)
    assert (vote.messages, vote.a.response, vote.b.response) == (judged.messages, GOOD, BAD)
    stored = store.get(vote.id)
    assert stored.judgement == {"judge": judge.model, "rubric": RUBRIC, "consistent": True, "orders": [
        {"shown": ["a", "b"], "text": "First wins. Verdict:A", "verdict": "a"},
        {"shown": ["b", "a"], "text": "Second shines. Verdict:B", "verdict": "a"}]}
    assert store.judged_by(judge.rater) == {judged.id}
    page = history.detail(stored)
    assert "First wins. Verdict:A" in page and f"judged <code>{judged.id}</code>" in page
    with pytest.raises(ValueError, match="repeated pairs"):
        judge_record(cache, judge, replace(judged, repeat_of="x"))


def test_a_base_and_adapter_judge_as_compare_runs_them(cache, tiny_adapter, tiny_base):
    adapter_judge = Judge(ModelSpec(str(tiny_base), adapter=str(tiny_adapter)), RUBRIC,
                          params=GenerationParams(temperature=0.0, max_new_tokens=4, repetition_penalty=1.0))
    assert adapter_judge.rater == f"judge:{tiny_base} + {tiny_adapter}"
    found = judge_answers(cache, adapter_judge, "Hi", "one", "two")
    assert found.winner == "tie" and all(o.verdict is None for o in found.orders)  # a random model: no verdict


# ---------------------------------------------------------------------------------------------- runs


@pytest.fixture
def runner(settings, cache):
    return JudgeRunner(Store(settings.ratings_db), cache, lambda: [], runs_dir(settings))


def batch_of(store: Store, answers: list[tuple[str, str]], **changes) -> str:
    batch = store.create_batch("judged", ["alpha", "beta"], len(answers))
    store.insert_many([pair(a, b, batch_id=batch.id, position=i, source="rate", blind=True, **changes)
                       for i, (a, b) in enumerate(answers)])
    return batch.id


def test_a_batch_is_judged_in_the_background_and_its_left_out_pairs_counted(runner, judge_model):
    store = runner.store
    batch_id = batch_of(store, [(GOOD, BAD), (BAD, GOOD), (BAD, BAD), (ODD, BAD), (GOOD, "  ")])
    first = next(r for r in store.comparisons(voted_only=False, batch_id=batch_id) if r.position == 0)
    store.save(replace(first, id="again", position=9, repeat_of=first.id))
    before = store.progress(batch_id)
    run = runner.start(str(judge_model), RUBRIC, batch_id)
    runner.wait(120)
    run = runner.run(run.id)
    assert run.status == "done", run.error
    votes = {v.judge_of: v for v in store.comparisons() if v.rater == run.rater}
    by_position = {store.get(i).position: v.winner for i, v in votes.items()}
    assert by_position == {0: "a", 1: "b", 2: "tie", 3: "tie"}
    assert runner.progress(run).summary() == ("4 / 4 judged · left out: 1 repeated pairs (asked again to measure "
                                              "consistency), 1 pairs with an empty answer")
    assert store.progress(batch_id) == before  # the judge's votes are not in the Rate queue
    assert store.next_unrated(batch_id).id == first.id


def test_stop_then_resume_judges_every_pair_once(runner, judge_model):
    store = runner.store
    batch_id = batch_of(store, [(GOOD, BAD)] * 12)
    run = runner.start(str(judge_model), RUBRIC, batch_id)
    runner.stop(run.id)
    runner.wait(60)
    stopped = runner.run(run.id)
    assert stopped.status == "stopped" and runner.progress(stopped).judged < 12
    runner.resume(run.id)
    runner.wait(120)
    assert runner.run(run.id).status == "done"
    judged = [v.judge_of for v in store.comparisons() if v.rater == stopped.rater]
    assert len(judged) == len(set(judged)) == 12


def test_a_run_left_judging_by_a_dead_app_is_interrupted_and_resumes(runner, settings, cache, judge_model):
    store = runner.store
    batch_id = batch_of(store, [(GOOD, BAD), (BAD, GOOD)])
    store.save(judge_record(cache, Judge(ModelSpec(str(judge_model)), RUBRIC),
                            store.comparisons(voted_only=False, batch_id=batch_id)[0]))
    run = runner.start(str(judge_model), RUBRIC, batch_id)
    runner.wait(60)
    (runs_dir(settings) / f"{run.id}.json").write_text(json.dumps(
        json.loads((runs_dir(settings) / f"{run.id}.json").read_text()) | {"status": "judging"}))
    again = JudgeRunner(store, cache, lambda: [], runs_dir(settings))  # the app starting again
    assert again.run(run.id).status == "interrupted"
    again.resume(run.id)
    again.wait(60)
    assert again.run(run.id).status == "done"
    assert len([v for v in store.comparisons() if v.rater == run.rater]) == 2  # the one judged before is kept


def test_every_comparison_it_hasnt_judged_leaves_out_other_judges_and_too_long_pairs(runner, judge_model):
    store = runner.store
    store.save(pair(GOOD, BAD, winner="a", rater="ann"))
    store.save(pair(BAD, GOOD, winner="b", rater=judge_rater("other"), judge_of="elsewhere"))
    store.save(pair(" ".join(["good"] * 400), BAD, winner="a", rater="bob"))
    run = runner.start(str(judge_model), RUBRIC, ALL)
    runner.wait(60)
    run = runner.run(run.id)
    assert run.status == "done" and len(run.too_long) == 1
    assert runner.progress(run).summary() == ("1 / 1 judged · 1 too long for the judge's context (left out) · "
                                              "left out: 1 other AI judges' votes")
    again = runner.resume(run.id)  # nothing new: done again, no second vote
    runner.wait(60)
    assert runner.run(again.id).status == "done"
    assert len(store.judged_by(run.rater)) == 1


def test_a_new_rubric_judges_again_and_a_deleted_vote_stays_judged_under_its_own(runner, judge_model):
    store = runner.store
    batch_id = batch_of(store, [(GOOD, BAD), (BAD, GOOD)])
    pair_ids = {r.id for r in store.comparisons(voted_only=False, batch_id=batch_id)}
    first = runner.start(str(judge_model), RUBRIC, batch_id)
    runner.wait(60)
    rater = first.rater
    (gone, _) = [v for v in store.comparisons() if v.rater == rater]
    store.delete(gone.id)  # hidden, but judged: the same rubric doesn't judge the pair again
    same = runner.start(str(judge_model), RUBRIC, batch_id)
    runner.wait(60)
    assert runner.run(same.id).status == "done"
    assert len([v for v in store.comparisons(include_deleted=True) if v.rater == rater]) == 2
    assert runner.progress(runner.run(same.id)).summary() == "2 / 2 judged"
    assert store.judged_by(rater, RUBRIC) == pair_ids and store.judged_by(rater, NEW_RUBRIC) == set()

    other = runner.start(str(judge_model), NEW_RUBRIC, batch_id)  # the rubric changed: every pair is judged again
    assert runner.progress(other).judged == 0
    runner.wait(60)
    assert runner.run(other.id).status == "done"
    new = [v for v in store.comparisons() if v.rater == rater and v.judgement["rubric"] == NEW_RUBRIC]
    assert {v.judge_of for v in new} == pair_ids and len(new) == 2
    assert {v.judge_of: v.winner for v in new} == {v.judge_of: v.winner for v in
                                                   store.comparisons(include_deleted=True) if v.rater == rater
                                                   and v.judgement["rubric"] == RUBRIC}
    assert store.judged_by(rater, NEW_RUBRIC) == store.judged_by(rater) == pair_ids
    assert runner.progress(runner.run(first.id)).summary() == "2 / 2 judged"  # the old run's votes still count


def test_bad_starts_are_refused_before_anything_is_written(runner, judge_model, settings):
    with pytest.raises(ValueError, match="missing: {first}, {second}"):
        runner.start(str(judge_model), "{question}", ALL)
    with pytest.raises(ValueError, match="not a model folder"):
        runner.start("/no/such/judge", RUBRIC, ALL)
    with pytest.raises(ValueError, match="No model chosen"):
        runner.start("", RUBRIC, ALL)
    with pytest.raises(ValueError, match="There is no batch with id 'nope'"):
        runner.start(str(judge_model), RUBRIC, "nope")
    with pytest.raises(ValueError, match="There is no judge run with id '../x'"):
        runner.resume("../x")
    assert runner.runs() == [] and not runs_dir(settings).exists()


def test_a_second_run_waits_for_the_first(runner, judge_model):
    batch_id = batch_of(runner.store, [(GOOD, BAD)] * 30)
    run = runner.start(str(judge_model), RUBRIC, batch_id)
    try:
        with pytest.raises(ValueError, match="Another judge run is going"):
            runner.start(str(judge_model), RUBRIC, ALL)
        with pytest.raises(ValueError, match="judging already"):
            runner.resume(run.id)
    finally:
        runner.stop(run.id)
        runner.wait(60)


def test_two_runs_started_at_once_one_judges_the_other_is_refused(runner, judge_model, monkeypatch):
    batch_id = batch_of(runner.store, [(GOOD, BAD)] * 30)
    save = runner._save

    def slow_save(run):  # widens the gap between "is one judging?" and the run starting
        time.sleep(0.3)
        return save(run)

    monkeypatch.setattr(runner, "_save", slow_save)
    outcomes = starting_at_once(lambda _: runner.start(str(judge_model), RUBRIC, batch_id))
    started = [o for o in outcomes if not isinstance(o, ValueError)]
    try:
        assert [str(o) for o in outcomes if isinstance(o, ValueError)] == [
            "Another judge run is going: stop it first, or wait until it is done."]
        assert [r.id for r in runner.runs()] == [started[0].id]  # no second run record was written
        runner.stop(started[0].id)
        runner.wait(60)
        outcomes = starting_at_once(lambda _: runner.resume(started[0].id))
        assert sorted(str(o) if isinstance(o, ValueError) else o.status for o in outcomes) == [
            "This run is judging already.", "judging"]
    finally:
        for run in started:
            runner.stop(run.id)
        runner.wait(60)


# ---------------------------------------------------------------------------------------------- agreement

JUDGE = judge_rater("tiny")


def judged_pairs(human: list[str], judge: list[str], consistent: list[bool] | None = None,
                 swap: list[bool] | None = None) -> list[ComparisonRecord]:
    """People's votes and the judge's on the same pairs (``swap``: model beta on side a)."""
    records = []
    for i, (h, j) in enumerate(zip(human, judge)):
        swapped = bool(swap and swap[i])
        person = record(h, prompt=f"Prompt {i}", model_a="beta" if swapped else "alpha",
                        model_b="alpha" if swapped else "beta", record_id=f"p{i}", rater="ann",
                        answer_a=f"<b>answer {i}</b>", voted_at=f"2025-03-01T12:00:{i:02d}+00:00")
        ok = True if consistent is None else consistent[i]
        orders = [{"shown": ["a", "b"], "text": f"Judge words {i}. Verdict: A", "verdict": j if ok else "a"},
                  {"shown": ["b", "a"], "text": "Verdict: B", "verdict": j if ok else None}]
        records += [person, replace(person, id=f"j{i}", rater=JUDGE, winner=j if ok else "tie", judge_of=f"p{i}",
                                    rationale=f"reason {i}", judgement={"judge": "tiny", "rubric": RUBRIC,
                                                                        "orders": orders, "consistent": ok})]
    return records


def test_kappa_and_raw_agreement_on_a_hand_computed_case():
    # As in tests/test_selection.py: p_o = 0.6, p_e = 0.36 → κ = 0.375. Both-bad counts as a tie.
    human = ["a", "a", "a", "a", "a", "b", "b", "b", "both_bad", "tie"]
    judge = ["a", "a", "a", "b", "tie", "b", "b", "a", "tie", "b"]
    found = judge_agreement.report(judged_pairs(human, judge), JUDGE)
    assert (found.overall.n, found.overall.agreed, found.overall.raw) == (10, 6, 0.6)
    assert found.overall.kappa == pytest.approx(0.375)
    assert [m.human.id for m in found.disagreements] == ["p3", "p4", "p7", "p9"]
    assert found.per_pair.to_dict("records") == [
        {"model pair": "alpha vs beta", "pairs": 10, "agreed": 6, "raw agreement": 0.6, "Cohen's κ": 0.375},
        {"model pair": "all pairs", "pairs": 10, "agreed": 6, "raw agreement": 0.6, "Cohen's κ": 0.375}]
    assert "60% the same verdict" in found.summary() and "Cohen's κ 0.38" in found.summary()


def test_per_pair_kappa_reads_votes_as_which_model_won_whichever_side_it_was_on():
    # Four pairs, beta on side a in the last two. Per model: alpha, beta, alpha, beta won for the person and the
    # judge alike → κ 1 on the model pair; as side labels (a, b, b, a both) κ is 1 as well, raw 1.
    human, judge = ["a", "b", "b", "a"], ["a", "b", "b", "a"]
    found = judge_agreement.report(judged_pairs(human, judge, swap=[False, False, True, True]), JUDGE)
    assert found.per_pair.iloc[0].to_dict() == {"model pair": "alpha vs beta", "pairs": 4, "agreed": 4,
                                                "raw agreement": 1.0, "Cohen's κ": 1.0}
    # One label throughout (both always say "alpha won", as side labels a, a, b, b): κ undefined per pair.
    found = judge_agreement.report(judged_pairs(["a", "a", "b", "b"], ["a", "a", "b", "b"],
                                                swap=[False, False, True, True]), JUDGE)
    assert math.isnan(found.per_pair.iloc[0]["Cohen's κ"]) and found.overall.kappa == pytest.approx(1.0)


def test_position_consistency_counts_the_judges_own_orders():
    records = judged_pairs(["a", "b", "a", "tie"], ["a", "b", "a", "tie"], consistent=[True, False, True, False])
    records.append(replace(records[3], id="lone", judge_of="not-voted-by-people"))  # a judge vote with no person's
    found = judge_agreement.report(records, JUDGE)
    assert (found.judged, found.consistent, found.unreadable) == (5, 2, 3)
    assert found.consistency == pytest.approx(0.4)
    assert "same verdict on 2 of 5 pairs (40%); 3 had an order with no readable verdict" in found.summary()
    assert judge_agreement.judges(records) == [JUDGE]


def test_a_judges_latest_vote_on_a_pair_counts_and_a_deleted_one_brings_no_older_back():
    records = judged_pairs(["a", "b"], ["a", "b"])
    old = next(r for r in records if r.id == "j0")
    newer = replace(old, id="j0-new", winner="b", voted_at="2025-03-02T12:00:00+00:00",
                    judgement=old.judgement | {"rubric": NEW_RUBRIC})  # the same judge, its rubric edited
    found = judge_agreement.report(records + [newer], JUDGE)
    assert [(m.human.id, m.judge.id) for m in found.matched] == [("p0", "j0-new"), ("p1", "j1")]
    assert (found.overall.n, found.overall.agreed, found.judged, found.consistent) == (2, 1, 2, 2)
    assert [m.human.id for m in found.disagreements] == ["p0"]
    found = judge_agreement.report(records + [replace(newer, deleted_at="2025-03-03T12:00:00+00:00")], JUDGE)
    assert [(m.human.id, m.judge.id) for m in found.matched] == [("p1", "j1")]  # the old rubric's vote stays out
    assert (found.overall.n, found.judged) == (1, 1)


def test_the_agreement_panel_shows_the_disagreements_verbatim(settings):
    store = Store(settings.ratings_db)
    for r in judged_pairs(["a", "b"], ["b", "b"]):
        store.save(r)
    ctx = judge_tab.JudgeContext(store, JudgeRunner(store, None, lambda: [], runs_dir(settings)))
    summary, table, page = judge_tab.show_agreement(ctx, JUDGE)
    assert "on 2 pairs both voted on: 50%" in summary and "1 disagreements below" in summary
    assert list(table["pairs"]) == [2, 2]
    assert "&lt;b&gt;answer 0&lt;/b&gt;" in page and "Judge words 0. Verdict: A" in page and "reason 0" in page
    assert "Prompt 1" not in page  # the pair they agree on isn't listed
    assert "no votes yet" in judge_tab.show_agreement(ctx, judge_rater("nobody"))[0]
    with pytest.raises(gr.Error, match="'ann' is not an AI judge"):
        judge_tab.show_agreement(ctx, "ann")


# ---------------------------------------------------------------------------------------------- the other tabs


def test_judge_votes_are_kept_apart_in_the_leaderboard_history_and_export(runner, judge_model, settings, tmp_path):
    store = runner.store
    for i, (a, b, winner) in enumerate([(GOOD, BAD, "b"), (BAD, GOOD, "b"), (MEH, MEH, "tie")]):
        store.save(pair(a, b, winner=winner, rater="ann", voted_at=f"2025-03-01T12:00:0{i}+00:00"))
    runner.start(str(judge_model), RUBRIC, ALL)
    runner.wait(60)
    rater = Judge(ModelSpec(str(judge_model)), RUBRIC).rater
    assert leaderboard_tab.compute(store, "count as a tie", 10, 0)[0].startswith("3 votes from people")
    assert leaderboard_tab.compute(store, "count as a tie", 10, 0, "judges")[0].startswith("3 votes from AI judges")
    assert leaderboard_tab.compute(store, "count as a tie", 10, 0, "all")[0].startswith("6 votes")
    judges = history_tab.refresh_view(store, "", "", "", "", "", "judges")[3]
    assert set(judges["rater"]) == {rater} and set(judges["source"]) == {"judge"}
    assert len(history_tab.refresh_view(store, "", "", "", "", "")[3]) == 3
    assert export_all(store, tmp_path / "people").votes == 3
    assert export_all(store, tmp_path / "judges", raters="judges").votes == 3
    assert len(preference_pairs.load_pairs("judge-votes", settings)) == 2  # its tie is no chosen/rejected pair
    found = judge_agreement.report(store.comparisons(), rater)
    assert (found.overall.n, found.overall.agreed) == (3, 2)  # the person preferred b on the first pair


# ---------------------------------------------------------------------------------------------- the tab's callbacks


def test_the_tabs_callbacks_refuse_bad_input_with_a_message(runner, judge_model):
    ctx = judge_tab.JudgeContext(runner.store, runner)
    with pytest.raises(gr.Error, match="missing: {second}"):
        judge_tab.start_judging(ctx, str(judge_model), ALL, "{question} {first}", 32)
    with pytest.raises(gr.Error, match="No model chosen"):
        judge_tab.start_judging(ctx, "", ALL, RUBRIC, 32)
    with pytest.raises(gr.Error, match="There is no judge run with id 'made-up'"):
        judge_tab.show_progress(ctx, "made-up")
    with pytest.raises(gr.Error, match="Pick a judge run first"):
        judge_tab.stop_judging(ctx, "")
    assert judge_tab.show_progress(ctx, None)[1] == "No judge run picked: start one above."
    assert runner.runs() == []


def test_the_tab_starts_a_run_and_shows_its_progress(runner, judge_model):
    ctx = judge_tab.JudgeContext(runner.store, runner)
    runner.store.save(pair(GOOD, BAD, winner="a", rater="ann"))
    picker, progress, status = judge_tab.start_judging(ctx, str(judge_model), ALL, RUBRIC, 32)
    runner.wait(60)
    assert picker["value"] == runner.runs()[0].id
    progress, status = judge_tab.show_progress(ctx, picker["value"])
    assert "1 / 1 judged" in progress and "done" in status and "every comparison" in status
    assert judge_tab.stop_judging(ctx, picker["value"]).startswith("This run is not judging (it is done)")
    *view, shown = judge_tab.poll(ctx, picker["value"], "")  # the timer shows the ended run once, then rests
    assert view == [progress, status] and shown == f"{picker['value']} done"
    assert judge_tab.poll(ctx, picker["value"], shown) == [gr.skip(), gr.skip(), shown]
    targets, runs, judges = judge_tab.refresh_choices(ctx, "gone", None, None)
    assert targets["value"] == ALL and runs["value"] == picker["value"] and judges["value"].startswith("judge:")


def test_a_stop_event_part_way_discards_the_answer(cache, judge):
    stop = threading.Event()
    stop.set()
    with pytest.raises(RuntimeError, match="stopped"):
        judge_answers(cache, judge, "Which answer is better?", GOOD, BAD, stop=stop)
