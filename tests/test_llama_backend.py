"""The llama.cpp backend against transformers on the very same tiny weights (a float32 GGUF written from the tiny
Llama): logits, LoRA conversion, the Compare path's answers (greedy, seeded, stop, lengths), fallbacks."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from playground.models import catalog, llama_backend, loading
from playground.models.catalog import ModelSpec, PackagedModel
from playground.models.generation import GenerationParams, answer, stream_pair
from playground.models.loading import LoadOptions, ModelCache, ModelLoadError, choose_backend, shared_backend
from tests.tiny_gguf import write_llama_gguf
from tests.tiny_models import build_model

if not llama_backend.installed():
    if os.environ.get("LLAMA_CPP_REQUIRED"):
        pytest.fail("llama-cpp-python is not installed (bash scripts/setup.sh builds it)", pytrace=False)
    pytest.skip("llama-cpp-python is not installed (bash scripts/setup.sh builds it)", allow_module_level=True)

PROMPT = [{"role": "user", "content": "Explain the moon landing to a six year old."}]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    # initializer_range 0.2: peaked next-token distributions, so greedy answers are not decided by rounding.
    return build_model(tmp_path_factory.mktemp("hf") / "tiny", chat=True, initializer_range=0.2)


@pytest.fixture(scope="module")
def gguf_file(hf_folder, tmp_path_factory) -> Path:
    return write_llama_gguf(hf_folder, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _lora(hf_folder: Path, folder: Path, seed: int = 1, **config) -> Path:
    """A LoRA on every linear layer (q and k included: their rows are reordered in a GGUF) with large random
    weights, so it moves the logits a lot."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(hf_folder),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, **config))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(5)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lora_folder(hf_folder, tmp_path_factory) -> Path:
    return _lora(hf_folder, tmp_path_factory.mktemp("lora") / "tiny-lora")


def _hf_logits(hf_folder: Path, ids: list[int], adapter: Path | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_folder)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1]


def _ids(hf_folder: Path) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_folder)("Explain the moon landing to a six year old.")["input_ids"]


def test_llama_cpp_gives_the_logits_transformers_gives_on_the_same_weights(hf_folder, gguf_file):
    import torch

    ids = _ids(hf_folder)
    runner = llama_backend.LlamaRunner(gguf_file, context=256)
    try:
        ours = torch.from_numpy(runner.start(ids))
    finally:
        runner.close()
    theirs = _hf_logits(hf_folder, ids)
    assert theirs.abs().max() > 1  # not a flat distribution that anything would match
    assert (ours - theirs).abs().max() < 0.01  # llama.cpp keeps its KV cache in float16


def test_a_converted_lora_gives_the_logits_peft_gives(hf_folder, gguf_file, lora_folder, tmp_path, monkeypatch):
    import torch

    ids = _ids(hf_folder)
    base, tuned = _hf_logits(hf_folder, ids), _hf_logits(hf_folder, ids, lora_folder)
    assert (tuned - base).abs().max() > 1  # the adapter matters

    def llama_logits(out: Path):
        runner = llama_backend.LlamaRunner(gguf_file, context=256, lora=out)
        try:
            return torch.from_numpy(runner.start(ids))
        finally:
            runner.close()

    info = llama_backend.gguf_info(gguf_file)
    converted = llama_logits(llama_backend.lora_to_gguf(lora_folder, info, tmp_path / "lora.gguf"))
    assert (converted - tuned).abs().max() < 0.05
    # Without reordering B's rows for q and k, as the GGUF's q and k are reordered, the adapter lands wrong.
    monkeypatch.setattr(llama_backend, "_PERMUTES_QK", set())
    unpermuted = llama_logits(llama_backend.lora_to_gguf(lora_folder, info, tmp_path / "wrong.gguf"))
    assert (unpermuted - tuned).abs().max() > 0.5


def test_an_adapter_for_another_model_is_refused_with_a_message(gguf_file, tmp_path):
    wider = build_model(tmp_path / "wider", chat=False, width=64)
    adapter = _lora(wider, tmp_path / "wider-lora")
    with pytest.raises(llama_backend.BackendError, match="does not fit"):
        llama_backend.lora_to_gguf(adapter, llama_backend.gguf_info(gguf_file), tmp_path / "wider.gguf")


