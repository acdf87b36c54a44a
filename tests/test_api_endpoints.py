"""Every endpoint the app documents ("Use via API", ``/gradio_api/info``) is called with bad arguments and must
answer clearly: an error that says what is wrong, or (for calls that are harmless) a reply that says so. A new
endpoint can't slip in untested: the documented endpoints must be exactly the ones in ``BAD_CALLS``.

To cover a new endpoint, add ``"/its_name": [Bad(arguments, error=...)]`` (or ``answer=...`` when a bad argument
is answered rather than refused). Arguments are a tuple in the documented order; ``Form(...)`` means "the documented
defaults with these parameters changed" (by parameter name, or by config field for a Train form, which Gradio
documents as ``param_0``, ``param_1``…); ``BAD_FILE`` is replaced by an uploaded file that fails every check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from gradio_client import handle_file

from playground.core.settings import Settings
from playground.ui.train_tab import GROUPS
from tests.app_server import serve

BAD_FILE = object()
"""Stands for an uploaded file whose two rows are both wrong (a missing field, then not JSON)."""


class Form:
    """The endpoint's documented default arguments, with some changed: by parameter name, or — for the Train forms,
    whose parameters Gradio names ``param_N`` — by config field name (``Form("sft", learning_rate="fast")``)."""

    def __init__(self, stage: str | None = None, **changes: Any) -> None:
        self.stage, self.changes = stage, changes

    def resolve(self, parameters: list[dict[str, Any]]) -> list[Any]:
        names = [p["parameter_name"] for p in parameters]
        if self.stage is not None:  # the form's inputs in order: the stage's config fields, group by group
            fields = [name for group in GROUPS[self.stage].values() for name in group]
            assert len(fields) == len(names), f"the {self.stage} form documents {len(names)} inputs, not {len(fields)}"
            names = fields
        values = [p.get("parameter_default") if p.get("parameter_has_default") else "" for p in parameters]
        for name, value in self.changes.items():
            values[names.index(name)] = value
        return values

    def __repr__(self) -> str:
        return f"Form({self.stage!r}, {self.changes})"


@dataclass(frozen=True)
class Bad:
    """One bad call: its arguments, and either the ``error`` it must raise (a case-insensitive regex) or the
    ``answer`` it must give (a regex searched in the reply, or a check of the reply)."""

    args: tuple | Form
    error: str = ""
    answer: str | Callable[[Any], bool] = ""
    xfail: str = field(default="", compare=False)  # a known app bug, described (strict: passes once it is fixed)

    def __post_init__(self) -> None:
        assert bool(self.error) != bool(self.answer), "a bad call says what it must raise or what it must answer"


def blank_run_view(reply: tuple) -> bool:
    """/run_details with no run picked: empty progress and log, every chart hidden."""
    charts = [r for r in reply if isinstance(r, dict) and "visible" in r]
    return reply[0] == "" and len(charts) >= 2 and all(c["visible"] is False for c in charts)


NO_BATCH = "There is no batch with id 'no-such-batch'"  # what the Rate endpoints say about a made-up batch id
NO_JUDGE_RUN = "There is no judge run with id 'no-such-run'"
TWO_PROBLEMS = "2 problems.*line 1.*line 2: not valid JSON"

BAD_CALLS: dict[str, list[Bad]] = {
    # Compare
    "/compare": [Bad(Form(text="Hi", n=0), error="less than minimum value 1"),
                 Bad(Form(text="  "), error="Type a prompt first"),
                 Bad(Form(text="Hi", a="no/such-model-here", b="no/such-model-here", n=4),
                     answer="Couldn't load no/such-model-here")],  # shown in each pane, where the user looks
    "/vote": [Bad(("sideways", 0, "", ""), error="not in the list of choices"),
              Bad(("left", 0, "", ""), error="vote was not saved: Nothing to vote on yet")],
    "/stop": [Bad((), answer=lambda reply: reply == ())],  # takes nothing; stopping nothing is fine
    "/clear": [Bad(("no/such-model", "other"), answer=r"### Left: no/such-model")],  # only retitles the panes
    "/unload": [Bad((), answer="No models loaded")],
    "/endpoint_test": [Bad(("ftp://host/v1", "m", "chat", ""), error=r"not an http\(s\) URL"),
                       Bad(("http://127.0.0.1:9/v1", "m", "chat", ""), answer="Not usable.*Can't reach"),
                       Bad(("http://127.0.0.1:9/v1", "m", "chat", "HF_TOKEN"), error=r"\$HF_TOKEN can't be an "
                                                                                    r"endpoint's key")],
    "/endpoint_add": [Bad(("http://127.0.0.1:9/v1", "m", "chat", "sk-abc123", "", ""), error="NAME of the variable"),
                      Bad(("http://127.0.0.1:9/v1", "m", "rest", "", "", ""), error="not in the list of choices")],
    "/endpoint_remove": [Bad(("http://127.0.0.1:9/v1", "m", "chat", "", "", ""), answer="was not in the list")],
    # Rate
    "/rate_open": [Bad(("no-such-batch",), error=NO_BATCH)],
    "/rate_start": [Bad(("Bundled prompts", None, ["only-one-model"], 0, 16, 0.7, 42),
                        error="at least two different models"),
                    Bad(("Upload a file", None, ["a/b", "c/d"], 0, 16, 0.7, 42), error="Upload a prompt file first"),
                    Bad(("Bundled prompts", None, ["a/b", "c/d"], 0, 0, 0.7, 42),
                        error="less than minimum value 1"),
                    Bad(("Bundled prompts", None, ["a/b", "c/d"], 0, 16, 0.7, 42, 80),
                        error="greater than maximum value 50")],
    "/rate_left": [Bad(("no-such-batch", 0, "", ""), error=NO_BATCH),
                   Bad(("no-such-batch", 9, "", ""), error="greater than maximum value 5"),
                   Bad(("no-such-batch", 0, "", "", 9, 0), error="9 .* is not in the list of choices"),
                   Bad(("no-such-batch", 0, "", "", 0, 2.5), error="2.5 .* is not in the list of choices")],
    "/rate_right": [Bad(("no-such-batch", 0, "", ""), error=NO_BATCH)],
    "/rate_tie": [Bad(("no-such-batch", 0, "", ""), error=NO_BATCH)],
    "/rate_both_bad": [Bad(("no-such-batch", 0, "", ""), error=NO_BATCH)],
    "/rate_skip": [Bad(("no-such-batch",), error=NO_BATCH)],
    "/rate_undo": [Bad(("no-such-batch",), error=NO_BATCH)],
    # Judge
    "/judge_start": [Bad(Form(model_value="", target_value="all"), error="No model chosen"),
                     Bad(Form(model_value="/no/such/judge", target_value="all"), error="not a model folder"),
                     Bad(Form(model_value="a/b", target_value="all", rubric_text="{question} {first}"),
                         error="missing: {second}"),
                     Bad(Form(model_value="a/b", target_value="no-such-batch"),
                         error="There is no batch with id 'no-such-batch'"),
                     Bad(Form(model_value="a/b", target_value="all", tokens=0), error="less than minimum value 1")],
    "/judge_stop": [Bad(("no-such-run",), error=NO_JUDGE_RUN), Bad(("",), error="Pick a judge run first")],
    "/judge_resume": [Bad(("no-such-run",), error=NO_JUDGE_RUN), Bad(("",), error="Pick a judge run first")],
    "/judge_progress": [Bad(("no-such-run",), error=NO_JUDGE_RUN), Bad(("",), answer="No judge run picked")],
    "/judge_agreement": [Bad(("ann",), error="'ann' is not an AI judge"), Bad(("",), answer="Pick an AI judge")],
    # Leaderboard and History
    "/leaderboard": [Bad(("count as a tie", 0, 0), error="less than minimum value 10"),
                     Bad(("sometimes", 100, 0), error="not in the list of choices")],
    "/reliability": [Bad(("robots",), error="'robots' .* is not in the list of choices"),
                     Bad(("humans",), answer="No votes from people yet")],  # nothing to measure: it says so
    "/history": [Bad(("", "", "", "not-a-date", ""), error="'not-a-date' is not a date"),
                 Bad(("", "", "", "", "2024-13-45"), error="is not a date")],
    "/history_delete": [Bad(("", "", "", "", ""), error="Select a comparison in the table first")],
    "/history_undo": [Bad(("", "", "", "", ""), error="Nothing to undo")],
    "/export": [Bad((), answer="Nothing to export yet")],
    "/import": [Bad((BAD_FILE, ""), answer=f"Nothing was imported.*{TWO_PROBLEMS}")],
    # Train
    "/train_start": [Bad(Form("sft", name="../bad"), error=r"name: use 1–64 letters"),
                     Bad(Form("sft", learning_rate="fast"), error=r"learning rate must be a number"),
                     Bad(Form("sft", batch_size=0), error=r"batch size must be between 1"),
                     Bad(Form("sft", datasets=["no-such-data"]), error=r"datasets: No dataset 'no-such-data'"),
                     Bad(Form("sft", base_model="no-org/no-such-model"),
                         error=r"base model: no-org/no-such-model is not in the local Hugging Face cache"),
                     Bad(Form("sft", base_model="/no/such/folder"),
                         error=r"base model: /no/such/folder is not a model folder")],
    "/train_reward_start": [Bad(Form("reward", name="../bad"), error=r"name: use 1–64 letters"),
                            Bad(Form("reward", datasets=["no-such-pairs"]), error=r"datasets:")],
    "/train_dpo_start": [Bad(Form("dpo", name="../bad"), error=r"name: use 1–64 letters"),
                         Bad(Form("dpo", sft_run="no-such-sft"), error=r"sft run: no adapter for 'no-such-sft'")],
    "/train_ppo_start": [Bad(Form("ppo", name="../bad"), error=r"name: use 1–64 letters"),
                         Bad(Form("ppo", reward_run="no-such-rm"), error=r"reward run: No reward model"),
                         Bad(Form("ppo", mini_batch_size=3), error=r"mini batch size must divide")],
    "/train_grpo_start": [Bad(Form("grpo", name="../bad"), error=r"name: use 1–64 letters"),
                          Bad(Form("grpo", reward_source="reward_run", reward_run="no-such-rm"),
                              error=r"reward run: No reward model"),
                          Bad(Form("grpo", answers_per_prompt=1), error=r"answers per prompt")],
    "/train_rloo_start": [Bad(Form("rloo", name="../bad"), error=r"name: use 1–64 letters"),
                          Bad(Form("rloo", reward_source="reward_run", reward_run="no-such-rm"),
                              error=r"reward run: No reward model")],
    "/train_kto_start": [Bad(Form("kto", name="../bad"), error=r"name: use 1–64 letters"),
                         Bad(Form("kto", datasets=["no-such-pairs"]), error=r"datasets:"),
                         Bad(Form("kto", batch_size=1), error=r"batch size")],
    # Runs
    "/run_details": [Bad(("no-such-run", ""), error="There is no run named 'no-such-run'"),
                     Bad(("", ""), answer=blank_run_view)],  # nothing picked yet: a blank view
    "/run_stop": [Bad(("no-such-run", ""), error="There is no run named 'no-such-run'"),
                  Bad(("", ""), error="Pick a run first")],
    "/run_resume": [Bad(("no-such-run", ""), error="There is no run named 'no-such-run'")],
    "/run_samples": [Bad(("no-such-run", "latest"), error="There is no run named 'no-such-run'")],
    "/run_delete": [Bad(("", ""), error="Pick a run first"),
                    Bad(("no-such-run", ""), error="There is no run named 'no-such-run'")],
    "/run_evaluate": [Bad(("", 0), error="Pick a finished or stopped run first"),
                      Bad(("no-such-run", 0), error="There is no run named 'no-such-run'")],
    "/run_export": [Bad(("", "Hugging Face folder"), error="Pick a finished or stopped run first"),
                    Bad(("no-such-run", "Hugging Face folder"), error="There is no run named 'no-such-run'")],
    "/run_bigbench": [Bad(("", "task.json", "", 10), error="Pick a finished or stopped run first"),
                      Bad(("no-such-run", "task.json", "", 10), error="There is no run named 'no-such-run'")],
    # Reward
    "/reward_score": [Bad(("", "Hi", "", "a", "b"), error="Pick a reward model first"),
                      Bad(("no-such-run", "Hi", "", "a", "b"), error="No reward model 'no-such-run'")],
    "/reward_agreement": [Bad(("", 0), error="Pick a reward model first")],
    # Lecture
    "/lecture_sft": [Bad((-1,), error="less than minimum value 0")],
    "/lecture_reward": [Bad((-1,), error="less than minimum value 0")],
    "/lecture_ppo": [Bad((0,), error="PPO needs step 2's SFT run sft-gemma-cpu-demo and step 4's reward run")],
    # Data
    "/dataset_preview": [Bad(("no-such-dataset",), error="no-such-dataset is not in the list of choices")],
    "/datasets": [Bad(("no-such-dataset",), error="no-such-dataset is not in the list of choices")],
    "/dataset_upload": [Bad((BAD_FILE, ""), answer=f"Nothing was saved.*{TWO_PROBLEMS}")],
    "/preference_preview": [Bad(("no-such-set",), error="no-such-set is not in the list of choices")],
    "/preference_upload": [Bad((BAD_FILE, ""), answer=f"Nothing was saved.*{TWO_PROBLEMS}")],
}

CASES = [pytest.param(endpoint, bad, id=f"{endpoint}-{n}",
                      marks=[pytest.mark.xfail(reason=bad.xfail, strict=True)] if bad.xfail else [])
         for endpoint, bads in sorted(BAD_CALLS.items()) for n, bad in enumerate(bads)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    bad_file = folder / "bad.jsonl"
    bad_file.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello."}) + "\nnot json\n")
    settings = Settings(data_dir=folder / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    with serve(settings) as client:
        yield client, settings, bad_file


@pytest.fixture(scope="module")
def documented(app) -> dict[str, Any]:
    return app[0].view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_every_documented_endpoint_is_checked(documented):
    assert len(documented) > 20  # the app's /gradio_api/info really was read
    missing, stale = set(documented) - set(BAD_CALLS), set(BAD_CALLS) - set(documented)
    assert not missing, f"add a bad call to BAD_CALLS for each new endpoint: {sorted(missing)}"
    assert not stale, f"these endpoints are no longer documented: {sorted(stale)}"


@pytest.mark.parametrize("endpoint, bad", CASES)
def test_bad_arguments_get_a_clear_answer(app, documented, endpoint, bad):
    client, settings, bad_file = app
    if endpoint not in documented:
        pytest.fail(f"{endpoint} is not documented by the app")
    args = bad.args.resolve(documented[endpoint]["parameters"]) if isinstance(bad.args, Form) else list(bad.args)
    args = [handle_file(str(bad_file)) if a is BAD_FILE else a for a in args]
    runs_before = sorted(p.name for p in settings.runs_dir.iterdir())
    if bad.error:
        with pytest.raises(Exception, match=f"(?is){bad.error}") as raised:
            client.predict(*args, api_name=endpoint)
        assert "upstream Gradio app has raised an exception" not in str(raised.value)
    else:
        reply = client.predict(*args, api_name=endpoint)
        if callable(bad.answer):
            assert bad.answer(reply), reply
        else:
            assert re.search(bad.answer, str(reply), re.I | re.S), reply
    assert sorted(p.name for p in settings.runs_dir.iterdir()) == runs_before  # a bad call starts no run


def test_only_the_endpoints_meant_to_have_one_carry_a_description(documented):
    """A callback's docstring is for maintainers: wired with rater.bind it doesn't become an API description, and
    the two endpoints that describe themselves say it in their own words."""
    described = {name: info.get("description") for name, info in documented.items() if info.get("description")}
    assert described == {
        "/clear": "A new conversation; in blind mode it stays blind (the next prompt shuffles the sides anew).",
        "/run_details": "The chosen run's view; a name that is no run is refused (blank view for no name at all).",
    }
