"""Instruction datasets: every shape loads, the bundled files hold up, bad uploads are refused whole with row, field
and reason, uploads stay inside the datasets folder, and the Data tab's upload works through gradio_client."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from gradio_client import Client, handle_file

from playground.core.row_files import ImportLimits
from playground.core.settings import Settings
from playground.data.instructions import (
    BUNDLED,
    DatasetError,
    Example,
    list_datasets,
    load_examples,
    preview,
    resolve,
    safe_name,
    save_upload,
    task_counts,
)
from tests.app_server import free_port


def jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def saved_files(settings: Settings) -> list[Path]:
    return sorted(settings.datasets_dir.iterdir())


# ---------------------------------------------------------------------------------------------- shapes


def test_prompt_completion_text(tmp_path):
    path = jsonl(tmp_path / "pc.jsonl", {"prompt": "Add 2 and 3.", "completion": "5", "task": "math", "id": 7},
                 {"prompt": "Say hi.", "completion": "Hi!"})
    assert load_examples(path) == [Example([user("Add 2 and 3.")], "5", "math", "7"),
                                   Example([user("Say hi.")], "Hi!")]


def test_prompt_completion_conversational_folds_the_system_message(tmp_path):
    prompt = [{"role": "system", "content": "Be brief."}, user("Hi"), assistant("Hello."), user("Capital of Peru?")]
    path = jsonl(tmp_path / "trl.jsonl", {"prompt": prompt, "completion": [assistant("Lima")]})
    [example] = load_examples(path)
    assert example.messages == [user("Be brief.\n\nHi"), assistant("Hello."), user("Capital of Peru?")]
    assert example.completion == "Lima"


def test_instruction_input_output_csv(tmp_path):
    path = tmp_path / "alpaca.csv"
    pd.DataFrame({"instruction": ["Translate to French.", "Name a colour."], "input": ["cat", ""],
                  "output": ["chat", "Blue"], "task": ["translation", "open"]}).to_csv(path, index=False)
    first, second = load_examples(path)
    assert first.messages == [user("Translate to French.\n\ncat")] and first.completion == "chat"
    assert second.messages == [user("Name a colour.")] and second.task == "open"


def test_alpaca_text_column_does_not_hide_the_instruction_shape(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", {"instruction": "Hi", "input": None, "output": "Hello",
                                        "text": "### Instruction: Hi ### Response: Hello"})
    assert load_examples(path) == [Example([user("Hi")], "Hello")]


def test_messages_parquet_multi_turn(tmp_path):
    path = tmp_path / "chat.parquet"
    rows = [[{"role": "system", "content": "S"}, user("a"), assistant("b"), user("c"), assistant("d")],
            [user("x"), assistant("y")]]
    pd.DataFrame({"messages": rows}).to_parquet(path)
    first, second = load_examples(path)
    assert first.messages == [user("S\n\na"), assistant("b"), user("c")] and first.completion == "d"
    assert second == Example([user("x")], "y")


def test_messages_as_json_in_a_csv_cell(tmp_path):
    path = tmp_path / "chat.csv"
    pd.DataFrame({"messages": [json.dumps([user("q"), assistant("a")])]}).to_csv(path, index=False)
    assert load_examples(path) == [Example([user("q")], "a")]


def test_plain_text_json_array(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"text": "Once upon a time."}, {"text": "The end."}]))
    assert load_examples(path) == [Example([], "Once upon a time."), Example([], "The end.")]


def test_answer_is_accepted_for_output(tmp_path):
    path = jsonl(tmp_path / "h.jsonl", {"instruction": "Capital of France?", "input": "", "answer": "Paris",
                                        "check": "contains", "task": "capitals"})
    assert load_examples(path) == [Example([user("Capital of France?")], "Paris", "capitals")]


# ---------------------------------------------------------------------------------------------- bundled files


def test_bundled_instructions_are_many_tasks():
    examples = load_examples(BUNDLED["instructions"])
    counts = task_counts(examples)
    assert len(examples) >= 300 and len(counts) >= 12
    assert all(e.task and e.messages and e.completion.strip() for e in examples)
    assert len({e.id for e in examples}) == len(examples)


def test_bundled_heldout_is_evaluation_data_on_unseen_tasks():
    from playground.data.evaluation import load_heldout

    heldout = load_heldout(BUNDLED["heldout"])
    assert heldout and len(load_examples(BUNDLED["heldout"])) == len(heldout)
    if BUNDLED["instructions"].exists():  # unseen means unseen: no task family is in both
        trained = {e.task for e in load_examples(BUNDLED["instructions"])}
        assert not trained & {e.task for e in heldout}
    listed = {info.name: info for info in list_datasets(None)}
    assert listed["heldout"].purpose == "evaluation" and listed["heldout"].source == "bundled"
    with pytest.raises(DatasetError, match="held-out evaluation data"):
        resolve("heldout", None, for_training=True)
    with pytest.raises(DatasetError, match="held-out evaluation data"):
        resolve(str(BUNDLED["heldout"]), None, for_training=True)


# ---------------------------------------------------------------------------------------------- refused uploads

GOOD = {"instruction": "Say hi.", "input": "", "output": "Hi!"}


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


BAD_FILES = {
    "bad JSON line": ("x.jsonl", json.dumps(GOOD) + "\n{\"instruction\": \"a\",\n", "line 2: not valid JSON"),
    "missing column": ("x.jsonl", json.dumps({"prompt": "q"}) + "\n", "line 1, field 'completion': missing"),
    "no known columns": ("x.csv", "question,reply\nq,a\nq2,a2\n", "no column says what the rows hold (the columns "
                                                                   "are: question, reply)"),
    "empty string": ("x.jsonl", json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"output": "  "}) + "\n",
                     "line 2, field 'output': is empty"),
    "empty CSV cell": ("x.csv", "instruction,input,output\nSay hi.,,\n", "row 1, field 'output': is empty"),
    "wrong type": ("x.jsonl", json.dumps({"prompt": "q", "completion": 5}) + "\n",
                   "line 1, field 'completion': expected text, got a number"),
    "wrong input type": ("x.jsonl", json.dumps(GOOD | {"input": ["a"]}) + "\n",
                         "line 1, field 'input': expected text, got a list"),
    "mixed shapes": ("x.jsonl", json.dumps(GOOD) + "\n" + json.dumps({"text": "t"}) + "\n",
                     "line 2: is a text row, but the file's first rows are instruction/input/output"),
    "huge field": ("x.jsonl", json.dumps(GOOD | {"output": "a" * 100_001}) + "\n",
                   "line 1, field 'output': 100,001 characters, over the 100,000 limit"),
    "UTF-16": ("x.jsonl", (json.dumps(GOOD) + "\n").encode("utf-16"), "UTF-16"),
    "not UTF-8": ("x.csv", b"text\nna\xefve\xff\n", "not UTF-8"),
    "unknown extension": ("x.txt", "Say hi.\n", "can't import '.txt' files"),
    "empty file": ("x.jsonl", "", "the file is empty"),
    "only blank lines": ("x.jsonl", "\n\n  \n", "no rows"),
    "not an object": ("x.jsonl", "[1, 2]\n", "line 1: expected an object with named fields, got a list"),
    "messages end with the user": ("x.jsonl", json.dumps({"messages": [user("q"), assistant("a"), user("b")]}),
                                   "line 1, field 'messages': must end with the assistant's answer"),
    "messages out of turn": ("x.jsonl", json.dumps({"messages": [user("q"), user("r"), assistant("a")]}),
                             "field 'messages': Turn 2 should be from the assistant"),
    "system message mid-way": ("x.jsonl", json.dumps({"messages": [user("q"), {"role": "system", "content": "s"},
                                                                   assistant("a")]}),
                               "field 'messages': a system message is only allowed at the start"),
    "bad role": ("x.jsonl", json.dumps({"messages": [{"role": "bot", "content": "a"}]}), "message 1 should be"),
    "empty message": ("x.jsonl", json.dumps({"messages": [user(""), assistant("a")]}),
                      "field 'messages[1].content': is empty"),
    "completion from the user": ("x.jsonl", json.dumps({"prompt": [user("q")], "completion": [user("a")]}),
                                 "field 'completion': expected one assistant message"),
    "ragged CSV": ("x.csv", "prompt,completion\nq,a\nq2,a2,extra\n", "row 2: has 3 fields but the header has 2"),
    # the json module recurses once per level: a small file of brackets would overflow it
    "nested thousands deep": ("x.jsonl", json.dumps(GOOD) + "\n" + "[" * 100_000 + "\n",
                              "line 2: not usable JSON: its lists or objects are nested too deeply"),
    "a JSON array nested thousands deep": ("x.json", "[" * 100_000, "nested too deeply"),
    "messages nested thousands deep in a CSV cell": ("x.csv", "messages\n" + "[" * 100_000 + "\n",
                                                     "field 'messages': not a usable JSON message list: nested too"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_upload_is_refused_with_row_field_reason_and_nothing_written(case, tmp_path, settings):
    name, content, expected = BAD_FILES[case]
    path = _write(tmp_path / name, content)
    with pytest.raises(DatasetError) as refused:
        save_upload(path, settings, "mine")
    assert expected in str(refused.value) and "can't be used" in str(refused.value)
    assert refused.value.count >= 1 and refused.value.errors
    assert saved_files(settings) == []


def test_report_lists_twenty_problems_and_counts_the_rest(tmp_path):
    path = jsonl(tmp_path / "many.jsonl", *([GOOD | {"output": ""}] * 30))
    with pytest.raises(DatasetError) as refused:
        load_examples(path)
    message = str(refused.value)
    assert "30 problems" in message and "… and 10 more." in message
    assert message.count("\n- ") == 20 and "line 20, field 'output'" in message


def test_field_limit_comes_from_import_limits(tmp_path):
    path = jsonl(tmp_path / "long.jsonl", GOOD | {"output": "x" * 50})
    with pytest.raises(DatasetError, match="over the 10 limit"):
        load_examples(path, ImportLimits(max_field_chars=10))


# ---------------------------------------------------------------------------------------------- saving and names


@pytest.mark.parametrize("raw, expected", [("../../etc/x", "etc-x"), ("My data (v2)", "My-data-v2"),
                                            ("...", "dataset"), ("notes.jsonl", "notes"), ("ünï/cödé", "n-c-d"),
                                            ("", "dataset"), (".hidden", "hidden")])
def test_safe_name(raw, expected):
    assert safe_name(raw, ".jsonl") == expected


def test_save_upload_stays_inside_and_never_overwrites(tmp_path, settings):
    source = jsonl(tmp_path / "upload.jsonl", GOOD, GOOD | {"task": "greet"})
    escaped = save_upload(source, settings, "../../etc/x")
    assert escaped.path.parent == settings.datasets_dir and escaped.name == "etc-x"
    assert (escaped.rows, escaped.shape, escaped.source, escaped.purpose) == (2, "instruction/input/output",
                                                                              "uploaded", "training")
    assert save_upload(source, settings, "etc-x").name == "etc-x-2"
    assert save_upload(source, settings, "instructions").name == "instructions-2"  # bundled names stay bundled
    assert save_upload(source, settings).name == "upload"
    csv = tmp_path / "upload.csv"
    pd.DataFrame([GOOD]).to_csv(csv, index=False)
    assert save_upload(csv, settings).name == "upload-2"  # names are unique across file types
    assert [p.name for p in saved_files(settings)] == ["etc-x-2.jsonl", "etc-x.jsonl", "instructions-2.jsonl",
                                                       "upload-2.csv", "upload.jsonl"]
    assert (settings.datasets_dir / "etc-x.jsonl").read_bytes() == source.read_bytes()


def test_uploaded_datasets_are_listed_and_resolved(tmp_path, settings):
    info = save_upload(jsonl(tmp_path / "mine.jsonl", {"text": "hello"}), settings)
    listed = {i.name: i for i in list_datasets(settings)}
    assert listed["mine"] == info
    assert resolve("mine", settings) == resolve("mine.jsonl", settings) == info.path
    assert load_examples(resolve("mine", settings, for_training=True)) == [Example([], "hello")]


def test_resolve_errors(tmp_path, settings):
    with pytest.raises(DatasetError, match="No dataset 'nothing-here': choose one of"):
        resolve("nothing-here", settings)
    with pytest.raises(DatasetError, match="Choose a dataset"):
        resolve("  ", settings)
    with pytest.raises(DatasetError, match="No dataset"):
        resolve(str(tmp_path), settings)  # a folder is not a dataset file
    with pytest.raises(DatasetError, match="No dataset"):
        resolve("../datasets/x", settings)
    path = jsonl(tmp_path / "elsewhere.jsonl", GOOD)
    assert resolve(str(path), None) == path.resolve()


def test_preview_and_task_counts(tmp_path):
    rows = [{"prompt": f"Question {i} " + "word " * 100, "completion": "Answer", "task": "qa" if i % 3 else "math"}
            for i in range(30)]
    path = jsonl(tmp_path / "p.jsonl", *rows)
    frame = preview(path, rows=5)
    assert list(frame.columns) == ["task", "prompt", "completion"] and len(frame) == 5
    assert frame["prompt"][0].startswith("Question 0 word") and frame["prompt"][0].endswith("…")
    assert len(frame["prompt"][0]) <= 160
    counts = task_counts(load_examples(path))
    assert counts.to_dict("records") == [{"task": "qa", "examples": 20}, {"task": "math", "examples": 10}]
    assert task_counts([Example([], "t")]).to_dict("records") == [{"task": "(none)", "examples": 1}]


# ---------------------------------------------------------------------------------------------- the Data tab


def test_data_tab_upload_and_preview_through_gradio_client(tmp_path, settings):
    from playground.ui import data_tab

    with gr.Blocks() as demo:
        with gr.Tab("Data") as tab:
            data_tab.build(settings, tab)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        bad = jsonl(tmp_path / "bad.jsonl", GOOD, GOOD | {"output": ""})
        note, _, _ = client.predict(handle_file(str(bad)), "", api_name="/dataset_upload")
        assert "Nothing was saved" in note and "line 2, field 'output': is empty" in note
        assert saved_files(settings) == []
        good = jsonl(tmp_path / "good.jsonl", GOOD | {"task": "greet"}, GOOD | {"task": "greet"})
        note, table, choice = client.predict(handle_file(str(good)), "../greetings",
                                             api_name="/dataset_upload")
        assert "Saved **greetings**: 2 examples" in note and "so it is called 'greetings'" in note
        assert choice["value"] == "greetings" and ["greetings", "greetings"] in choice["choices"]
        assert ["greetings", "instruction/input/output", 2, "uploaded", "training"] in table["data"]
        assert [p.name for p in saved_files(settings)] == ["greetings.jsonl"]
        summary, rows, _ = client.predict("greetings", api_name="/dataset_preview")
        assert "**greetings** · 2 examples · 1 task" in summary
        assert rows["data"][0] == ["greet", "Say hi.", "Hi!"]
    finally:
        demo.close()
