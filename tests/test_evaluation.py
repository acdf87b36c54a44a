"""Held-out evaluation: the scoring rule, the data file's checks, base vs base + adapter on tiny models, the table,
the chart, and eval.json."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import pandas as pd
import pytest

from playground.data import evaluation as ev
from playground.data.evaluation import (
    EvalResult,
    EvaluationError,
    EvaluationStopped,
    HeldoutError,
    HeldoutExample,
    bar_chart,
    compare,
    evaluate,
    is_correct,
    load_heldout,
    load_saved,
    save,
)
from playground.models.catalog import ModelSpec
from playground.models.generation import StreamUpdate
from playground.models.loading import ModelCache

TOKENS = 6  # enough for a few words from the tiny model, few enough that a whole evaluation takes well under a second


def example(answer: str, check: str = "contains", id: str = "x") -> HeldoutExample:
    return HeldoutExample(id=id, task="t", instruction="Say it.", input="", answer=answer, check=check)


# ---------------------------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("output, answer, expected", [
    ("Paris", "Paris", True),
    ("  paris.  ", "Paris", True),
    ("PARIS!!", "paris", True),
    ("Paris?", "Paris", True),
    ("Paris\nis the capital of France.", "Paris", True),  # only the first line counts…
    ("\n\n  Paris\nLyon", "Paris", True),  # …the first non-blank one
    ("The capital is Paris.", "Paris", False),  # exact means exact
    ("Lyon\nParis", "Paris", False),
    ("Paris, France", "Paris", False),
    ("", "Paris", False),
    ("   \n  ", "Paris", False),
    ("Zürich", "zürich", True),
    ("Zu\u0308rich", "Zürich", True),  # decomposed ü equals composed ü
    ("ＰＡＲＩＳ", "Paris", True),  # full-width letters
    ("STRASSE", "Straße", True),  # casefolding, not just lower()
    ("東京。", "東京", True),  # an ideographic full stop is trailing punctuation too
    ("Yes.", "Yes.", True),  # the answer's own trailing punctuation is dropped the same way
    ("don’t", "don't", True),  # curly apostrophe
    ("New   York", "New York", True),
    ("12", "12", True),
    ("120", "12", False),
    ("12.", "12", True),
    ("Paris.", "Paris!", True),
    ("A key.", "key", True),  # one leading article is not part of a closed answer (SQuAD's exact match drops it)
    ("an umbrella", "umbrella", True),
    ("The Nile", "Nile", True),
    ("Nile", "The Nile", True),
    ("a", "a", True),  # an answer that is only an article stays itself
    ("A.", "a", True),
    ("A) A sharpener", "sharpener", False),  # a labelled choice is not the bare answer
    ("a red key", "key", False),
    ("the the key", "key", False),  # one article, not any number
])
def test_exact_check(output, answer, expected):
    assert is_correct(output, example(answer, "exact")) is expected


@pytest.mark.parametrize("output, answer, expected", [
    ("The capital of France is Paris.", "Paris", True),
    ("the capital is PARIS!", "paris", True),
    ("Parisian food", "Paris", False),  # a whole word, not a prefix
    ("Comparison", "Paris", False),
    ("I think\nthe answer is\nParis", "Paris", False),  # only the first line counts: the rest is rambling
    ("The answer is 12.", "12", True),
    ("120", "12", False),
    ("312", "12", False),
    ("12.5", "12", False),
    ("3,120 apples", "12", False),
    ("-12", "12", False),  # a minus glued to the number makes it another number
    ("pages 10-12", "12", True),  # but a range is not a minus
    ("12th", "12", False),
    ("(12)", "12", True),
    ("12, 13 and 14", "13", False),  # a list of candidates is not an answer
    ("1,000 people", "1,000", True),
    ("it is -4 degrees", "-4", True),
    ("it is 4 degrees", "-4", False),
    ("C++ is a language", "C++", True),
    ("C is a language", "C++", False),
    ("Zürich ist schön", "zürich", True),
    ("ZU\u0308RICH", "Zürich", True),
    ("Zürichsee", "Zürich", False),  # unicode letters are word characters too
    ("東京 is big", "東京", True),
    ("ＤＯＧ barks", "dog", True),
    ("She said “don’t”", "don't", True),
    ("New\nYork", "New York", False),
    ("", "Paris", False),
    ("\n", "12", False),
])
def test_contains_check(output, answer, expected):
    assert is_correct(output, example(answer, "contains")) is expected


@pytest.mark.parametrize("output, expected", [
    ("The capital of France is Paris.", True),
    ("Paris, of course.", True),  # one comma is a sentence, not a list
    ("Paris or Lyon", False),  # candidates, not an answer
    ("Lyon, Paris, Marseille", False),
    ("Paris/Lyon", False),
    ("Paris | Lyon", False),
    ("Lyon; Paris", False),
    ("Maybe Lyon or maybe Paris, I am not sure", False),
    ("Paris\nLyon\nMarseille", True),  # the first line alone answers; what follows isn't read
    ("Lyon\nMarseille\nParis", False),
    ("Well, there are many beautiful cities in France and one of the most famous is Paris", False),  # rambling
    ("I would say the capital city of the French Republic is Paris", True),  # 12 words: a sentence
    ("I would say that the capital city of the French Republic is Paris", False),  # 13 words
])
def test_contains_credits_one_short_answer_line_never_lists_or_rambling(output, expected):
    assert ev.CONTAINS_MAX_WORDS == 12
    assert is_correct(output, example("Paris", "contains")) is expected


def test_an_answer_with_or_in_it_is_still_credited():
    assert is_correct("It is rock or roll.", example("rock or roll", "contains")) is True  # the 'or' is the answer's
    assert is_correct("Rock or roll, or jazz", example("rock or roll", "contains")) is False


def test_an_unknown_check_is_an_error_not_a_wrong_score():
    with pytest.raises(ValueError, match="unknown check"):
        is_correct("Paris", example("Paris", "fuzzy"))


def test_prompt_is_instruction_then_input():
    assert example("a").prompt == "Say it."
    full = HeldoutExample("x", "t", "Add the numbers.", "2 + 3", "5", "contains")
    assert full.prompt == "Add the numbers.\n\n2 + 3"


# ---------------------------------------------------------------------------------------------- the data file


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
                            for row in rows), encoding="utf-8")
    return path


GOOD = {"id": "h1", "task": "capitals", "instruction": "Name the capital of France.", "input": "", "answer": "Paris",
        "check": "exact"}


def test_load_heldout_reads_rows(tmp_path):
    second = {**GOOD, "id": "h2", "task": "sums", "input": "2 + 3", "answer": "5", "check": "contains"}
    no_input = {k: v for k, v in GOOD.items() if k != "input"} | {"id": "h3", "note": "extra keys are ignored"}
    path = tmp_path / "h.jsonl"
    path.write_text("\ufeff" + json.dumps(GOOD) + "\n\n" + json.dumps(second) + "\n" + json.dumps(no_input) + "\n")
    examples = load_heldout(path)
    assert [e.id for e in examples] == ["h1", "h2", "h3"]
    assert examples[1] == HeldoutExample("h2", "sums", "Name the capital of France.", "2 + 3", "5", "contains")
    assert examples[2].input == ""


@pytest.mark.parametrize("rows, message", [
    ([GOOD, '{"id": "h2", "task"'], "h.jsonl line 2: not valid JSON"),
    ([GOOD, '{"id": "h2", "task": "cap'], "line 2: not valid JSON (Unterminated string starting at column 22)"),
    ([GOOD, '["a list"]'], "line 2: expected an object"),
    ([GOOD, "[" * 100_000], "line 2: not usable JSON: its lists or objects are nested too deeply"),
    ([{k: v for k, v in GOOD.items() if k != "answer"}], "line 1: 'answer' is missing"),
    ([{**GOOD, "answer": "  "}], "line 1: 'answer' is empty"),
    ([{**GOOD, "answer": 5}], "line 1: 'answer' is missing or not text"),
    ([{**GOOD, "input": None}], "line 1: 'input' is missing or not text"),
    ([{**GOOD, "task": ""}], "line 1: 'task' is empty"),
    ([{**GOOD, "check": "fuzzy"}], "line 1: 'check' must be exact or contains"),
    ([{**GOOD, "answer": "?!"}], "line 1: the answer is only punctuation"),
    ([GOOD, "", {**GOOD, "task": "other"}], "line 3: id 'h1' is already used on line 1"),
    (["", "  "], "has no examples"),
])
def test_load_heldout_names_the_bad_line(tmp_path, rows, message):
    with pytest.raises(HeldoutError, match=re.escape(message)):
        load_heldout(write_jsonl(tmp_path / "h.jsonl", rows))


def test_load_heldout_refuses_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_heldout(tmp_path / "nope.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps({**GOOD, "answer": "Zürich"}, ensure_ascii=False)
                                            .encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        load_heldout(tmp_path / "latin1.jsonl")


def test_bundled_heldout_set_is_large_and_varied():
    examples = load_heldout()
    assert len(examples) >= 60
    tasks = {e.task for e in examples}
    assert len(tasks) >= 3
    assert all(sum(e.task == t for e in examples) >= 5 for t in tasks), "every family needs a few examples"
    for e in examples:  # every answer is one the scoring rule can credit
        assert is_correct(e.answer, e), e.id


# ---------------------------------------------------------------------------------------------- evaluate on tiny models

PROMPTS = [("Name the capital of France.", ""), ("Add the numbers.", "2 + 3"), ("Translate to French.", "the sea"),
           ("Classify the sentiment as positive or negative.", "I love this robot."), ("Summarize this text.", "")]


def heldout_file(path: Path, answers: list[tuple[str, str]] | None = None) -> list[HeldoutExample]:
    """A small held-out file on disk (read back through load_heldout); answers default to 'Paris' (never said)."""
    answers = answers or [("Paris", "exact")] * len(PROMPTS)
    rows = [{"id": f"h{i}", "task": ["alpha", "beta"][i % 2], "instruction": instruction, "input": text,
             "answer": answer, "check": check}
            for i, ((instruction, text), (answer, check)) in enumerate(zip(PROMPTS, answers))]
    return load_heldout(write_jsonl(path, rows))


def test_evaluate_is_deterministic_and_scores_the_outputs(settings, tiny_base, tmp_path):
    cache, spec = ModelCache(settings), ModelSpec(str(tiny_base))
    examples = heldout_file(tmp_path / "first.jsonl")
    seen: list[tuple[float, str]] = []
    first = evaluate(cache, spec, examples, max_new_tokens=TOKENS, progress=lambda f, m: seen.append((f, m)))
    outputs = [row["output"] for row in first.rows]
    assert first.model == "tiny-base" and first.prompt_format == "instruction"
    assert [row["id"] for row in first.rows] == [e.id for e in examples]
    assert all(outputs) and not any(row["correct"] for row in first.rows)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    assert "example 1 of 5" in seen[0][1] and "% of 5 held-out examples correct" in seen[-1][1]

    # Answers taken from what the model said (a word it wrote; its whole first line) are scored right; an answer it
    # never wrote is scored wrong. The prompts are unchanged, so greedy decoding must give the same outputs.
    words = [re.findall(r"[^\W\d_]+", output) for output in outputs]
    lines = [next((line for line in output.splitlines() if line.strip()), "") for output in outputs]
    hit = next(i for i, found in enumerate(words) if found)
    other = next(i for i, line in enumerate(lines) if i != hit and line.strip(" .!?"))
    answers = [("zebra", "contains")] * len(PROMPTS)
    answers[hit] = (words[hit][0], "contains")
    answers[other] = (lines[other], "exact")
    second = evaluate(cache, spec, heldout_file(tmp_path / "second.jsonl", answers), max_new_tokens=TOKENS)
    assert [row["output"] for row in second.rows] == outputs
    assert [row["correct"] for row in second.rows] == [i in (hit, other) for i in range(len(PROMPTS))]
    assert second.accuracy == pytest.approx(40.0)


def test_an_adapter_is_evaluated_as_its_own_model(settings, tiny_base, tiny_adapter, tmp_path):
    cache = ModelCache(settings)
    examples = heldout_file(tmp_path / "h.jsonl")
    base = evaluate(cache, ModelSpec(str(tiny_base)), examples, max_new_tokens=TOKENS)
    tuned_spec = ModelSpec(str(tiny_base), adapter=str(tiny_adapter))
    tuned = evaluate(cache, tuned_spec, examples, max_new_tokens=TOKENS)
    again = evaluate(cache, tuned_spec, examples, max_new_tokens=TOKENS)
    assert tuned.model == "tiny-base + tiny-lora"
    assert [r["output"] for r in tuned.rows] == [r["output"] for r in again.rows]
    assert [r["output"] for r in tuned.rows] != [r["output"] for r in base.rows]
    table = compare(base, tuned)
    assert list(table["task"]) == ["alpha", "beta", "all tasks"] and list(table["n"]) == [3, 2, 5]


def test_a_folder_that_is_not_a_model_fails_loudly(settings, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    examples = [example("Paris", id="h7")]
    with pytest.raises(EvaluationError, match="not-a-model failed on held-out example h7: .*no config.json"):
        evaluate(ModelCache(settings), ModelSpec(str(folder)), examples, max_new_tokens=TOKENS)


@pytest.mark.parametrize("updates, message", [
    ([StreamUpdate(status="Loading…"), StreamUpdate(error="Out of memory while generating", done=True)],
     "failed on held-out example x: Out of memory while generating"),
    ([StreamUpdate(text="Par")], "ended without finishing"),
])
def test_a_generation_error_is_not_a_wrong_answer(monkeypatch, settings, tiny_base, updates, message):
    monkeypatch.setattr(ev, "answer", lambda *args: iter(updates))
    with pytest.raises(EvaluationError, match=message):
        evaluate(ModelCache(settings), ModelSpec(str(tiny_base)), [example("Paris")])


def fake_model(lines: str, seen: dict):
    """A stand-in for ``answer`` that writes ``lines`` a character at a time until its stop event is set, as the
    real stream stops after the current token; ``seen`` records how much it wrote and whether it was stopped."""
    def answer(cache, spec, options, messages, fmt, system, params, stop):
        text = ""
        for character in lines:
            if stop.is_set():
                break
            text += character
            seen["text"] = text
            yield StreamUpdate(text=text)
        seen["stopped"] = stop.is_set()
        yield StreamUpdate(text=text, done=True)
    return answer


def test_generation_ends_with_the_first_line(monkeypatch, settings, tiny_base):
    seen: dict = {}
    monkeypatch.setattr(ev, "answer", fake_model("\n Paris\nThe capital of France is a lovely city.", seen))
    result = evaluate(ModelCache(settings), ModelSpec(str(tiny_base)), [example("Paris", "exact")])
    assert seen == {"text": "\n Paris\n", "stopped": True}  # a leading blank line is not the first line
    assert result.rows[0]["output"] == "\n Paris\n" and result.rows[0]["correct"] is True
    seen.clear()
    monkeypatch.setattr(ev, "answer", fake_model("Paris is the capital", seen))  # one line: runs to its end
    result = evaluate(ModelCache(settings), ModelSpec(str(tiny_base)), [example("Paris", "contains")])
    assert seen == {"text": "Paris is the capital", "stopped": False} and result.rows[0]["correct"] is True


def test_evaluate_heldout_compares_base_and_tuned_with_intervals(settings, tiny_base, tiny_adapter, tmp_path):
    examples = heldout_file(tmp_path / "h.jsonl", [("Paris", "exact")] * 3 + [("the", "contains")] * 2)
    seen: list[float] = []
    outcome = ev.evaluate_heldout(ModelCache(settings), ModelSpec(str(tiny_base)),
                                  ModelSpec(str(tiny_base), adapter=str(tiny_adapter)), examples,
                                  max_new_tokens=TOKENS, progress=lambda fraction, message: seen.append(fraction))
    assert outcome.base.model == "tiny-base" and outcome.tuned.model == "tiny-base + tiny-lora"
    assert outcome.base.seconds > 0 and outcome.tuned.seconds > 0
    pd.testing.assert_frame_equal(outcome.table, compare(outcome.base, outcome.tuned))
    assert list(outcome.table["task"]) == ["alpha", "beta", "all tasks"]
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1.0 and 0.5 in seen  # one bar over both models


def test_stop_drops_the_partial_result(settings, tiny_base, tmp_path):
    cache, spec = ModelCache(settings), ModelSpec(str(tiny_base))
    examples = heldout_file(tmp_path / "h.jsonl")
    stop = threading.Event()
    stop.set()
    with pytest.raises(EvaluationStopped, match="before example h0"):
        evaluate(cache, spec, examples, max_new_tokens=TOKENS, stop=stop)
    stop.clear()

    def press_stop_at_the_third(fraction: float, message: str) -> None:
        if "example 3 of" in message:
            stop.set()

    with pytest.raises(EvaluationStopped):
        evaluate(cache, spec, examples, max_new_tokens=TOKENS, stop=stop, progress=press_stop_at_the_third)


def test_nothing_to_evaluate(settings, tiny_base):
    with pytest.raises(ValueError, match="No held-out examples"):
        evaluate(ModelCache(settings), ModelSpec(str(tiny_base)), [])


# ---------------------------------------------------------------------------------------------- tables and chart


def result(model: str, marks: dict[str, list[bool]]) -> EvalResult:
    rows = [{"id": f"{task}{i}", "task": task, "answer": "a", "output": "a" if ok else "b", "correct": ok}
            for task, oks in marks.items() for i, ok in enumerate(oks)]
    return EvalResult(model=model, prompt_format="instruction", rows=rows)


BASE = result("base", {"sums": [True, False, False, False], "capitals": [False, False]})
TUNED = result("base + sft", {"sums": [True, True, True, False], "capitals": [True, False]})


def test_by_task_and_accuracy():
    table = TUNED.by_task()
    assert list(table.columns) == ["task", "correct", "total", "accuracy %", "low %", "high %"]
    records = table.to_dict("records")
    assert [{k: r[k] for k in ("task", "correct", "total", "accuracy %")} for r in records] == [
        {"task": "capitals", "correct": 1, "total": 2, "accuracy %": 50.0},
        {"task": "sums", "correct": 3, "total": 4, "accuracy %": 75.0}]
    assert (records[0]["low %"], records[0]["high %"]) == ev.accuracy_interval([True, False])
    assert TUNED.accuracy == pytest.approx(400 / 6)
    empty = EvalResult("m", "instruction")
    assert empty.accuracy == 0.0 and empty.by_task().empty and list(empty.by_task().columns) == list(table.columns)


def test_compare_has_a_row_per_task_and_all_tasks():
    table = compare(BASE, TUNED)
    assert list(table.columns) == ["task", "n", "base %", "base low", "base high", "tuned %", "tuned low",
                                   "tuned high", "change", "change low", "change high"]
    rows = table.set_index("task").to_dict("index")
    point = ("base %", "tuned %", "change", "n")
    assert {k: rows["sums"][k] for k in point} == {"base %": 25.0, "tuned %": 75.0, "change": 50.0, "n": 4}
    assert {k: rows["capitals"][k] for k in point} == {"base %": 0.0, "tuned %": 50.0, "change": 50.0, "n": 2}
    assert {k: rows["all tasks"][k] for k in point} == {"base %": 16.7, "tuned %": 66.7, "change": 50.0, "n": 6}
    assert table["task"].iloc[-1] == "all tasks"
    # capitals: base [F, F], tuned [T, F] — every resample of two examples gives a change of 0, 50 or 100
    assert (rows["capitals"]["base low"], rows["capitals"]["base high"]) == (0.0, 0.0)
    assert (rows["capitals"]["change low"], rows["capitals"]["change high"]) == (0.0, 100.0)
    for row in rows.values():
        for key in ("base", "tuned"):
            assert row[f"{key} low"] <= row[f"{key} %"] <= row[f"{key} high"]
        assert row["change low"] <= row["change"] <= row["change high"]


def test_compare_refuses_different_example_sets():
    with pytest.raises(ValueError, match="different examples"):
        compare(BASE, result("other", {"sums": [True]}))


def test_bar_chart_groups_base_and_tuned_per_task():
    figure = bar_chart(compare(BASE, TUNED), base_name="gemma", tuned_name="gemma + sft")
    assert [trace.name for trace in figure.data] == ["gemma", "gemma + sft"]
    assert list(figure.data[0].x) == ["capitals", "sums", "all tasks"]
    assert list(figure.data[1].y) == [50.0, 75.0, 66.7]
    assert figure.data[0].text[1] == "25%"
    layout = figure.layout
    assert layout.barmode == "group" and layout.yaxis.title.text == "accuracy (%)"
    assert layout.yaxis.range[0] == 0 and layout.yaxis.range[1] >= 100
    assert layout.xaxis.title.text and layout.title.text


def test_bar_chart_draws_each_interval_as_an_error_bar():
    table = compare(BASE, TUNED)
    figure = bar_chart(table)
    tuned = figure.data[1]
    assert tuned.error_y.type == "data" and tuned.error_y.symmetric is False
    high = list(tuned.error_y.array)
    low = list(tuned.error_y.arrayminus)
    for i, row in enumerate(table.to_dict("records")):
        assert row["tuned %"] + high[i] == pytest.approx(row["tuned high"])
        assert row["tuned %"] - low[i] == pytest.approx(row["tuned low"])
    assert "95%" in figure.layout.title.text


# ---------------------------------------------------------------------------------------------- bootstrap intervals


def test_intervals_by_hand():
    assert ev.accuracy_interval([True] * 7) == (100.0, 100.0)  # every resample of all-right marks is all right
    assert ev.accuracy_interval([False] * 7) == (0.0, 0.0)
    low, high = ev.accuracy_interval([True, False])  # resamples of two: 0 %, 50 % or 100 %, each seen
    assert (low, high) == (0.0, 100.0)
    assert all(math.isnan(v) for v in ev.accuracy_interval([True]))  # one example: no spread to speak of
    marks = [True] * 50 + [False] * 50
    low, high = ev.accuracy_interval(marks)  # ~ 50 ± 1.96·5 (normal approximation)
    assert 38 <= low <= 42 and 58 <= high <= 62


def test_the_gain_interval_is_paired():
    same = [True, False] * 20
    assert ev.gain_interval(same, same) == (0.0, 0.0)  # the same examples both ways: no gain in any resample
    assert ev.gain_interval([False] * 10, [True] * 10) == (100.0, 100.0)
    base = [True] * 20 + [False] * 20
    tuned = [True] * 20 + [True] * 10 + [False] * 10  # right wherever base was right, and on 10 more
    low, high = ev.gain_interval(base, tuned)
    assert low >= 0 and 25 >= low and high <= 40  # paired: never negative, since tuned never loses an example
    with pytest.raises(ValueError, match="one base and one tuned mark"):
        ev.gain_interval([True], [True, False])


def test_intervals_are_deterministic():
    marks = [i % 3 == 0 for i in range(30)]
    other = [i % 2 == 0 for i in range(30)]
    assert ev.accuracy_interval(marks) == ev.accuracy_interval(marks)
    assert ev.gain_interval(marks, other) == ev.gain_interval(marks, other)
    pd.testing.assert_frame_equal(compare(BASE, TUNED), compare(BASE, TUNED))


def test_markdown_table_shows_every_interval():
    text = ev.markdown_table(compare(BASE, TUNED))
    lines = text.splitlines()
    assert lines[0].startswith("| task family | n | base % [95% CI]")
    assert "| capitals | 2 | 0.0 [0.0, 0.0] | 50.0 [" in text and "| +50.0 [+0.0, +100.0] |" in text
    assert lines[-1].startswith("| **all tasks** | 6 |")


# ---------------------------------------------------------------------------------------------- eval.json


def test_save_and_load_round_trip(tmp_path):
    folder = tmp_path / "runs" / "sft-1"
    assert load_saved(folder) is None
    unicode = EvalResult("tiny", "chat", [{"id": "h1", "task": "städte", "answer": "Zürich", "output": "Zürich\n東京",
                                           "correct": True}])
    path = save([BASE, TUNED, unicode], folder)
    assert path == folder / "eval.json"
    assert [p.name for p in folder.iterdir()] == ["eval.json"]  # no temporary file left behind
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["created_at"].endswith("+00:00")
    assert load_saved(folder) == [BASE, TUNED, unicode]
    pd.testing.assert_frame_equal(compare(*load_saved(folder)[:2]), compare(BASE, TUNED))
    save([TUNED], folder)  # replaces the earlier file
    assert load_saved(folder) == [TUNED]


def test_an_evaluation_saved_before_intervals_still_loads_and_gets_them(tmp_path):
    old = {"created_at": "2026-01-01T00:00:00+00:00", "results": [  # as written before 'seconds' and intervals
        {"model": m.model, "prompt_format": m.prompt_format, "rows": m.rows} for m in (BASE, TUNED)]}
    (tmp_path / "eval.json").write_text(json.dumps(old))
    base, tuned = load_saved(tmp_path)
    assert base.seconds == 0.0 and base.rows == BASE.rows
    table = compare(base, tuned)
    assert {"base low", "tuned high", "change low"} <= set(table.columns)
    pd.testing.assert_frame_equal(table, compare(BASE, TUNED))


@pytest.mark.parametrize("content", ["{not json", '{"results": 3}', '{"created_at": "x"}', '{"results": [{"x": 1}]}'])
def test_a_damaged_eval_file_is_reported(tmp_path, content):
    (tmp_path / "eval.json").write_text(content)
    with pytest.raises(ValueError, match="eval.json is damaged"):
        load_saved(tmp_path)
