"""How reliable the ratings are: self-consistency on repeated pairs, scores given twice and against the votes, and
rater against rater, on hand-computed cases; the Reliability tab's callback; and a batch rated through the Rate tab
with repeats, which count once everywhere else (leaderboard, history, export, training data)."""

from __future__ import annotations

import inspect
import math
from dataclasses import replace

import gradio as gr
import pytest

from playground.core.settings import Settings
from playground.data import preference_pairs
from playground.models.generation import GenerationParams
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings import history, reliability
from playground.ratings.batch import BatchRunner, BatchSettings
from playground.ratings.export import export_all
from playground.ratings.selection import judge_rater
from playground.ratings.store import ComparisonRecord, Side, Store
from playground.ui import leaderboard_tab, reliability_tab
from playground.ui.rate_tab import RateContext, rate_button, show_pair
from playground.ui.rater import bind

VOTED = "2025-03-01T12:00:00+00:00"


def pair(n: int, winner: str | None, rater: str = "ann", scores: tuple[int | None, int | None] = (None, None),
         swapped: bool = False, record_id: str | None = None, repeat_of: str | None = None,
         left: str = "a") -> ComparisonRecord:
    """A vote on pair ``n``: prompt P<n>, answers "A<n>" (sorts first) and "B<n>"; ``swapped`` stores them as b and
    a (as another model order or an imported file would), so ``winner`` "a" then means B<n>."""
    answers = (f"B{n}", f"A{n}") if swapped else (f"A{n}", f"B{n}")
    return ComparisonRecord(messages=[{"role": "user", "content": f"P{n}"}], a=Side("m1", response=answers[0]),
                            b=Side("m2", response=answers[1]), winner=winner, rater=rater, left_side=left,
                            voted_at=VOTED if winner else None, score_a=scores[0], score_b=scores[1],
                            repeat_of=repeat_of, id=record_id or f"{rater}-{n}{'-again' if repeat_of else ''}")


def hand_made() -> list[ComparisonRecord]:
    """ann: five pairs voted twice (the repeat shown swapped), one pair voted once, one whose repeat carol voted,
    and a repeat not voted yet; bob: five of ann's pairs, one stored the other way round, one vote deleted; a judge
    on pair 1."""
    ann = [pair(1, "a", scores=(4, 2)), pair(2, "a", scores=(3, 3)), pair(3, "b", scores=(1, 5)),
           pair(4, "both_bad"), pair(5, "a", scores=(5, None)), pair(6, "a", scores=(2, 4)), pair(7, "a"),
           pair(8, "a")]
    again = [pair(1, "a", scores=(4, 3), repeat_of="ann-1", left="b"),
             pair(2, "b", scores=(2, 4), repeat_of="ann-2", left="b"),
             pair(3, "b", scores=(1, 5), repeat_of="ann-3", left="b"),
             pair(4, "tie", scores=(3, 3), repeat_of="ann-4", left="b"),
             pair(5, "a", scores=(3, None), repeat_of="ann-5", left="b"),
             pair(7, "a", rater="carol", repeat_of="ann-7", left="b"),
             pair(8, None, repeat_of="ann-8", left="b")]
    bob = [pair(1, "b", rater="bob", swapped=True), pair(2, "b", rater="bob"), pair(3, "b", rater="bob"),
           pair(4, "a", rater="bob"), pair(6, "a", rater="bob"),
           replace(pair(5, "b", rater="bob"), deleted_at=VOTED)]
    judge = [replace(pair(1, "b", rater=judge_rater("tiny")), judge_of="ann-1")]
    return ann + again + bob + judge


def test_self_consistency_on_repeated_pairs():
    records = hand_made()
    pairs = reliability.repeat_pairs(records)
    # carol's vote on ann's repeat is no measure of ann; the repeat not voted yet is left out
    assert [(first.id, again.id) for first, again in pairs] == [(f"ann-{n}", f"ann-{n}-again") for n in range(1, 6)]
    found = reliability.self_consistency(pairs)
    # first: a a b tie a; again: a b b tie a → 4 of 5 the same. p_e = (3·2 + 1·2 + 1·1) / 25 = 0.36;
    # κ = (0.8 − 0.36) / 0.64 = 0.6875
    assert (found.n, found.agreed, found.raw) == (5, 4, 0.8) and found.kappa == pytest.approx(0.6875)


