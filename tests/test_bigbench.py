"""BIG-Bench JSON tasks: reading task.json and the source archive, the generative and multiple-choice scorers, and
base vs tuned with intervals on tiny models."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from playground.data import bigbench as bb
from playground.models.catalog import ModelSpec
from playground.models.loading import ModelCache
from playground.models.prompting import render

GENERATIVE = {"name": "tiny_counting", "metrics": ["exact_str_match"], "task_prefix": "Count.\n",
              "examples": [{"input": "How many: a a a?", "target": ["3", "three"]},
                           {"input": "How many: b b?", "target": "2"},
                           {"input": "No target here"}]}
CHOICE = {"name": "tiny_choice", "metrics": ["multiple_choice_grade"],
          "examples": [{"input": "Which is a fruit?", "target_scores": {"apple": 1, "brick": 0, "cloud": 0}},
                       {"input": "Which is a colour?", "target_scores": {"spoon": 0, "red": 1}}]}


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def archive(path: Path, tasks: dict[str, dict]) -> Path:
    """A tar.gz laid out as the bigbench 1.0.0 source distribution."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in tasks.items():
            payload = json.dumps(data).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        readme = tarfile.TarInfo("bigbench-1.0.0/README.md")
        tar.addfile(readme, io.BytesIO(b""))
    return path


# ---------------------------------------------------------------------------------------------- reading


def test_a_generative_task_keeps_its_targets_and_prefix(tmp_path):
    task = bb.load_task(write(tmp_path / "tiny_counting" / "task.json", GENERATIVE))
    assert task.kind == "generative" and task.name == "tiny_counting"
    assert [e.targets for e in task.examples] == [("3", "three"), ("2",)]  # an example with no target is skipped
    assert task.prompt(task.examples[0]) == "Count.\nHow many: a a a?"


def test_a_multiple_choice_task_lists_its_choices_as_big_bench_does(tmp_path):
    task = bb.load_task(write(tmp_path / "c" / "task.json", CHOICE))
    assert task.kind == "multiple_choice"
    assert task.examples[1].scores == {"spoon": 0.0, "red": 1.0}
    assert task.prompt(task.examples[1]) == "Which is a colour?\n  choice: spoon\n  choice: red"
    quiet = bb.parse_task({**CHOICE, "append_choices_to_input": False}, "c")
    assert quiet.prompt(quiet.examples[1]) == "Which is a colour?"


def test_tasks_are_read_from_the_source_archive_without_unpacking(tmp_path):
    path = archive(tmp_path / "bigbench-1.0.0.tar.gz", {"tiny_counting": GENERATIVE, "suite/tiny_choice": CHOICE})
    assert bb.archive_tasks(path) == ["suite/tiny_choice", "tiny_counting"]
    assert bb.load_archive_task(path, "suite/tiny_choice").kind == "multiple_choice"
    assert bb.load_task_from(path, "tiny_counting").examples[1].targets == ("2",)
    with pytest.raises(bb.BigBenchError, match="has no task 'nope'"):
        bb.load_archive_task(path, "nope")
    with pytest.raises(bb.BigBenchError, match="Name the task"):
        bb.load_task_from(path, "")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ("[" * 100_000, "not readable JSON"),  # nested too deeply for the json module
    ('{"examples": 3}', "not a BIG-Bench JSON task"),
    ('{"examples": [{"input": "x"}]}', "no example has a 'target'"),
])
def test_bad_task_files_say_why(tmp_path, content, message):
    (tmp_path / "task.json").write_text(content)
    with pytest.raises(bb.BigBenchError, match=message):
        bb.load_task(tmp_path / "task.json")
    with pytest.raises(bb.BigBenchError, match="does not exist"):
        bb.load_task(tmp_path / "missing.json")
    with pytest.raises(bb.BigBenchError, match="not a tar archive"):
        bb.archive_tasks(tmp_path / "task.json")


# ---------------------------------------------------------------------------------------------- scoring


