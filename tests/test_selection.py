"""Whose votes count: people's and AI judges' kept apart unless asked, a repeated pair counted once, answer scores
and a judge's words stored with the vote, and the agreement measures on hand-computed cases."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import gradio as gr
import pytest

from playground.core.settings import Settings
from playground.data import preference_pairs
from playground.ratings import history
from playground.ratings.agreement import cohen_kappa, verdict
from playground.ratings.export import export_all
from playground.ratings.selection import human_rater_error, is_judge, judge_rater, select
from playground.ratings.store import MIGRATIONS, ComparisonRecord, Store, _statements
from playground.ui import history_tab, leaderboard_tab, reward_tab
from playground.ui.rater import rater_name
from tests.preference_records import record

JUDGEMENT = {"judge": "tiny-chat", "rubric": "Which is better?", "consistent": False,
             "orders": [{"shown": ["a", "b"], "text": "Answer A is better. Verdict: A", "verdict": "a"},
                        {"shown": ["b", "a"], "text": "The first one (B). Verdict: A", "verdict": "b"}]}


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "ratings.sqlite3")


def votes() -> list[ComparisonRecord]:
    """People's votes, one repeated pair (sides swapped), and an AI judge's vote on the first pair."""
    first = record("a", rater="ann", record_id="first")
    second = record("b", prompt="Write a haiku.", rater="bob", record_id="second")
    repeat = replace(record("b", rater="ann", left="b", record_id="repeat"), repeat_of="first")
    judged = replace(record("tie", rater=judge_rater("tiny-chat"), record_id="judged"), judge_of="first",
                     judgement=JUDGEMENT, rationale="The two orders disagree: a tie.")
    return [first, second, repeat, judged]


def test_scores_repeats_and_a_judges_words_round_trip(store):
    for r in votes():
        store.save(r)
    scored = store.vote(store.get("second"), "b", rater="bob", score_a=2, score_b=5)
    assert (store.get(scored.id).score_a, store.get(scored.id).score_b) == (2, 5)
    assert store.get("repeat").repeat_of == "first"
    judged = store.get("judged")
    assert judged.judge_of == "first" and judged.judgement == JUDGEMENT and judged.rater == "judge:tiny-chat"
    store.clear_vote("second")
    assert (store.get("second").score_a, store.get("second").score_b) == (None, None)


@pytest.mark.parametrize("score", [0, 6, 2.5, True, "3"])
def test_a_score_outside_one_to_five_is_refused_and_changes_nothing(store, score):
    saved = store.save(record("a", record_id="x"))
    with pytest.raises(ValueError, match="1 to 5"):
        store.vote(saved, "b", score_a=score)
    with pytest.raises(ValueError, match="1 to 5"):
        replace(saved, score_b=score)
    assert store.get("x").winner == "a"


def test_a_database_from_before_gains_the_columns_and_keeps_its_votes(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:2]):
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number + 1}")
        db.execute("INSERT INTO comparisons (id, created_at, updated_at, voted_at, source, messages, side_a, "
                   "response_a, side_b, response_b, left_side, blind, winner, app_version) VALUES ('old', 't', 't', "
                   "'t', 'compare', '[{\"role\": \"user\", \"content\": \"hi\"}]', '{}', 'x', '{}', 'y', 'a', 0, "
                   "'a', '0')")
    old = Store(path).get("old")
    assert old.winner == "a" and (old.repeat_of, old.score_a, old.judge_of, old.judgement) == (None,) * 4


def test_select_keeps_people_and_judges_apart_and_counts_a_repeat_once():
    records = votes()
    assert [r.id for r in select(records)] == ["first", "second"]
    assert [r.id for r in select(records, "judges")] == ["judged"]
    assert [r.id for r in select(records, "all")] == ["first", "second", "judged"]
    assert [r.id for r in select(records, repeats=True)] == ["first", "second", "repeat"]
    with pytest.raises(ValueError, match="humans, judges, all"):
        select(records, "robots")  # type: ignore[arg-type]
    again = replace(records[3], id="judged-again", winner="a", voted_at="2099-01-01T00:00:00+00:00")
    assert [r.id for r in select(records + [again], "judges")] == ["judged-again"]  # the newest verdict, once


def test_a_person_cannot_vote_under_a_judges_name():
    assert is_judge(judge_rater("m")) and not is_judge("judge mary")
    assert human_rater_error("  judge:gemma") and human_rater_error("ann") is None
    with pytest.raises(gr.Error, match="kept for AI judges"):
        rater_name("judge:gemma", None)
    assert rater_name("  ann  ", None) == "ann" and rater_name("", None) == "anonymous"


def test_history_filters_by_kind_and_marks_repeats_and_judges(store):
    for r in votes():
        store.save(r)
    people = history_tab.refresh_view(store, "", "", "", "", "")
    assert set(people[3]["id"]) == {"first", "second", "repeat"}
    assert people[3].set_index("id").loc["repeat", "source"] == "compare (repeat)"
    judges = history_tab.refresh_view(store, "", "", "", "", "", "judges")
    assert list(judges[3]["id"]) == ["judged"] and list(judges[3]["source"]) == ["judge"]
    assert len(history_tab.refresh_view(store, "", "", "", "", "", "all")[3]) == 4
    with pytest.raises(gr.Error):
        history_tab.refresh_view(store, "", "", "", "", "", "robots")
    page = history.detail(store.get("judged"))
    assert "Answer A is better. Verdict: A" in page and "The first one (B). Verdict: A" in page
    assert "judged <code>first</code>" in page


def test_the_leaderboard_counts_the_chosen_kind_of_rater_and_a_repeat_once(store):
    for r in votes():
        store.save(r)
    summary = leaderboard_tab.compute(store, "count as a tie", 10, 0)[0]
    assert summary.startswith("2 votes from people between 2 models")
    assert leaderboard_tab.compute(store, "count as a tie", 10, 0, "judges")[0].startswith(
        "1 votes from AI judges")
    assert leaderboard_tab.compute(store, "count as a tie", 10, 0, "all")[0].startswith("3 votes")
    with pytest.raises(gr.Error):
        leaderboard_tab.compute(store, "count as a tie", 10, 0, "robots")
    # an AI judge read each pair in both orders: no left/right bias to show for it; people's bias counts people
    assert "no left and right" in leaderboard_tab.compute(store, "count as a tie", 10, 0, "judges")[4]
    assert "1 of 2 decisive votes" in leaderboard_tab.compute(store, "count as a tie", 10, 0, "all")[4]


def test_the_reward_tabs_picker_lists_each_pair_once(store):
    for r in votes():
        store.save(r)
    assert sorted(choice for _, choice in reward_tab.comparison_choices(store)) == ["first", "second"]


def test_export_and_training_read_the_chosen_votes(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.ratings_db)
    for r in votes():
        store.save(r)
    judge_win = replace(record("b", prompt="Name a colour.", rater=judge_rater("tiny-chat"), record_id="judge-b"),
                        judge_of="second")
    store.save(judge_win)
    assert export_all(store, tmp_path / "people").votes == 2
    assert export_all(store, tmp_path / "judges", raters="judges").votes == 2
    assert export_all(store, tmp_path / "all", raters="all").votes == 4
    people = preference_pairs.load_pairs("votes", settings)
    assert sorted(p.id for p in people) == ["first", "second"]
    assert [p.id for p in preference_pairs.load_pairs("judge-votes", settings)] == ["judge-b"]  # the tie is no pair
    assert len(preference_pairs.load_pairs("all-votes", settings)) == 3
    counts = {s.name: s.pairs for s in preference_pairs.list_sets(settings) if s.origin == "votes"}
    assert counts == {"votes": 2, "judge-votes": 1, "all-votes": 3}


def test_training_on_judge_votes_without_any_says_so(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.ratings_db)
    store.save(record("a", record_id="only-people"))
    with pytest.raises(preference_pairs.PreferenceDataError, match="AI judges hold no chosen/rejected pair"):
        preference_pairs.load_pairs("judge-votes", settings)


def test_verdicts_ignore_sides_and_fold_both_bad_into_tie():
    assert [verdict(record(w)) for w in ("a", "b", "tie", "both_bad")] == ["a", "b", "tie", "tie"]
    assert verdict(record(None)) is None


def test_cohen_kappa_on_hand_computed_cases():
    # 10 items, the same label at items 0, 1, 2, 5, 6, 8: p_o = 0.6. first: a×5 b×3 tie×2; second: a×4 b×4
    # tie×2 → p_e = (5·4 + 3·4 + 2·2) / 100 = 0.36; κ = (0.6 − 0.36) / 0.64 = 0.375
    first = ["a", "a", "a", "a", "a", "b", "b", "b", "tie", "tie"]
    second = ["a", "a", "a", "b", "tie", "b", "b", "a", "tie", "b"]
    found = cohen_kappa(first, second)
    assert (found.n, found.agreed, found.raw) == (10, 6, 0.6)
    assert found.kappa == pytest.approx(0.375)
    assert cohen_kappa(["a", "b"], ["a", "b"]).kappa == pytest.approx(1.0)
    # always opposite on two labels used equally: p_o = 0, p_e = 0.5 → κ = −1
    assert cohen_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]).kappa == pytest.approx(-1.0)
    # both raters say "a" every time: chance agreement is 1, κ is undefined
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]).kappa)
    assert math.isnan(cohen_kappa([], []).kappa) and math.isnan(cohen_kappa([], []).raw)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])
