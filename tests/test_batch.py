"""Batch rating: prompt set files, and generating every model pair in the background (stop, resume, failures)."""

from __future__ import annotations

import json

import pytest

from playground.batch import BUNDLED_PROMPTS, BatchRunner, BatchSettings, PromptSetError, load_prompt_set, pair_count
from playground.generation import GenerationParams
from playground.loading import LoadOptions, ModelCache
from playground.store import Store

FAST = BatchSettings(GenerationParams(max_new_tokens=4), LoadOptions())


def test_bundled_prompt_set_is_large_and_varied():
    prompts = load_prompt_set(BUNDLED_PROMPTS)
    assert len(prompts) >= 50
    assert len({p["category"] for p in prompts}) >= 10
    assert len({p["prompt"] for p in prompts}) == len(prompts)


@pytest.mark.parametrize("name, content, message", [
    ("set.jsonl", '{"prompt": "ok"}\n{"prompt": "oops"\n', "line 2: not valid JSON"),
    ("set.jsonl", '{"prompt": "ok"}\n{"system": "x"}\n', "no 'prompt'|line 2: the prompt is missing"),
    ("set.jsonl", '["a list"]\n', "line 1: expected an object"),
    ("set.jsonl", '{"prompt": "ok", "system": 3}\n', "line 1: system must be text"),
    ("set.csv", "question\nhello\n", "'prompt' column"),
    ("set.txt", "\n\n", "has no prompts"),
    ("set.pdf", "x", "use a .jsonl, .csv, .parquet or .txt"),
    ("set.csv", "prompt,system\nfine,x\na,b,c\n", "row 2: has 3 fields"),
    ("set.jsonl", '{"prompt": "hi"}\n'.encode("utf-16"), "UTF-16"),
    ("set.txt", "x" * 20_001, "line 1: the prompt has 20,001 characters"),
])
def test_bad_prompt_sets_are_refused_with_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PromptSetError, match=message):
        load_prompt_set(path)


def test_prompt_sets_in_each_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "Hi", "system": "Be kind."}) + "\n")
    (tmp_path / "b.csv").write_bytes("\ufeffprompt,system\nHello,\n".encode())  # Excel's UTF-8 BOM
    (tmp_path / "c.txt").write_text("One\n\nTwo\n")
    assert load_prompt_set(tmp_path / "a.jsonl") == [{"prompt": "Hi", "system": "Be kind."}]
    assert load_prompt_set(tmp_path / "b.csv") == [{"prompt": "Hello"}]
    assert load_prompt_set(tmp_path / "c.txt") == [{"prompt": "One"}, {"prompt": "Two"}]


def test_pair_count():
    assert pair_count(60, 2) == 60 and pair_count(10, 3) == 30 and pair_count(5, 4) == 30


@pytest.fixture
def runner(settings):
    return BatchRunner(Store(settings.ratings_db), ModelCache(settings), lambda: [])


def test_every_pair_on_every_prompt_is_generated_blind(runner, tiny_base, tiny_chat, tiny_adapter):
    prompts = [{"prompt": f"Question {i}?"} for i in range(4)]
    batch = runner.start("four", prompts, [str(tiny_base), str(tiny_chat), str(tiny_adapter)], FAST)
    runner.wait(120)
    store = runner.store
    assert store.batch(batch.id).status == "ready"
    assert store.progress(batch.id).summary() == "0 / 12 rated"
    items = store.comparisons(voted_only=False, batch_id=batch.id)
    assert sorted(i.position for i in items) == list(range(12))
    assert {i.left_side for i in items} == {"a", "b"}  # sides are shuffled
    assert all(i.blind and i.source == "rate" and i.a.response and i.b.response for i in items)
    # One answer per model per prompt: the same model's answer is reused across its pairs.
    first = [i for i in items if i.prompt == "Question 0?"]
    by_model = {}
    for item in first:
        for side in (item.a, item.b):
            by_model.setdefault((side.model, side.adapter), set()).add(side.response)
    assert len(by_model) == 3 and all(len(responses) == 1 for responses in by_model.values())


def test_stop_then_resume_finishes_without_duplicates(runner, tiny_base, tiny_chat):
    prompts = [{"prompt": f"Q{i}"} for i in range(30)]
    batch = runner.start("long", prompts, [str(tiny_base), str(tiny_chat)], FAST)
    runner.stop(batch.id)
    runner.wait(60)
    assert runner.store.batch(batch.id).status == "stopped"
    assert runner.store.progress(batch.id).generated < 30
    runner.resume(batch.id)
    runner.wait(120)
    assert runner.store.batch(batch.id).status == "ready"
    assert sorted(runner.store.batch_positions(batch.id)) == list(range(30))


def test_a_batch_left_generating_by_a_dead_app_is_marked_interrupted(settings, tiny_base, tiny_chat):
    store = Store(settings.ratings_db)
    batch = store.create_batch("old", [str(tiny_base), str(tiny_chat)], 2, [{"prompt": "x"}], FAST.to_dict())
    BatchRunner(store, ModelCache(settings), lambda: [])
    assert store.batch(batch.id).status == "interrupted"


def test_bad_choices_are_refused_before_anything_starts(runner, tiny_base):
    with pytest.raises(ValueError, match="at least two"):
        runner.start("x", [{"prompt": "a"}], [str(tiny_base), str(tiny_base)], FAST)
    with pytest.raises(ValueError, match="not a model folder"):
        runner.start("x", [{"prompt": "a"}], [str(tiny_base), "/no/such/model"], FAST)
    assert runner.store.batches() == []


def test_a_model_failing_mid_batch_marks_it_failed(runner, tiny_base, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # looks like a model folder, fails to load
    batch = runner.start("bad", [{"prompt": "a"}], [str(tiny_base), str(broken)], FAST)
    runner.wait(60)
    failed = runner.store.batch(batch.id)
    assert failed.status == "failed" and "broken" in failed.error
