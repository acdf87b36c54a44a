"""Batch rating: prompt set files, and generating every model pair in the background (stop, resume, failures)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from playground.data import prompt_sets
from playground.data.prompt_sets import BUNDLED_PROMPTS, PromptSetError, load_prompt_set
from playground.models.generation import GenerationParams
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings.batch import BatchRunner, BatchSettings, QueuePlan, pair_count, queue_plan, repeat_count
from playground.ratings.store import Store
from tests.at_once import starting_at_once

FAST = BatchSettings(GenerationParams(max_new_tokens=4), LoadOptions())


def test_bundled_prompt_set_is_large_and_varied():
    prompts = load_prompt_set(BUNDLED_PROMPTS)
    assert len(prompts) >= 50
    assert len({p["category"] for p in prompts}) >= 10
    assert len({p["prompt"] for p in prompts}) == len(prompts)


USER = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize("name, content, message", [
    ("set.jsonl", '{"prompt": "ok"}\n{"prompt": "oops"\n', "set.jsonl: line 2: not valid JSON"),
    ("set.jsonl", '{"prompt": "ok"}\n{"system": "x"}\n', "set.jsonl: line 2, field 'prompt': missing: each row"),
    ("set.jsonl", '{"prompt": null}\n', "set.jsonl: line 1, field 'prompt': missing \\(null\\)"),
    ("set.jsonl", '{"prompt": 3}\n', "set.jsonl: line 1, field 'prompt': expected text, got a number"),
    ("set.jsonl", '{"prompt": " "}\n', "set.jsonl: line 1, field 'prompt': is empty"),
    ("set.csv", "prompt,system\nfine,x\n,y\n", "set.csv: row 2, field 'prompt': is empty"),
    ("set.jsonl", '["a list"]\n', "set.jsonl: line 1: expected an object"),
    ("set.jsonl", '{"prompt": "ok", "system": 3}\n', "set.jsonl: line 1, field 'system': expected text, got a number"),
    ("set.csv", "question\nhello\n", "set.csv: field 'prompt': no 'prompt' column"),
    ("set.txt", "\n\n", "set.txt has no prompts"),
    ("set.pdf", "x", "set.pdf: use a .jsonl, .csv, .parquet or .txt"),
    ("set.csv", "prompt,system\nfine,x\na,b,c\n", "set.csv: row 2: has 3 fields"),
    ("set.jsonl", '{"prompt": "hi"}\n'.encode("utf-16"), "set.jsonl: the file is UTF-16"),
    ("set.txt", "x" * 20_001, "set.txt: line 1: the prompt has 20,001 characters"),
    ("set.txt", "fine\n".encode() + b"\xff\n", "set.txt: line 2: byte 0xff is not UTF-8"),
    ("set.jsonl", "", "set.jsonl: the file is empty"),
    ("set.json", '{"prompt": "ok"}\n{"prompt": "oops"\n', "set.json: line 2: not valid JSON"),
    ("set.jsonl", '{"prompt": "broken\n', r"set.jsonl: line 1: not valid JSON \(Unterminated string starting at "
                                          r"column 12\)"),
])
def test_bad_prompt_sets_are_refused_naming_the_file_the_line_and_what_is_wrong(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PromptSetError, match=f"^{message}") as refused:
        load_prompt_set(path)
    assert "at at" not in str(refused.value)


@pytest.mark.parametrize("prompt, message", [
    ([{"role": "user", "content": "  "}], "field 'prompt': is empty"),
    ([{"role": "user", "content": 3}], "field 'prompt': message 1 should be"),
    ([{"role": "user"}], "field 'prompt': message 1 should be"),
    (["Hi"], "field 'prompt': message 1 should be"),
    ([], r"field 'prompt': expected one user message \(optionally after a system message\), got an empty list"),
    ([{"role": "system", "content": "Be kind."}], "field 'prompt': expected one user message .*, got only a system"),
    ([USER, {"role": "assistant", "content": "Yo"}, USER],
     "field 'prompt': expected one user message .*, got user, assistant, user: a prompt set holds single prompts"),
    ([{"role": "assistant", "content": "Yo"}], "field 'prompt': expected one user message .*, got assistant:"),
    ([USER, {"role": "system", "content": "late"}], "field 'prompt': expected one user message .*, got user, system:"),
])
def test_bad_conversational_prompts_say_what_is_wrong(tmp_path, prompt, message):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": prompt}) + "\n")
    with pytest.raises(PromptSetError, match=f"^chat.jsonl: line 2, {message}"):
        load_prompt_set(path)


def test_every_bad_row_is_listed_under_the_file_name(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"prompt": ""}\n{"prompt": "ok"}\n{"prompt": 1}\n{"id": "x"}\n')
    with pytest.raises(PromptSetError) as refused:
        load_prompt_set(path)
    assert str(refused.value).splitlines() == [
        "set.jsonl has 3 problems (a prompt set is used whole: fix them and retry):",
        "- line 1, field 'prompt': is empty",
        "- line 3, field 'prompt': expected text, got a number",
        "- line 4, field 'prompt': missing: each row needs a prompt, as text or as chat messages "
        '[{"role": "user", "content": …}]',
    ]


def test_prompt_sets_in_each_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "Hi", "system": "Be kind."}) + "\n")
    (tmp_path / "b.csv").write_bytes("\ufeffprompt,system\nHello,\n".encode())  # Excel's UTF-8 BOM
    (tmp_path / "c.txt").write_text("One\n\nTwo\n")
    assert load_prompt_set(tmp_path / "a.jsonl") == [{"prompt": "Hi", "system": "Be kind."}]
    assert load_prompt_set(tmp_path / "b.csv") == [{"prompt": "Hello"}]
    assert load_prompt_set(tmp_path / "c.txt") == [{"prompt": "One"}, {"prompt": "Two"}]


def test_trl_conversational_prompts_are_accepted(tmp_path):
    system = {"role": "system", "content": "Be kind."}
    rows = [{"prompt": [USER]}, {"prompt": [system, {"role": "user", "content": " Hello "}], "id": "p2"},
            {"prompt": [system, USER], "system": "Be kind."}]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = [{"prompt": "Hi"}, {"prompt": "Hello", "id": "p2", "system": "Be kind."},
                {"prompt": "Hi", "system": "Be kind."}]
    assert load_prompt_set(tmp_path / "chat.jsonl") == expected
    pq.write_table(pa.Table.from_pylist(rows[1:2]), tmp_path / "chat.parquet")  # a list of structs
    assert load_prompt_set(tmp_path / "chat.parquet") == expected[1:2]
    (tmp_path / "other.jsonl").write_text(json.dumps({"prompt": [system, USER], "system": "Be rude."}) + "\n")
    with pytest.raises(PromptSetError, match="line 1, field 'system': differs from the system message"):
        load_prompt_set(tmp_path / "other.jsonl")


def test_ppo_reads_conversational_prompt_files_as_the_rate_tab_does(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "system", "content": "Be kind."}, USER]}) + "\n")
    assert prompt_sets.load_prompts(str(path), None) == [prompt_sets.Prompt([USER], "Be kind.")]
    path.write_text(json.dumps({"prompt": [USER, {"role": "assistant", "content": "Yo"}, USER]}) + "\n")
    with pytest.raises(prompt_sets.PromptSetError, match="As a prompt file: chat.jsonl: line 1, field 'prompt': "
                                                      "expected one user message"):
        prompt_sets.load_prompts(str(path), None)


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


# ---------------------------------------------------------------------------------------------- repeated pairs
# A share of the pairs asked again later in the queue, sides swapped, to measure how consistent a rater is.


def test_the_number_of_repeats_and_the_share_allowed():
    assert repeat_count(60, 1, 0.1) == 6 and repeat_count(10, 3, 0.1) == 3 and repeat_count(5, 1, 0.1) == 1
    assert repeat_count(4, 1, 0.1) == 0 and repeat_count(60, 1, 0) == 0
    assert repeat_count(1, 6, 0.5) == 0  # one prompt: no other prompt to put between a pair and its repeat
    assert repeat_count(2, 1, 0.5) == 1  # at most the pairs with a whole prompt after theirs
    for bad in (-0.1, 0.6, True, "0.1"):
        with pytest.raises(ValueError, match="share of pairs to repeat must be from 0 to 50%"):
            repeat_count(10, 1, bad)
        with pytest.raises(ValueError, match="share of pairs to repeat"):
            BatchSettings(GenerationParams(), LoadOptions(), repeat_share=bad)
    old = FAST.to_dict()
    del old["repeat_share"]  # a batch stored before repeats existed
    assert BatchSettings.from_dict(old).repeat_share == 0.0


@pytest.mark.parametrize("prompts, per_prompt, share", [(60, 1, 0.1), (12, 3, 0.2), (7, 6, 0.5), (2, 1, 0.5)])
def test_the_queue_puts_each_repeat_after_another_prompt_and_spreads_them(prompts, per_prompt, share):
    for seed in ("a", "b", "c", "d", "e"):
        plan = queue_plan(prompts, per_prompt, share, seed)
        assert plan == queue_plan(prompts, per_prompt, share, seed)  # a resumed batch makes the same plan
        assert plan.total == prompts * per_prompt + repeat_count(prompts, per_prompt, share)
        assert sorted(plan.originals + list(plan.repeats.values())) == list(range(plan.total))
        assert plan.originals == sorted(plan.originals)  # the pairs keep their order
        for k, position in plan.repeats.items():
            next_prompt = plan.originals[(k // per_prompt + 1) * per_prompt:(k // per_prompt + 2) * per_prompt]
            assert position > max(next_prompt)  # the whole next prompt comes between a pair and its repeat
        # Spread through the batch, not all at the end: one repeated pair from each equal stretch of it.
        first = sorted(plan.repeats)
        eligible = (prompts - 1) * per_prompt
        assert all(eligible * i // len(first) <= k < eligible * (i + 1) // len(first) for i, k in enumerate(first))
    assert queue_plan(5, 2, 0.0, "x") == QueuePlan(list(range(10)), {})  # no repeats: the order batches always had


def test_repeats_are_generated_swapped_later_in_the_queue(runner, tiny_base, tiny_chat):
    prompts = [{"prompt": f"Question {i}?"} for i in range(12)]
    batch = runner.start("repeats", prompts, [str(tiny_base), str(tiny_chat)], replace(FAST, repeat_share=0.25))
    runner.wait(120)
    store = runner.store
    assert store.batch(batch.id).status == "ready" and store.batch(batch.id).total == 15  # 12 pairs, 3 asked again
    assert store.progress(batch.id).summary() == "0 / 15 rated"
    items = {r.id: r for r in store.comparisons(voted_only=False, batch_id=batch.id)}
    by_position = {r.position: r for r in items.values()}
    assert sorted(by_position) == list(range(15))
    repeats = [r for r in items.values() if r.repeat_of]
    assert len(repeats) == 3
    for again in repeats:
        first = items[again.repeat_of]
        assert (again.prompt, again.a, again.b, again.system_prompt) == (first.prompt, first.a, first.b,
                                                                        first.system_prompt)
        assert again.left_side != first.left_side and again.blind and again.winner is None
        between = {by_position[p].prompt for p in range(first.position + 1, again.position)}
        assert between - {first.prompt}  # another prompt's pair comes before the repeat
    assert min(r.position for r in repeats) < 12  # not all at the very end


def test_a_batch_with_repeats_resumes_the_same_queue(runner, tiny_base, tiny_chat):
    prompts = [{"prompt": f"Q{i}"} for i in range(30)]
    batch = runner.start("long", prompts, [str(tiny_base), str(tiny_chat)], replace(FAST, repeat_share=0.2))
    runner.stop(batch.id)
    runner.wait(60)
    store = runner.store
    assert store.batch(batch.id).status == "stopped" and store.progress(batch.id).generated < 36
    runner.resume(batch.id)
    runner.wait(120)
    assert store.batch(batch.id).status == "ready" and store.batch(batch.id).settings["repeat_share"] == 0.2
    items = store.comparisons(voted_only=False, batch_id=batch.id)
    assert sorted(r.position for r in items) == list(range(36)) and store.progress(batch.id).generated == 36
    by_id = {r.id: r for r in items}
    repeats = [r for r in items if r.repeat_of]
    plan = queue_plan(30, 1, 0.2, batch.id)
    assert sorted(r.position for r in repeats) == sorted(plan.repeats.values())
    assert len({r.repeat_of for r in repeats}) == 6  # no pair asked again twice
    assert all(by_id[r.repeat_of].a == r.a and by_id[r.repeat_of].left_side != r.left_side for r in repeats)


def test_a_rater_who_keeps_up_with_generation_never_meets_a_repeat_early(runner, tiny_base, tiny_chat, monkeypatch):
    """The rating queue takes the lowest position among the pairs that exist: a repeat must not exist before every
    position below it does, or a rater rating each pair as it arrives gets it straight after its original."""
    store = runner.store
    offered, early = [], []
    write = store.insert_many

    def rate_all_that_exist(records):  # after each write the generator makes, rate every pair the queue offers
        write(records)
        batch_id = records[0].batch_id
        while (shown := store.next_unrated(batch_id)) is not None:
            existing = store.batch_positions(batch_id)
            if shown.repeat_of is not None:
                offered.append(shown)
                early.extend((shown.position, p) for p in range(shown.position) if p not in existing)
            store.vote(shown, "a", rater="ann", score_a=4, score_b=2)

    monkeypatch.setattr(store, "insert_many", rate_all_that_exist)
    prompts = [{"prompt": f"Question {i}?"} for i in range(12)]
    batch = runner.start("keeping up", prompts, [str(tiny_base), str(tiny_chat)], replace(FAST, repeat_share=0.25))
    runner.wait(120)
    assert store.batch(batch.id).status == "ready", store.batch(batch.id).error
    assert early == []  # (repeat's position, a position below it not generated yet when it was offered)
    assert len(offered) == 3 and store.progress(batch.id).rated == 15
    by_id = {r.id: r for r in store.comparisons(batch_id=batch.id)}
    plan = queue_plan(12, 1, 0.25, batch.id)
    for again in offered:
        first = by_id[again.repeat_of]
        assert again.position == plan.repeats[plan.originals.index(first.position)]
        # the original was voted before its repeat was written: the repeat carries none of that vote
        assert (again.rater, again.voted_at, again.score_a, again.left_side) == ("", None, None,
                                                                                  "a" if first.left_side == "b" else "b")


def test_a_resumed_batch_writes_missing_repeats_from_the_stored_pairs(runner, tiny_base, tiny_chat):
    """Repeats queued after prompts already generated are copied from the stored originals, with no model asked."""
    prompts = [{"prompt": f"Q{i}"} for i in range(8)]
    batch = runner.start("resumed", prompts, [str(tiny_base), str(tiny_chat)], replace(FAST, repeat_share=0.25))
    runner.wait(120)
    store = runner.store
    before = {r.position: r for r in store.comparisons(voted_only=False, batch_id=batch.id)}
    repeats = {p for p, r in before.items() if r.repeat_of}
    assert len(repeats) == 2
    with sqlite3.connect(store.path) as db:  # as a batch written before repeats came after their prompt might be
        db.execute("DELETE FROM comparisons WHERE repeat_of IS NOT NULL")
    store.set_batch_status(batch.id, "interrupted")
    runner._answer = None  # no answer may be generated: every original is there
    runner.resume(batch.id)
    runner.wait(60)
    assert store.batch(batch.id).status == "ready", store.batch(batch.id).error
    after = {r.position: r for r in store.comparisons(voted_only=False, batch_id=batch.id)}
    assert sorted(after) == list(range(10))
    for position in repeats:
        again, was = after[position], before[position]
        assert (again.repeat_of, again.a, again.b, again.left_side) == (was.repeat_of, was.a, was.b, was.left_side)


def test_two_batches_started_at_once_one_generates_the_other_is_refused(runner, tiny_base, tiny_chat, monkeypatch):
    store = runner.store
    create = store.create_batch

    def slow_create(*args, **kwargs):  # widens the gap between "is one running?" and the batch starting
        time.sleep(0.3)
        return create(*args, **kwargs)

    monkeypatch.setattr(store, "create_batch", slow_create)
    prompts = [{"prompt": f"Q{i}"} for i in range(30)]
    outcomes = starting_at_once(lambda name: runner.start(name, prompts, [str(tiny_base), str(tiny_chat)], FAST))
    started = [o for o in outcomes if not isinstance(o, ValueError)]
    try:
        refused = [str(o) for o in outcomes if isinstance(o, ValueError)]
        assert refused == ["Another batch is still generating: stop it first, or wait until it is done."]
        assert [b.id for b in store.batches()] == [started[0].id]  # no second batch was written
        assert runner.running() == started[0].id
        # resuming it twice at once: one is refused the same way, the batch is not generated twice
        runner.stop(started[0].id)
        runner.wait(60)
        outcomes = starting_at_once(lambda _: runner.resume(started[0].id))
        assert sorted(map(str, outcomes)) == ["Another batch is still generating: stop it first, or wait until it is "
                                              "done.", "None"]
    finally:
        for batch in started:
            runner.stop(batch.id)
        runner.wait(60)
