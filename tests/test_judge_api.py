"""The Judge tab through gradio_client: judge a Rate batch with the tiny word-map judge, watch its progress, stop a
run that is done, and read its agreement with a person's votes."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from playground.core.settings import Settings
from playground.ratings.store import Store
from tests.app_server import serve
from tests.preference_records import record
from tests.tiny_judge import build_judge

RUBRIC = "{question} {first} {second}"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge-api")
    judge = build_judge(folder / "tiny-judge")
    settings = Settings(data_dir=folder / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    with serve(settings) as client:
        yield client, settings, judge


def test_judge_a_batch_and_read_its_agreement(app):
    client, settings, judge = app
    store = Store(settings.ratings_db)
    batch = store.create_batch("pairs", ["alpha", "beta"], 3)
    answers = [("Red and blue good", "It cheese bad", "a"), ("It cheese bad", "Red and blue good", "a"),
               ("It cheese bad", "It cheese bad", "tie")]  # the judge: a, b and (position bias) a tie
    store.insert_many([replace(record(person, prompt="Which answer is better?", answer_a=a, answer_b=b,
                                      model_a="alpha", model_b="beta"), batch_id=batch.id, position=i,
                               source="rate", rater="ann")
                       for i, (a, b, person) in enumerate(answers)])

    picker, progress, status = client.predict(str(judge), batch.id, RUBRIC, 32, api_name="/judge_start")
    run_id = picker["value"]  # the run picker comes back as its update: choices and the new run picked
    deadline = time.monotonic() + 120
    while "done" not in status and time.monotonic() < deadline:
        time.sleep(0.3)
        progress, status = client.predict(run_id, api_name="/judge_progress")
    assert "3 / 3 judged" in progress and "batch pairs" in status and "done" in status
    assert "not judging (it is done)" in client.predict(run_id, api_name="/judge_stop")

    summary, table, page = client.predict(f"judge:{judge}", api_name="/judge_agreement")
    # person a, a, tie; judge a, b, tie → 2 of 3 agree; p_e = (2·1 + 1·1) / 9 = 1/3 → κ = (2/3 − 1/3) / (2/3) = 0.5
    assert "on 3 pairs both voted on: 67% the same verdict" in summary and "Cohen's κ 0.50" in summary
    assert "both orders gave the same verdict on 2 of 3 pairs (67%)" in summary
    assert "Second shines. Verdict:B" in page and "1 disagreements below" in summary
    votes = [v for v in store.comparisons() if v.rater == f"judge:{judge}"]
    assert sorted(v.winner for v in votes) == ["a", "b", "tie"] and all(v.batch_id is None for v in votes)

    _, status = client.predict(run_id, api_name="/judge_resume")  # nothing left: judged again, no second vote
    deadline = time.monotonic() + 60
    while "done" not in status and time.monotonic() < deadline:
        time.sleep(0.3)
        status = client.predict(run_id, api_name="/judge_progress")[1]
    assert len([v for v in store.comparisons() if v.rater == f"judge:{judge}"]) == 3
