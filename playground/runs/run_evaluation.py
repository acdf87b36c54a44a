"""Evaluate a training run: its base and base + its adapter on the held-out task families, saved into the run.

The Runs tab's **Evaluate** and the Lecture tab's step 2 both call :func:`evaluate_run`, so a run is measured one way
wherever the button is: both models prompted the way the run trained, greedy, on the same examples, and the result
written to the run folder's ``eval.json`` (where the Runs and Lecture tabs read it back after a restart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from playground.core.settings import Settings
from playground.data import evaluation
from playground.models.catalog import ModelSpec, is_language_model_adapter, list_models, resolve_choice, spec_for_folder
from playground.models.loading import LoadOptions, ModelCache, shared_backend
from playground.runs.run_folder import RunFolder


class RunEvaluationError(ValueError):
    """The run can't be evaluated (no adapter yet, or a reward model); the message says why and what to do."""


def examples_per_family(examples: list[evaluation.HeldoutExample], per_family: int) -> list[evaluation.HeldoutExample]:
    """The first ``per_family`` examples of each task family, in file order (all of them when ``per_family`` ≤ 0)."""
    if per_family <= 0:
        return examples
    return [e for task in dict.fromkeys(e.task for e in examples)
            for e in [x for x in examples if x.task == task][:per_family]]


def run_models(settings: Settings, folder: RunFolder) -> tuple[ModelSpec, ModelSpec]:
    """(base, base + adapter) of a run that writes answers; :class:`RunEvaluationError` before anything loads when the
    run has no adapter yet or is a reward model."""
    if not (folder.adapter / "adapter_config.json").is_file():
        raise RunEvaluationError("This run has no adapter yet: evaluate it once it has finished or been stopped.")
    if not is_language_model_adapter(folder.adapter):
        raise RunEvaluationError("This is a reward model: it scores answers rather than writing them. Check it in "
                                 "the Reward tab (agreement with your votes, length bias).")
    tuned = spec_for_folder(folder.adapter)
    return resolve_choice(tuned.source, list_models(settings)), tuned


def evaluate_run(settings: Settings, cache: ModelCache, folder: RunFolder, per_family: int = 0,
                 progress: Callable[[float, str], None] | None = None,
                 stop: threading.Event | None = None) -> list[evaluation.EvalResult]:
    """Answer the held-out examples with the run's base and with base + adapter, save both into ``eval.json``;
    returns [base, tuned].

    ``progress(fraction, text)`` covers both models (0–0.5 the base, 0.5–1 the tuned one). Raises
    :class:`RunEvaluationError` before loading anything when the run has no language-model adapter, and
    :class:`evaluation.EvaluationError` / :class:`evaluation.EvaluationStopped` (RuntimeErrors) from the evaluation
    itself; nothing is saved then.
    """
    base, tuned = run_models(settings, folder)
    examples = examples_per_family(evaluation.load_heldout(), int(per_family or 0))
    fmt = tuned.trained_format or "instruction"
    options = shared_backend([base, tuned], LoadOptions())  # base and tuned on the same backend, or not controlled
    outcome = evaluation.evaluate_heldout(cache, base, tuned, examples, fmt, options, progress=progress, stop=stop)
    results = [outcome.base, outcome.tuned]
    evaluation.save(results, folder.path)
    return results