def test_adapters_llama_cpp_cannot_carry_run_on_transformers_with_their_base(hf_folder, tmp_path, monkeypatch,
                                                                            fake_package):
    dora = _lora(hf_folder, tmp_path / "dora", use_dora=True)
    assert "DoRA" in llama_backend.unsupported_adapter(dora)
    base, tuned = ModelSpec("tiny-gguf", kind="instruct"), ModelSpec("tiny-gguf", adapter=str(dora), kind="instruct")
    assert choose_backend(base, LoadOptions()) == ("llama.cpp", "")
    backend, why = choose_backend(tuned, LoadOptions())
    assert backend == "transformers" and "DoRA" in why
    # Compared together, the base follows its adapter onto transformers: one backend for the pair.
    assert shared_backend([base, tuned], LoadOptions()).backend == "transformers"
    assert shared_backend([base, ModelSpec(str(hf_folder))], LoadOptions()).backend == "auto"
    with pytest.raises(ModelLoadError, match="DoRA"):
        choose_backend(tuned, LoadOptions(backend="llama.cpp"))
    # Other options need transformers too; without llama-cpp-python everything does.
    assert choose_backend(base, LoadOptions(quant="4bit"))[0] == "transformers"
    assert choose_backend(base, LoadOptions(dtype="bfloat16"))[0] == "transformers"
    assert choose_backend(ModelSpec(str(hf_folder)), LoadOptions())[0] == "transformers"
    monkeypatch.setattr(llama_backend, "installed", lambda: False)
    assert "not installed" in choose_backend(base, LoadOptions())[1]


@pytest.fixture
def fake_package(gguf_file, monkeypatch) -> PackagedModel:
    """The tiny GGUF as a packaged model, the way the real defaults are found."""
    package = PackagedModel(key="tiny-gguf", title="Tiny GGUF", kind="instruct", pip_name="pytest", module="pytest",
                            install="pip install tiny", locate=lambda scratch: gguf_file, gguf_mb=0.1)
    monkeypatch.setitem(catalog.PACKAGED, "tiny-gguf", package)
    return package


def _answer(cache, spec, params, backend="auto", stop=None):
    *_, last = answer(cache, spec, LoadOptions(backend=backend), PROMPT, "auto", "", params, stop or threading.Event())
    assert last.error is None, last.error
    return last


def test_a_packaged_model_answers_on_llama_cpp_as_it_does_on_transformers(fake_package, settings, hf_folder):
    cache = ModelCache(settings)
    spec = ModelSpec("tiny-gguf", kind="instruct")
    greedy = GenerationParams(temperature=0, max_new_tokens=24, repetition_penalty=1.1)
    ours = _answer(cache, spec, greedy)
    assert cache.get(spec).backend == "llama.cpp" and ours.stats.backend == "llama.cpp"
    # Only the tokenizer was read from the GGUF: no float32 import for llama.cpp.
    assert not loading.imported_dir(fake_package, settings).exists()
    assert (loading.tokenizer_dir(fake_package, settings) / "import-complete.json").is_file()
    theirs = _answer(cache, spec, greedy, backend="transformers")
    assert cache.get(spec, LoadOptions(backend="transformers")).backend == "transformers"
    assert ours.text and ours.text == theirs.text
    assert ours.prompt_text == theirs.prompt_text  # the same template and tokens on both backends
    assert ours.stats.finish_reason == theirs.stats.finish_reason
    # Seeded sampling: the same seed gives the same answer, on either backend; another seed another answer.
    sampled = GenerationParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=24, seed=7)
    first, again = _answer(cache, spec, sampled), _answer(cache, spec, sampled)
    assert first.text == again.text == _answer(cache, spec, sampled, backend="transformers").text
    assert _answer(cache, spec, GenerationParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=24,
                                                 seed=8)).text != first.text
    # ignore_eos: exactly max_new_tokens; finish reason length.
    full = _answer(cache, spec, GenerationParams(temperature=0, max_new_tokens=40, ignore_eos=True))
    assert full.stats.new_tokens == 40 and full.stats.finish_reason == "length"
    assert "on llama.cpp" in full.stats.summary()


