"""Loading: fp32, 4-bit NF4 on CPU, LoRA adapters, the GGUF import cache, the LRU budget, and failures."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from playground.models import loading
from playground.models.catalog import ModelSpec, PackagedModel
from playground.models.loading import LoadOptions, ModelCache, ModelLoadError, import_packaged, load

IDS = torch.tensor([[1, 20, 30, 40, 50]])


def test_fp32_load(settings, tiny_base):
    loaded = load(ModelSpec(str(tiny_base)), settings)
    assert loaded.device == "cpu"
    assert loaded.model.dtype == torch.float32
    assert loaded.kind == "base"  # no chat template
    assert loaded.context_length == 256
    reference = AutoModelForCausalLM.from_pretrained(tiny_base)
    with torch.no_grad():
        assert torch.allclose(loaded.model(IDS).logits, reference(IDS).logits)


def test_chat_model_is_guessed_instruct(settings, tiny_chat):
    assert load(ModelSpec(str(tiny_chat)), settings).kind == "instruct"


def test_4bit_nf4_on_cpu(settings, tiny_base_4bit):
    import bitsandbytes as bnb

    from tests.tiny_models import NF4_BLOCK

    loaded = load(ModelSpec(str(tiny_base_4bit)), settings, LoadOptions(quant="4bit"))
    q_proj = loaded.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_type == "nf4"
    quantized = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    # one NF4 block wide at least: bitsandbytes' AVX-512 BF16 CPU path (current Xeons) packs whole blocks
    assert min(min(m.in_features, m.out_features) for m in quantized) >= NF4_BLOCK
    full = load(ModelSpec(str(tiny_base_4bit)), settings)
    assert loaded.footprint_bytes < full.footprint_bytes
    with torch.no_grad():
        assert torch.isfinite(loaded.model(IDS).logits).all()
    if bnb.functional.has_avx512bf16():  # that CPU's packed inference path really ran
        assert q_proj.weight.quant_state.packing_format_for_cpu


def test_adapter_matches_plain_peft(settings, tiny_base, tiny_adapter):
    loaded = load(ModelSpec(str(tiny_base), adapter=str(tiny_adapter)), settings)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), tiny_adapter).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    with torch.no_grad():
        ours = loaded.model(IDS).logits
        assert torch.allclose(ours, plain(IDS).logits, atol=1e-6)
        assert not torch.allclose(ours, base(IDS).logits, atol=1e-4)  # the adapter really changes the model


def test_only_safetensors_are_loaded(settings, tiny_base, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_base / "config.json", folder)
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="only loads safetensors"):
        load(ModelSpec(str(folder)), settings)


def test_unreachable_hub_model_says_so(settings):
    with pytest.raises(ModelLoadError, match="can't be reached"):
        load(ModelSpec("HuggingFaceTB/SmolLM2-135M"), settings)


def test_out_of_memory_on_load(settings, tiny_base, monkeypatch):
    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(ModelLoadError, match="Out of memory while loading"):
        load(ModelSpec(str(tiny_base)), settings)


def test_cache_reuses_and_evicts_least_recently_used(settings, tiny_base, tiny_chat):
    one = load(ModelSpec(str(tiny_base)), settings).footprint_bytes
    cache = ModelCache(settings, budget_bytes=int(one * 1.5))  # room for one tiny model, not two
    a = cache.get(ModelSpec(str(tiny_base)))
    assert cache.get(ModelSpec(str(tiny_base))) is a
    cache.get(ModelSpec(str(tiny_chat)))
    assert [m.spec.source for m in cache.loaded()] == [str(tiny_chat)]
    assert "tiny-chat" in cache.describe()
    assert cache.unload() == 1
    assert cache.loaded() == [] and cache.describe() == "No models loaded."


def test_each_memory_keeps_its_own_budget_and_models_held_elsewhere_count():
    gib = 2**30
    budgets = {"ram": 4 * gib, "gpu": 8 * gib}.__getitem__
    models = [("old-gpu", "gpu", 3 * gib), ("ram", "ram", 3 * gib), ("new-gpu", "gpu", 3 * gib)]  # LRU first
    # 6 GiB on the card and 3 in RAM: within both budgets, whatever the RAM's budget says about the GPU's models
    assert loading.over_budget(models, {}, budgets) == []
    # the Reward tab's 3 GiB reward model on the card makes 9 GiB: the least recently used GPU model goes, not the
    # (older-listed) RAM one, and never the reward model, which the cache doesn't own
    assert loading.over_budget(models, {"gpu": 3 * gib}, budgets) == ["old-gpu"]
    # the model just loaded stays even when it alone is over its budget
    assert loading.over_budget(models, {"gpu": 6 * gib}, budgets, keep="new-gpu") == ["old-gpu"]
    assert loading.over_budget(models, {"ram": 2 * gib}, budgets) == ["ram"]
    asked = []
    loading.over_budget([("a", "ram", gib)], {}, lambda memory: asked.append(memory) or 4 * gib)
    assert asked == ["ram"]  # a CPU-only app never asks the GPU's budget (which would query CUDA)
    assert loading.memory_of("cuda:1") == loading.memory_of("cuda") == "gpu" and loading.memory_of("cpu") == "ram"


def test_the_gpu_budget_comes_from_the_settings_and_must_be_positive(tmp_path):
    from playground.core.settings import Settings

    assert ModelCache(Settings(data_dir=tmp_path, gpu_memory_budget_gb=6.0)).budget("gpu") == 6 * 2**30
    for field in ("memory_budget_gb", "gpu_memory_budget_gb"):
        with pytest.raises(ValueError, match=f"{field} must be positive"):
            Settings(data_dir=tmp_path, **{field: 0.0})


def test_a_model_held_outside_the_cache_makes_the_cache_unload_its_own(settings, tiny_base, tiny_chat):
    one = load(ModelSpec(str(tiny_base)), settings).footprint_bytes
    cache = ModelCache(settings, budget_bytes=int(one * 2.5))  # room for two tiny models, not three
    cache.get(ModelSpec(str(tiny_base)))
    cache.get(ModelSpec(str(tiny_chat)))
    held: list[tuple[str, int]] = []
    cache.count_also(lambda: held)
    cache.make_room()
    assert len(cache.loaded()) == 2  # nothing held elsewhere yet
    held.append(("cpu", one))  # e.g. the Reward tab loads a reward model as large as the base
    cache.make_room()
    assert [m.spec.source for m in cache.loaded()] == [str(tiny_chat)]  # the least recently used went
    assert "GiB RAM)" in cache.describe() and "GPU" not in cache.describe()  # no model on a GPU: no GPU line


def test_cache_unload_one(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    cache.get(ModelSpec(str(tiny_base)))
    cache.get(ModelSpec(str(tiny_chat)))
    assert cache.unload(ModelSpec(str(tiny_base))) == 1
    assert [m.spec.source for m in cache.loaded()] == [str(tiny_chat)]


def test_concurrent_gets_load_once(settings, tiny_base, monkeypatch):
    import threading

    calls = []
    real = loading.load
    monkeypatch.setattr(loading, "load", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = ModelCache(settings)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(ModelSpec(str(tiny_base))))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_loads_never_overlap(settings, tiny_base, tiny_chat, monkeypatch):
    import threading
    import time

    active, peak = [0], [0]
    real = loading.load

    def tracked(*args, **kwargs):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.2)  # widen the window in which a second load could start
        try:
            return real(*args, **kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(loading, "load", tracked)
    cache = ModelCache(settings)
    threads = [threading.Thread(target=cache.get, args=(ModelSpec(str(p)),)) for p in (tiny_base, tiny_chat)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache.loaded()) == 2 and peak[0] == 1


def _fake_package(locate) -> PackagedModel:
    return PackagedModel(key="fake", title="Fake", kind="base", pip_name="pytest", module="pytest",
                         install="pip install fake", locate=locate)


def test_imported_model_is_read_from_the_cache(settings):
    def never(scratch):
        raise AssertionError("the GGUF must not be read again once imported")

    package = _fake_package(never)
    target = loading.imported_dir(package, settings)
    target.mkdir(parents=True)
    (target / "import-complete.json").write_text(json.dumps({"seconds": 1}))
    assert import_packaged(package, settings) == target


def test_interrupted_import_leaves_nothing_that_looks_finished(settings):
    def fails(scratch):
        (scratch / "half-written.gguf").write_bytes(b"GGUF")
        raise OSError("No space left on device")

    package = _fake_package(fails)
    with pytest.raises(OSError, match="No space left"):
        import_packaged(package, settings)
    assert not loading.imported_dir(package, settings).exists()
    assert list(settings.import_cache_dir.iterdir()) == []


def test_an_import_by_older_code_is_redone(settings):
    """An import made before control tokens were marked special (folder named without the format) isn't reused."""
    def reads_the_gguf(scratch):
        raise OSError("read the GGUF again")

    package = _fake_package(reads_the_gguf)
    old = settings.import_cache_dir / f"{package.key}-{package.version()}"
    old.mkdir(parents=True)
    (old / "import-complete.json").write_text(json.dumps({"seconds": 1}))
    assert loading.imported_dir(package, settings) != old
    with pytest.raises(OSError, match="read the GGUF again"):
        import_packaged(package, settings)


