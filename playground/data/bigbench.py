"""BIG-Bench JSON tasks as held-out evaluations: read a ``task.json`` (or one from the ``bigbench`` 1.0.0 source
archive, without installing it) and score base vs tuned on it.

BIG-Bench (Srivastava et al., 2022) ships each JSON task as ``{"examples": [{"input", "target" | "target_scores"}],
"metrics": [...], prefixes…}``. Two kinds are scored here, as BIG-Bench scores them:

* **generative** (``exact_str_match`` among the metrics, examples with ``target``): the model's greedy answer
  (its first line, stripped) must equal one of the targets exactly;
* **multiple choice** (examples with ``target_scores``): the choice with the highest log-likelihood after the
  prompt is the model's answer; it is right when that choice has the highest target score.

Both models get the same prompt frame (the held-out evaluation's: ``instruction`` by default), and the result is
an :class:`playground.data.evaluation.EvalResult` per model, so :func:`playground.data.evaluation.compare` gives the same table
with bootstrap intervals. The archive (358 MB) is an optional download the README explains:
``pip download --no-deps --no-binary :all: bigbench==1.0.0``.
"""

from __future__ import annotations

import json
import random
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from playground.data.evaluation import EvalResult, HeldoutExample, Progress, compare, greedy_answer
from playground.models.catalog import ModelSpec
from playground.models.loading import LoadOptions, ModelCache, shared_backend
from playground.models.prompting import PromptFormat, render

TASKS_DIR = "bigbench/benchmark_tasks/"
"""Where the source archive keeps the tasks: ``bigbench-1.0.0/bigbench/benchmark_tasks/<task>[/<subtask>]/task.json``."""
Kind = Literal["generative", "multiple_choice"]


class BigBenchError(ValueError):
    """A task file or archive that can't be used; the message says which and why."""


@dataclass(frozen=True)
class BigBenchExample:
    input: str
    targets: tuple[str, ...] = ()
    """Generative: every accepted answer."""
    scores: dict[str, float] = field(default_factory=dict)
    """Multiple choice: each choice's target score (the highest is right)."""


@dataclass(frozen=True)
class BigBenchTask:
    name: str
    kind: Kind
    examples: tuple[BigBenchExample, ...]
    task_prefix: str = ""
    input_prefix: str = ""
    choice_prefix: str = "\n  choice: "
    append_choices: bool = True

    def prompt(self, example: BigBenchExample) -> str:
        """The user message: the task prefix, the input and (multiple choice, as BIG-Bench does) the choices."""
        text = f"{self.task_prefix}{self.input_prefix}{example.input}"
        if self.kind == "multiple_choice" and self.append_choices:
            text += "".join(f"{self.choice_prefix}{choice}" for choice in example.scores)
        return text.strip()


# ---------------------------------------------------------------------------------------------- reading


def parse_task(data: Any, name: str) -> BigBenchTask:
    """A BIG-Bench task from its parsed JSON; BigBenchError when it has no example this module can score."""
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise BigBenchError(f"{name}: not a BIG-Bench JSON task (no 'examples' list).")
    metrics = set(data.get("metrics") or [])
    rows = [row for row in data["examples"] if isinstance(row, dict) and isinstance(row.get("input"), str)]
    choice_rows = [row for row in rows if isinstance(row.get("target_scores"), dict) and row["target_scores"]]
    if choice_rows and (len(choice_rows) == len(rows) or "multiple_choice_grade" in metrics):
        examples = tuple(BigBenchExample(row["input"], scores={str(k): float(v)
                                                               for k, v in row["target_scores"].items()})
                         for row in choice_rows)
        kind: Kind = "multiple_choice"
    elif "exact_str_match" in metrics or not choice_rows:
        examples = tuple(BigBenchExample(row["input"], targets=tuple(_targets(row.get("target"))))
                         for row in rows if _targets(row.get("target")))
        kind = "generative"
    else:
        examples = ()
    if not examples:
        raise BigBenchError(f"{name}: no example has a 'target' (generative) or 'target_scores' (multiple choice).")
    return BigBenchTask(name=str(data.get("name") or name), kind=kind, examples=examples,
                        task_prefix=str(data.get("task_prefix", "")),
                        input_prefix=str(data.get("example_input_prefix", "")).lstrip(),
                        choice_prefix=str(data.get("choice_prefix", "\n  choice: ")),
                        append_choices=bool(data.get("append_choices_to_input", True)))


def _targets(target: Any) -> list[str]:
    if isinstance(target, str):
        return [target] if target.strip() else []
    if isinstance(target, list):
        return [t for t in target if isinstance(t, str) and t.strip()]
    return []


