"""Merge and export a run (playground/runs/export_model.py) on tiny models: the merged folder computes what base +
adapter computes and is a model the app lists and prompts the same way; its GGUF runs on llama.cpp and answers as
the folder does; a short disk, a reward run and an unknown run are refused with nothing written."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from playground.models import catalog, llama_backend
from playground.models.catalog import ModelSpec, PackagedModel, list_models, resolve_choice
from playground.models.generation import GenerationParams, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.runs import export_model
from playground.runs.export_model import ExportError, export_run
from tests.tiny_gguf import write_llama_gguf
from tests.tiny_models import build_model

PROMPT = [{"role": "user", "content": "Explain the moon landing to a six year old."}]
GREEDY = GenerationParams(temperature=0, max_new_tokens=24, repetition_penalty=1.1)
needs_llama_cpp = pytest.mark.skipif(not llama_backend.installed() and not os.environ.get("LLAMA_CPP_REQUIRED"),
                                     reason="llama-cpp-python is not installed (bash scripts/setup.sh builds it)")


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    # initializer_range 0.2: peaked next-token distributions, so greedy answers are not decided by rounding.
    return build_model(tmp_path_factory.mktemp("hf") / "tiny", chat=True, initializer_range=0.2)


def _write_run(runs_dir: Path, name: str, base: str, hf_folder: Path, stage: str = "sft",
               task_type: str = "CAUSAL_LM") -> Path:
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
                                                         "prompt_format": "instruction", "quantized": True}))
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


def _greedy_agreement(folder_model, runner, ids: list[int], steps: int = 24) -> tuple[float, list[int]]:
    """Walk the merged folder's greedy answer (transformers, float32) and read llama.cpp's next-token logits along
    the same tokens: (the largest logit difference, the steps where llama.cpp's greedy token differs although the
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
    # transformers' GGUF import reads the same file (the app's fallback when llama.cpp can't run).
    assert _answer(cache, gguf_spec, backend="transformers").stats.backend == "transformers"

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