def test_llama_cpp_stops_fits_the_context_and_serves_two_panes_on_one_model(fake_package, settings):
    cache = ModelCache(settings)
    spec = ModelSpec("tiny-gguf", kind="instruct")
    stop = threading.Event()
    stop.set()
    stopped = _answer(cache, spec, GenerationParams(temperature=0, max_new_tokens=50, ignore_eos=True), stop=stop)
    assert stopped.stats.finish_reason == "stopped" and stopped.stats.new_tokens < 50
    # A prompt longer than the context (256 tokens here) loses its oldest tokens, as on transformers.
    long = [{"role": "user", "content": "the quick brown fox " * 200}]
    *_, last = answer(cache, spec, LoadOptions(), long, "auto", "", GenerationParams(temperature=0, max_new_tokens=8),
                      threading.Event())
    assert last.error is None and last.stats.truncated_tokens > 0
    assert last.stats.prompt_tokens + 8 <= cache.get(spec).context_length
    # Both panes on the same llama.cpp model take turns on its one sequence and give the answers they give alone.
    params = GenerationParams(temperature=0, max_new_tokens=16, ignore_eos=True)
    alone = _answer(cache, spec, params).text

    def job(stop):
        return answer(cache, spec, LoadOptions(), PROMPT, "auto", "", params, stop)

    *_, (left, right) = stream_pair(job, job)
    assert left.text == right.text == alone


def test_when_llama_cpp_cannot_run_here_the_model_loads_on_transformers(fake_package, settings, monkeypatch):
    monkeypatch.setattr(llama_backend, "runs_here", lambda gguf: "llama.cpp crashed with 'Illegal instruction'")
    lines: list[str] = []
    loaded = ModelCache(settings).get(ModelSpec("tiny-gguf", kind="instruct"), progress=lines.append)
    assert loaded.backend == "transformers"
    assert any("Illegal instruction" in line and "using transformers" in line for line in lines)
    with pytest.raises(ModelLoadError, match="Illegal instruction"):
        ModelCache(settings).get(ModelSpec("tiny-gguf", kind="instruct"), LoadOptions(backend="llama.cpp"))


def test_the_probe_reports_a_file_llama_cpp_cannot_run(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    reason = llama_backend.runs_here(broken)
    assert reason is not None and "broken.gguf" in reason


def test_a_converted_adapter_is_cached_by_its_content(fake_package, settings, gguf_file, lora_folder, tmp_path):
    info = llama_backend.gguf_info(gguf_file)
    cache_dir = settings.import_cache_dir / "lora-gguf"
    first = llama_backend.converted_lora(lora_folder, gguf_file, info, cache_dir)
    assert llama_backend.converted_lora(lora_folder, gguf_file, info, cache_dir) == first
    retrained = tmp_path / "retrained"
    retrained.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (retrained / name).write_bytes((lora_folder / name).read_bytes())
    assert llama_backend.converted_lora(retrained, gguf_file, info, cache_dir) == first  # same content
    config = json.loads((retrained / "adapter_config.json").read_text())
    (retrained / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 16}))
    assert llama_backend.converted_lora(retrained, gguf_file, info, cache_dir) != first
    assert not list(cache_dir.glob(".lora-*"))  # no scratch files left behind


def test_an_adapter_runs_on_llama_cpp_beside_its_base_and_matches_transformers(fake_package, settings, lora_folder):
    cache = ModelCache(settings)
    base = ModelSpec("tiny-gguf", kind="instruct")
    tuned = ModelSpec("tiny-gguf", adapter=str(lora_folder), kind="instruct")
    greedy = GenerationParams(temperature=0, max_new_tokens=16, ignore_eos=True)
    ours = _answer(cache, tuned, greedy)
    assert cache.get(tuned).backend == "llama.cpp"
    assert ours.text == _answer(cache, tuned, greedy, backend="transformers").text
    assert ours.text != _answer(cache, base, greedy).text


