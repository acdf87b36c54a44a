"""The Rate tab's progress line (a pure function of the store): it names the generation's state with counts."""

from __future__ import annotations

import pytest

from playground.ratings.store import Store
from playground.ui.rate_tab import _progress_html


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