def test_a_finished_import_removes_the_older_ones(settings):
    package = _fake_package(lambda scratch: None)
    current = loading.imported_dir(package, settings)
    older = [settings.import_cache_dir / f"{package.key}-{package.version()}",  # by older code
             settings.import_cache_dir / f"{package.key}-0.9.0-import1"]  # of an older package version
    kept = [current, settings.import_cache_dir / f".{package.key}-scratch",  # an import under way elsewhere
            settings.import_cache_dir / f"{package.key}-it-1.0.0-import2"]  # another model whose key begins alike
    for folder in older + kept:
        folder.mkdir(parents=True)
    assert sorted(loading.remove_stale_imports(package, settings)) == sorted(older)
    assert all(f.is_dir() for f in kept) and not any(f.exists() for f in older)


def test_control_tokens_become_special_and_keep_their_ids(tmp_path):
    from transformers import AutoTokenizer

    from tests.tiny_models import build_tokenizer

    tokenizer = build_tokenizer()
    size = len(tokenizer)
    image, turn = tokenizer.convert_tokens_to_ids(["ox", "bo"])  # ordinary text tokens: made control here
    assert image not in tokenizer.added_tokens_decoder and turn not in tokenizer.added_tokens_decoder
    assert loading.mark_control_tokens(tokenizer, [image, tokenizer.eos_token_id], extra=("bo",)) == 2
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == size and reloaded.convert_tokens_to_ids(["ox", "bo"]) == [image, turn]
    text = reloaded.convert_tokens_to_ids(reloaded.tokenize("The quick brown dog"))
    assert reloaded.decode(text + [image, turn], skip_special_tokens=True) == "The quick brown dog"
    assert loading.mark_control_tokens(reloaded, [image], extra=("bo",)) == 0  # already special: nothing to do
    with pytest.raises(ModelLoadError, match="no token '<start_of_image>'"):
        loading.mark_control_tokens(reloaded, [], extra=("<start_of_image>",))