def test_stop_mid_answer_ends_it_after_the_current_token(fake_package, settings):
    cache = ModelCache(settings)
    spec = ModelSpec("tiny-gguf", kind="instruct")
    stop = threading.Event()
    last = None
    for last in answer(cache, spec, LoadOptions(), PROMPT, "auto", "", GenerationParams(temperature=0, max_new_tokens=200,
                                                                                      ignore_eos=True), stop):
        if last.stats.new_tokens >= 3:
            stop.set()
    assert last.done and last.stats.finish_reason == "stopped" and 3 <= last.stats.new_tokens < 200


def test_adapters_of_other_kinds_are_refused_before_anything_loads_or_run_on_transformers(hf_folder, tmp_path,
                                                                                         fake_package):
    import torch
    from safetensors.torch import load_file, save_file

    # An adapter on the output layer: the GGUF ties it to the embeddings, so there is nothing to adapt there.
    lm_head = _lora_on(hf_folder, tmp_path / "lm-head", ["q_proj", "lm_head"])
    reason = llama_backend.unsupported_adapter(lm_head)
    assert reason and "lm_head" in reason
    assert choose_backend(ModelSpec("tiny-gguf", adapter=str(lm_head)), LoadOptions())[0] == "transformers"
    # A bfloat16 adapter (what a GPU run saves) converts like a float32 one.
    plain = _lora_on(hf_folder, tmp_path / "plain", ["q_proj", "k_proj"])
    bf16 = tmp_path / "bf16"
    bf16.mkdir()
    (bf16 / "adapter_config.json").write_text((plain / "adapter_config.json").read_text())
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(plain / "adapter_model.safetensors").items()},
              bf16 / "adapter_model.safetensors")
    info = llama_backend.gguf_info(fake_package.locate(tmp_path))
    assert llama_backend.unsupported_adapter(bf16) is None
    assert llama_backend.lora_to_gguf(bf16, info, tmp_path / "bf16.gguf").stat().st_size > 0


def _lora_on(hf_folder: Path, folder: Path, modules: list[str]) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(hf_folder),
                           LoraConfig(r=4, lora_alpha=8, target_modules=modules, init_lora_weights=False))
    model.save_pretrained(folder)
    return folder


def test_a_conversion_that_fails_falls_back_to_transformers_unless_llama_cpp_was_asked_for(
        fake_package, settings, hf_folder, tmp_path, monkeypatch):
    adapter = _lora_on(hf_folder, tmp_path / "adapter", ["q_proj"])

    def broken(*args, **kwargs):
        raise llama_backend.BackendError("The adapter's layer x has no counterpart in the llama GGUF.")

    monkeypatch.setattr(llama_backend, "lora_to_gguf", broken)
    spec = ModelSpec("tiny-gguf", adapter=str(adapter), kind="instruct")
    lines: list[str] = []
    assert ModelCache(settings).get(spec, progress=lines.append).backend == "transformers"
    assert any("no counterpart" in line and "Using transformers" in line for line in lines)
    with pytest.raises(ModelLoadError, match="no counterpart"):
        ModelCache(settings).get(spec, LoadOptions(backend="llama.cpp"))


def test_the_second_pane_on_one_model_times_its_own_answer(fake_package, settings):
    """Two panes on one llama.cpp model take turns; the second one's TTFT starts when its turn does."""
    cache = ModelCache(settings)
    spec = ModelSpec("tiny-gguf", kind="instruct")
    params = GenerationParams(temperature=0, max_new_tokens=120, ignore_eos=True)
    _answer(cache, spec, params)  # loaded

    def job(stop):
        return answer(cache, spec, LoadOptions(), PROMPT, "auto", "", params, stop)

    *_, (left, right) = stream_pair(job, job)
    slower, faster = sorted((left.stats, right.stats), key=lambda s: s.elapsed)[::-1]
    assert slower.time_to_first_token < faster.elapsed  # not counted from before the other answer