def test_scores_given_twice_and_against_the_votes():
    records = hand_made()
    retest = reliability.score_retest(reliability.repeat_pairs(records))
    # answers scored both times: 1a 4/4, 1b 2/3, 2a 3/2, 2b 3/4, 3a 1/1, 3b 5/5, 5a 5/3 → 7; the same: 1a 3a 3b;
    # within ±1: all but 5a
    assert (retest.n, retest.same, retest.within_one) == (7, 3, 6)
    assert retest.same_share == pytest.approx(3 / 7) and retest.within_one_share == pytest.approx(6 / 7)
    ann = [r for r in records if r.rater == "ann"]
    found = reliability.score_vote(ann)
    # both scored, repeats left out (they measure self-consistency, above): ann-1 (4,2) a ✓, -2 (3,3) a: same
    # scores yet one picked, -3 (1,5) b ✓, -6 (2,4) a ✗; -5 (5, None) has one score only
    assert (found.scored, found.unequal, found.agreed, found.equal) == (4, 3, 2, 1)
    assert found.agreed_share == pytest.approx(2 / 3)
    assert reliability.score_vote([r for r in ann if r.repeat_of]) == reliability.ScoreVote(0, 0, 0, 0)
    nothing = reliability.score_vote([pair(9, "a")])
    assert nothing == reliability.ScoreVote(0, 0, 0, 0) and math.isnan(nothing.agreed_share)
    assert math.isnan(reliability.ScoreRetest(0, 0, 0).same_share)


def test_rater_against_rater_on_the_same_pairs_either_way_round():
    pairs = reliability.inter_rater([r for r in hand_made() if not r.rater.startswith("judge:")])
    assert [(p.first, p.second) for p in pairs] == [("ann", "bob"), ("ann", "carol")]  # bob and carol share none
    ann_bob, ann_carol = (p.agreement for p in pairs)
    # ann's first votes (in answer order A, B): 1 first, 2 first, 3 second, 4 tie, 6 first; bob: 1 first (stored
    # swapped: b = A1), 2 second, 3 second, 4 first, 6 first; his deleted vote on 5 doesn't count → 3 of 5.
    # p_e = (3·3 + 1·2 + 1·0) / 25 = 0.44; κ = (0.6 − 0.44) / 0.56
    assert (ann_bob.n, ann_bob.agreed) == (5, 3) and ann_bob.kappa == pytest.approx(0.16 / 0.56)
    # carol voted ann's repeat of pair 7 the same way: both said "first" every time, so κ is undefined
    assert (ann_carol.n, ann_carol.agreed) == (1, 1) and math.isnan(ann_carol.kappa)
    assert reliability.oriented_verdict(pair(1, "a", swapped=True)) == "second"
    assert reliability.pair_key(pair(1, "a", swapped=True)) == reliability.pair_key(pair(1, "b"))


def test_the_tables_say_how_many_and_show_undefined_kappa_as_a_dash():
    report = reliability.reliability(hand_made())
    assert [r.rater for r in report.raters] == ["ann", "bob", "carol"] and report.repeats == 5
    table = reliability.rater_table(report).set_index("rater")
    assert list(table.loc["ann"]) == [8, 5, "4 / 5 · 80%", "0.69", 7, "3 / 7 · 43%", "6 / 7 · 86%", 4, "2 / 3 · 67%",
                                      "1 / 4 · 25%", "few repeats (5); few scores given twice (7); few scored votes (4)"]
    # votes with both scores are some of the votes, never more: a repeat counts in neither column
    assert all(row["votes with both scores"] <= row["votes"] for _, row in table.iterrows())
    assert list(table.loc["bob"]) == [5, 0, "—", "—", 0, "—", "—", 0, "—", "—", ""]
    assert table.loc["carol", "votes"] == 0  # carol's only vote is a repeat: it isn't a vote counted elsewhere
    pairs = reliability.pair_table(report)
    assert pairs.values.tolist() == [["ann", "bob", 5, "3 / 5 · 60%", "0.29", "few pairs (5)"],
                                     ["ann", "carol", 1, "1 / 1 · 100%", "—", "few pairs (1)"]]
    judges = reliability.reliability(hand_made(), "judges")
    assert [r.rater for r in judges.raters] == ["judge:tiny"] and judges.pairs == [] and judges.repeats == 0
    everyone = reliability.reliability(hand_made(), "all")
    assert ("ann", "judge:tiny") in [(p.first, p.second) for p in everyone.pairs]