def test_control_token_ids_come_from_the_gguf_token_types(tmp_path):
    import gguf

    path = tmp_path / "tokens.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_token_list(["<unk>", "<ctrl>", "a", "<div>", "<0x00>", "<img_start>"])
    T = gguf.TokenType
    writer.add_token_types([T.UNKNOWN, T.CONTROL, T.NORMAL, T.USER_DEFINED, T.BYTE, T.CONTROL])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert loading.gguf_control_token_ids(path) == [0, 1, 5]


def test_availability_is_checked_without_loading(tiny_base, tmp_path, monkeypatch):
    """What Train checks before queuing a run: no loading, no import, and a message that says what to pick."""
    import huggingface_hub

    loading.check_available(ModelSpec(str(tiny_base)))  # a local folder with safetensors
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no .safetensors weights"):
        loading.check_available(ModelSpec(str(pickled)))
    hub = ModelSpec("no-org/no-such-model")
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: True)
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache and the hub is off"):
        loading.check_available(hub)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    loading.check_available(hub)  # downloaded before: loads offline
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "repo_exists", lambda repo: False)
    with pytest.raises(ModelLoadError, match="no model no-org/no-such-model on the Hugging Face hub"):
        loading.check_available(hub)
    monkeypatch.setattr(huggingface_hub, "repo_exists", lambda repo: True)
    loading.check_available(hub)  # on the hub: the run downloads it