def test_generative_scoring_is_exact_match_with_any_target(monkeypatch, settings, tmp_path):
    task = bb.parse_task(GENERATIVE, "t")
    answers = iter(["three\nand more text", "2 apples"])  # a target on the first line; 'close' is not exact
    monkeypatch.setattr(bb, "greedy_answer", lambda *args, **kwargs: next(answers))
    result = bb.evaluate_task(ModelCache(settings), ModelSpec("m"), task)
    assert [row["correct"] for row in result.rows] == [True, False]
    assert result.rows[0]["answer"] == "3 | three" and result.rows[1]["output"] == "2 apples"


def test_multiple_choice_picks_the_most_likely_choice(monkeypatch, settings):
    task = bb.parse_task(CHOICE, "t")
    likelihoods = iter([[-1.0, -5.0, -3.0], [-0.5, -2.0]])  # apple (right), then spoon (wrong)
    monkeypatch.setattr(bb, "choice_loglikelihoods", lambda *args, **kwargs: next(likelihoods))
    result = bb.evaluate_task(ModelCache(settings), ModelSpec("m"), task)
    assert [(row["output"], row["correct"]) for row in result.rows] == [("apple", True), ("spoon", False)]
    assert result.rows[1]["answer"] == "red"


def test_choice_loglikelihoods_match_a_plain_forward_pass(settings, tiny_base):
    prompt, choices = "Which is a fruit?", ["apple", "brick wall"]
    got = bb.choice_loglikelihoods(ModelCache(settings), ModelSpec(str(tiny_base)), prompt, choices)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    rendered = render([{"role": "user", "content": prompt}], "instruction", "base", tokenizer)
    context = tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]
    for choice, value in zip(choices, got):
        total = 0.0
        ids = list(context)
        for token in tokenizer(choice, add_special_tokens=False)["input_ids"]:  # one token at a time
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            total += float(torch.log_softmax(logits.float(), -1)[token])
            ids.append(token)
        assert value == pytest.approx(total, abs=1e-3)
        assert value < 0


def test_base_vs_tuned_on_a_task_with_intervals(settings, tiny_base, tiny_adapter, tmp_path):
    task = bb.load_task(write(tmp_path / "c" / "task.json", CHOICE))
    base, tuned, table = bb.compare_on_task(ModelCache(settings), ModelSpec(str(tiny_base)),
                                            ModelSpec(str(tiny_base), adapter=str(tiny_adapter)), task)
    assert len(base.rows) == len(tuned.rows) == 2
    assert list(table["task"]) == ["tiny_choice", "all tasks"]
    assert {"base low", "change high"} <= set(table.columns)
    assert all(not math.isnan(v) for v in table["base low"])


def test_a_long_task_is_sampled_the_same_way_each_time():
    task = bb.parse_task({"metrics": ["exact_str_match"],
                          "examples": [{"input": str(i), "target": str(i)} for i in range(100)]}, "t")
    assert bb.sample(task, 10) == bb.sample(task, 10) and len(bb.sample(task, 10)) == 10
    assert bb.sample(task, 0) == list(task.examples)


def test_the_bench_command_scores_archive_tasks_for_a_run(monkeypatch, tmp_path, tiny_adapter, capsys):
    import shutil

    from bench import bigbench_tasks

    data = tmp_path / "data"
    run = data / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: r1\n")
    shutil.copytree(tiny_adapter, run / "adapter")
    monkeypatch.setenv("RLHF_PLAYGROUND_DATA_DIR", str(data))
    path = archive(tmp_path / "bigbench-1.0.0.tar.gz", {"tiny_counting": GENERATIVE, "suite/tiny_choice": CHOICE})
    assert bigbench_tasks.main([str(path), "r1", "--tasks", "suite/tiny_choice,tiny_counting", "--examples", "0"]) == 0
    text = capsys.readouterr().out
    assert "tiny_choice multiple choice, tiny_counting generative" in text
    assert "| task family | n | base % [95% CI]" in text and "| tiny_choice | 2 |" in text
    assert "| tiny_counting | 2 |" in text