def test_the_reliability_tab_reads_the_store(tmp_path):
    store = Store(tmp_path / "ratings.sqlite3")
    text, raters, pairs = reliability_tab.compute(store, "humans")
    assert text == "No votes from people yet: vote in the Compare or Rate tab." and raters.empty and pairs.empty
    store.insert_many(hand_made())
    text, raters, pairs = reliability_tab.compute(store)
    assert text == ("13 votes from people (3 raters) · 5 pairs voted twice by the same rater · 2 pairs of raters with "
                    "pairs in common.")
    assert list(raters["rater"]) == ["ann", "bob", "carol"] and len(pairs) == 2
    text = reliability_tab.compute(store, "judges")[0]
    assert text.startswith("1 vote from AI judges (1 rater) · 0 pairs voted twice") and "start a Rate batch" in text
    with pytest.raises(gr.Error, match="raters must be one of humans, judges, all"):
        reliability_tab.compute(store, "robots")
    assert "0.69" in reliability_tab.compute(store, "all")[1].set_index("rater").loc["ann", "κ"]
    assert list(inspect.signature(bind(reliability_tab.compute, store)).parameters) == ["raters_value"]


def test_a_batch_with_repeats_rated_in_the_rate_tab_counts_each_pair_once_elsewhere(tiny_base, tiny_chat, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1.0)
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    ctx = RateContext(store, BatchRunner(store, ModelCache(settings), lambda: []))
    prompts = [{"prompt": f"Question {i}?"} for i in range(8)]
    batch = ctx.runner.start("mine", prompts, [str(tiny_base), str(tiny_chat)],
                             BatchSettings(GenerationParams(max_new_tokens=4), LoadOptions(), repeat_share=0.25))
    ctx.runner.wait(120)
    request = gr.Request(session_hash="s1")
    current = show_pair(ctx, batch.id, None)[0]
    while current:  # always the answer of the first model (tiny_base) better, scored 4 against 2
        record = store.get(current)
        choice = "left" if (record.a if record.left_side == "a" else record.b).model == str(tiny_base) else "right"
        scores = (4, 2) if choice == "left" else (2, 4)
        current = rate_button(ctx, choice, batch.id, current, 0, "", "ann", *scores, [], request)[0]
    assert store.progress(batch.id).rated == 10  # the 8 pairs and the 2 asked again

    report = reliability.reliability(store.comparisons())
    (ann,) = report.raters
    assert (ann.votes, ann.repeats.n, ann.repeats.agreed) == (8, 2, 2)  # the same verdict both times, sides swapped
    assert (ann.scores.n, ann.scores.same) == (4, 4)
    assert (ann.score_vote.scored, ann.score_vote.unequal, ann.score_vote.agreed) == (8, 8, 8)  # the repeats not again
    assert all(r.score_a == 4 and r.score_b == 2 for r in store.comparisons())  # tiny_base is side a of every pair

    assert leaderboard_tab.compute(store, "count as a tie", 10, 0)[0].startswith("8 votes from people between 2 models")
    assert history.pair_counts(store.comparisons())["votes"].tolist() == [8]
    assert export_all(store, tmp_path / "exports").votes == 8
    assert len(preference_pairs.load_pairs("votes", settings)) == 8