def load_task(path: Path) -> BigBenchTask:
    """Read one ``task.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BigBenchError(f"{path} does not exist.") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested too deeply
        raise BigBenchError(f"{path.name} is not readable JSON: {error!s:.300}") from error
    return parse_task(data, path.parent.name)


def archive_tasks(archive: Path) -> list[str]:
    """The task names in a ``bigbench`` source archive (``task`` or ``task/subtask``), sorted."""
    with _open(archive) as tar:
        return sorted(_task_name(member.name) for member in tar if _is_task(member))


def load_archive_task(archive: Path, name: str) -> BigBenchTask:
    """Read task ``name`` (as :func:`archive_tasks` lists it) from the archive, without unpacking the rest."""
    return load_archive_tasks(archive, [name])[0]


def load_archive_tasks(archive: Path, names: list[str]) -> list[BigBenchTask]:
    """Read several tasks in one pass over the archive (a pass reads all 358 MB), in the order of ``names``."""
    found: dict[str, BigBenchTask] = {}
    with _open(archive) as tar:
        for member in tar:
            if _is_task(member) and (name := _task_name(member.name)) in names:
                handle = tar.extractfile(member)
                try:
                    data = json.loads(handle.read().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                    raise BigBenchError(f"{name}: task.json is not readable JSON: {error!s:.300}") from error
                found[name] = parse_task(data, name)
                if len(found) == len(set(names)):
                    break
    missing = [name for name in names if name not in found]
    if missing:
        raise BigBenchError(f"{Path(archive).name} has no task {missing[0]!r}.")
    return [found[name] for name in names]


def load_task_from(path: Path, name: str = "") -> BigBenchTask:
    """A ``task.json`` file, or task ``name`` from a source archive (``.tar.gz``); BigBenchError says what's missing."""
    path = Path(path)
    if not str(path).strip() or str(path) == ".":
        raise BigBenchError("Give the path of a BIG-Bench task.json or of the bigbench-1.0.0.tar.gz archive.")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        if not name:
            raise BigBenchError(f"Name the task to read from {path.name}, e.g. object_counting.")
        return load_archive_task(path, name)
    return load_task(path)


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except FileNotFoundError as error:
        raise BigBenchError(f"{archive} does not exist.") from error
    except (OSError, tarfile.TarError) as error:
        raise BigBenchError(f"{Path(archive).name} is not a tar archive: {error}") from error


def _is_task(member: tarfile.TarInfo) -> bool:
    return member.isfile() and member.name.endswith("/task.json") and TASKS_DIR in member.name


def _task_name(path: str) -> str:
    return path.split(TASKS_DIR, 1)[1].rsplit("/task.json", 1)[0]


# ---------------------------------------------------------------------------------------------- scoring


def sample(task: BigBenchTask, limit: int, seed: int = 0) -> list[BigBenchExample]:
    """At most ``limit`` examples (0 = all), a seeded sample so a long task is cut fairly."""
    examples = list(task.examples)
    return examples if not limit or limit >= len(examples) else random.Random(seed).sample(examples, limit)


def choice_loglikelihoods(cache: ModelCache, spec: ModelSpec, prompt: str, choices: list[str],
                          fmt: PromptFormat = "instruction", options: LoadOptions | None = None) -> list[float]:
    """log p(choice | prompt) for each choice: the summed log-probabilities of the choice's tokens after the
    prompt rendered in ``fmt`` (the text the model would answer)."""
    import torch

    # Scoring reads the logits of every continuation token, which only the transformers backend gives (llama.cpp
    # is used for the last position's logits only); base and tuned are both scored here, so alike.
    loaded = cache.get(spec, replace(options or LoadOptions(), backend="transformers"))
    rendered = render([{"role": "user", "content": prompt}], fmt, loaded.kind, loaded.tokenizer)
    tokenizer = loaded.tokenizer
    context = tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]
    scores = []
    for choice in choices:
        continuation = tokenizer(choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + continuation], device=loaded.device)
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids).logits[0, len(context) - 1:-1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        scores.append(float(log_probs.gather(1, torch.tensor(continuation, device=loaded.device)[:, None]).sum()))
    return scores


def evaluate_task(cache: ModelCache, spec: ModelSpec, task: BigBenchTask, limit: int = 0,
                  fmt: PromptFormat = "instruction", max_new_tokens: int = 32,
                  progress: Progress | None = None, options: LoadOptions | None = None) -> EvalResult:
    """One model on a BIG-Bench task: a row per example (id, task, answer, output, correct), as the held-out
    evaluation's, so :func:`playground.data.evaluation.compare` tabulates it with intervals."""
    report = progress or (lambda fraction, message: None)
    examples = sample(task, limit)
    result = EvalResult(model=spec.name, prompt_format=fmt)
    started = time.monotonic()
    for index, example in enumerate(examples):
        report(index / len(examples), f"{spec.name}: {task.name} example {index + 1} of {len(examples)}")
        prompt = task.prompt(example)
        if task.kind == "multiple_choice":
            choices = list(example.scores)
            likelihoods = choice_loglikelihoods(cache, spec, prompt, choices, fmt, options)
            picked = choices[max(range(len(choices)), key=likelihoods.__getitem__)]
            best = max(example.scores.values())
            right = [c for c in choices if example.scores[c] == best]
            row = {"answer": " | ".join(right), "output": picked, "correct": example.scores[picked] == best}
        else:
            held = HeldoutExample(id=f"{task.name}-{index}", task=task.name, instruction=prompt, input="",
                                  answer=example.targets[0], check="exact")
            output = greedy_answer(cache, spec, held, fmt, options or LoadOptions(), max_new_tokens=max_new_tokens)
            first = next((line for line in output.splitlines() if line.strip()), "").strip()
            row = {"answer": " | ".join(example.targets), "output": output,
                   "correct": first in {t.strip() for t in example.targets}}
        result.rows.append({"id": f"{task.name}-{index}", "task": task.name, **row})
    result.seconds = round(time.monotonic() - started, 1)
    report(1.0, f"{spec.name}: {task.name} done")
    return result


def compare_on_task(cache: ModelCache, base: ModelSpec, tuned: ModelSpec, task: BigBenchTask, limit: int = 0,
                    fmt: PromptFormat = "instruction", progress: Progress | None = None):
    """Base vs tuned on one BIG-Bench task: (base result, tuned result, compare()'s table with intervals)."""
    report = progress or (lambda fraction, message: None)
    options = shared_backend([base, tuned], LoadOptions())  # both on one backend, or not controlled
    results = [evaluate_task(cache, spec, task, limit, fmt, progress=lambda f, m, i=i: report((i + f) / 2, m),
                             options=options)
               for i, spec in enumerate((base, tuned))]
    return results[0], results[1], compare(*results)

