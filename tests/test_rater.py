"""Who a vote is recorded under: the typed name, "anonymous", or — with --auth — the login, whatever is typed."""

from __future__ import annotations

from types import SimpleNamespace

from playground.core.settings import Settings
from playground.ratings.store import ComparisonRecord, Side, Store
from playground.ui.rater import ANONYMOUS, rater_name
from tests.app_server import serve


def test_typed_name_is_tidied_and_empty_is_anonymous():
    assert rater_name("  Ana   Lee ", None) == "Ana Lee"
    assert rater_name("", SimpleNamespace(username=None)) == ANONYMOUS
    assert rater_name(None, None) == ANONYMOUS
    assert len(rater_name("x" * 500, None)) == 80


def test_login_wins_over_the_typed_name():
    assert rater_name("someone else", SimpleNamespace(username="alice")) == "alice"


def test_with_auth_the_logged_in_user_is_the_rater(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1, auth=("alice", "secret"))
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    batch = store.create_batch("auth", ["m1", "m2"], 1)
    store.insert_many([ComparisonRecord(messages=[{"role": "user", "content": "q"}], a=Side("m1", response="x"),
                                        b=Side("m2", response="y"), source="rate", batch_id=batch.id, position=0)])
    with serve(settings) as client:
        client.predict(batch.id, api_name="/rate_open")
        client.predict(batch.id, 0, "", "mallory", api_name="/rate_tie")  # the typed name can't impersonate
    assert store.last_voted(batch.id).rater == "alice"
    assert store.raters() == ["alice"]
