"""Merge and export a run: its LoRA adapter merged into the base model, written as a model folder the app lists.

A run's adapter is only a model on top of its base. Merging (PEFT's ``merge_and_unload``: W ← W + (α/r)·B·A on each
adapted layer) makes it one plain model that any tool reads: a Hugging Face folder (float32 safetensors, the
tokenizer, and ``playground.json`` with the kind and prompt format of the base + adapter, so the app prompts it the
same way), by default ``DATA_DIR/models/<run>-merged`` — where the model lists pick it up — and optionally a GGUF file
in that folder (F16, or Q8_0 with the ``gguf`` package's quantizer) that llama.cpp runs (the catalog lists it too).

The base is built in float32 the way the app builds it (:func:`playground.models.loading.build_model`; a packaged
GGUF base is its float32 import), so an adapter trained in 4-bit (QLoRA) merges into the unquantized weights, which
the result says. Before loading, the float32 model's size is estimated from the base's config (built on torch's
``meta`` device: no weights), compared with the free disk space, and — from the app — made room for in its
:class:`~playground.models.loading.ModelCache` (least recently used models are unloaded; a budget too small is
refused). One export of a name runs at a time (a lock in the data dir's cache); it deletes what a killed export of
the same name left behind, and the model lists skip a folder still being written (hidden until it is renamed).

Run it from the Runs tab (**Merge and export**) or the command line::

    python -m playground.runs.export_model RUN_OR_ADAPTER [--out DIR] [--gguf f16|q8_0] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from playground.core.files import remove_leftovers, staged_file, staged_folder
from playground.core.settings import Settings
from playground.models import llama_backend
from playground.models.catalog import (
    PACKAGED,
    CatalogError,
    ModelSpec,
    is_gguf_file,
    is_language_model_adapter,
    spec_for_folder,
)
from playground.models.loading import (
    LoadOptions,
    ModelCache,
    ModelLoadError,
    build_model,
    free_memory,
    packaged_gguf,
    pick_device,
    resolved_kind,
    weights_location,
)
from playground.models.prompting import concrete_format

GgufType = Literal["none", "f16", "q8_0"]
GGUF_TYPES: tuple[str, ...] = ("none", "f16", "q8_0")
Progress = Callable[[float, str], None]

INFO_FILE = "playground.json"
"""Written into the merged folder: the run, its base, and the kind and prompt format the catalog gives the model."""

ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3", "gemma3_text": "gemma3"}
"""Hugging Face ``model_type`` → GGUF architecture, for the models the app runs (Llama and SmolLM2, Qwen2, Gemma 3)."""
_FROM_CONFIG = {"llama", "qwen2"}
"""Architectures whose GGUF settings are written from config.json here. A Gemma 3 GGUF carries settings of its own
(sliding-window attention, rope scaling per layer type), so it takes them from the base's packaged GGUF."""
_NORM_PLUS_ONE = {"gemma3"}
"""Architectures whose RMSNorm scales by (1 + w): llama.cpp's converter stores w + 1 (transformers subtracts it back)."""
_Q8_BLOCK = 32
"""Q8_0 quantizes rows in blocks of 32 weights; a tensor whose rows don't divide into them stays F16."""

# llama.cpp tokenizes a byte-level BPE GGUF by the pre-tokenizer *name* in ``tokenizer.ggml.pre`` (its own split
# rules per name; an unknown model gets ``default``, GPT-2's rules, and splits digits, spaces and apostrophes
# wrongly for most models). Its converter (convert_hf_to_gguf.py, ``get_vocab_base_pre``) picks the name by a hash
# of the tokenizer's ids for this text; the converter is not on PyPI, so the text and the hashes of the families the
# app runs are repeated here.
_PRE_TOKENIZER_CHECK = ("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
                        "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
                        "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
                        "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll "
                        "make it, 'D you like some tea? We'Ve a'lL")
LLAMA_PRE_TOKENIZERS: dict[str, str] = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM, SmolLM2
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5, Qwen2, Qwen2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # GPT-2
}
"""llama.cpp's pre-tokenizer name by the hash of the tokenizer's ids for :data:`_PRE_TOKENIZER_CHECK`."""


class ExportError(ValueError):
    """The run can't be merged or exported; nothing was written, and the message says why and what to do."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    folder: Path
    """The merged model's Hugging Face folder (listed by the app when under DATA_DIR/models)."""
    gguf: Path | None
    """The GGUF file inside it, when one was asked for."""
    notes: tuple[str, ...]
    """What the user should know: the base it merged into, a 4-bit-trained adapter merged into full weights."""

    def describe(self) -> str:
        lines = [f"Merged model: {self.folder}"] + ([f"GGUF: {self.gguf}"] if self.gguf else []) + list(self.notes)
        return "\n".join(lines)


def find_adapter(settings: Settings, run_or_adapter: str) -> tuple[Path, str]:
    """(adapter folder, name) for a run name, a run folder or an adapter folder; :class:`ExportError` for anything
    else, and for an adapter that doesn't write text (a reward model's)."""
    text = (run_or_adapter or "").strip()
    if not text:
        raise ExportError("Name a run (or a run or adapter folder) to merge.")
    given = Path(text).expanduser()
    for folder in (settings.runs_dir / text / "adapter", given / "adapter", given):
        if (folder / "adapter_config.json").is_file():
            break
    else:
        raise ExportError(f"No run or adapter {text!r}: name a finished or stopped run in {settings.runs_dir}, or a "
                          f"folder holding adapter_config.json.")
    if not is_language_model_adapter(folder):
        raise ExportError(f"{text} is a reward model's adapter: it scores answers rather than writing them, so there "
                          f"is no language model to merge. Merge an SFT, DPO, PPO, GRPO, RLOO or KTO run.")
    name = folder.parent.name if folder.name == "adapter" else folder.name
    return folder, name


def estimate_bytes(parameters: int, tokenizer_bytes: int, gguf: GgufType) -> int:
    """The export's size on disk: float32 safetensors (4 bytes a weight), the tokenizer, and the GGUF (F16: 2 bytes
    a weight; Q8_0: 34 bytes per 32 weights), plus 1 % for headers."""
    per_weight = 4 + {"none": 0.0, "f16": 2.0, "q8_0": 34 / 32}[gguf]
    return int((parameters * per_weight + tokenizer_bytes * (2 if gguf != "none" else 1)) * 1.01)


def check_room(where: Path, needed: int) -> None:
    """Refuse (:class:`ExportError`, naming both figures) when the disk holding ``where`` has less free space than
    ``needed`` bytes."""
    probe = where
    while not probe.exists():  # the output folder doesn't exist yet: ask about the disk it will be on
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise ExportError(f"Not enough disk space: the export needs about {needed / 2**20:,.0f} MiB and "
                          f"{probe} has {free / 2**20:,.0f} MiB free. Free some space (old runs' checkpoints are "
                          f"large) or choose another output folder.")


_TOKENIZER_BYTES = 20 * 2**20
"""Room for the saved tokenizer, known before it is loaded: its vocabulary and merges take about 60 bytes a token,
16 MiB for the largest vocabulary the app runs (Gemma 3's 262k tokens)."""


def base_parameters(spec: ModelSpec, settings: Settings, progress: Callable[[str], None] = lambda _: None) -> int:
    """The number of weights of ``spec``'s base model, from its config alone: the model is built on torch's
    ``meta`` device (shapes, no memory), so this is known before the float32 model is. A packaged base is imported
    first (as loading it would be)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    location = weights_location(spec, settings, progress)
    kwargs: dict[str, Any] = {}
    if is_gguf_file(location):
        location, kwargs = str(Path(location).parent), {"gguf_file": Path(location).name}
    config = AutoConfig.from_pretrained(location, **kwargs)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


@contextmanager
def _export_lock(settings: Settings, out: Path) -> Iterator[None]:
    """Hold the lock of exports to ``out`` (a file in the data dir's cache, so the output's folder gets nothing but
    the export); :class:`ExportError` at once when another export to it holds the lock."""
    from filelock import FileLock, Timeout

    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    folder = settings.data_dir / "cache" / "export-locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout as error:
        raise ExportError(f"Another export to {out} is under way: wait for it to finish.") from error
    try:
        yield
    finally:
        lock.release()


def export_run(settings: Settings, run_or_adapter: str, out: Path | None = None, gguf: GgufType = "none",
               progress: Progress = lambda fraction, text: None, cache: ModelCache | None = None) -> ExportResult:
    """Merge a run's (or an adapter folder's) LoRA into its base and write the Hugging Face folder ``out`` (default
    ``DATA_DIR/models/<run>-merged``), plus a GGUF of type ``gguf`` inside it. ``progress(fraction, text)`` hears
    each step. ``cache`` (the app's) makes room in its memory budget for the float32 model while it is built and
    written. Refuses (:class:`ExportError`, nothing written) an unknown or reward run, an existing ``out``, another
    export to ``out`` under way, a GGUF of an architecture not covered, a disk without room for the estimated size,
    and a memory budget without room for the float32 model."""
    if gguf not in GGUF_TYPES:
        raise ExportError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}, got {gguf!r}.")
    adapter, name = find_adapter(settings, run_or_adapter)
    out = Path(out).expanduser() if out else settings.models_dir / f"{name}-merged"
    if out.exists():
        raise ExportError(f"{out} already exists: delete it first, or choose another output folder.")
    try:
        tuned = spec_for_folder(adapter)
    except CatalogError as error:
        raise ExportError(str(error)) from error
    with _export_lock(settings, out):
        remove_leftovers(out)  # a killed export's staging folder: no other export to ``out`` runs now
        return _export(settings, tuned, adapter, name, out, gguf, progress, cache)


def _export(settings: Settings, tuned: ModelSpec, adapter: Path, name: str, out: Path, gguf: GgufType,
            progress: Progress, cache: ModelCache | None) -> ExportResult:
    """:func:`export_run` once the run is found and the export to ``out`` is locked."""
    info = _adapter_info(adapter)
    progress(0.05, f"Loading {tuned.name} in float32…")
    try:
        parameters = base_parameters(tuned, settings, progress=lambda line: progress(0.05, line))
    except (ModelLoadError, OSError, ValueError) as error:
        raise ExportError(f"Couldn't load {tuned.name}: {error}") from error
    float32_bytes = 4 * parameters
    check_room(out.parent, estimate_bytes(parameters, _TOKENIZER_BYTES, gguf))
    try:
        room = nullcontext() if cache is None else \
            cache.room_for(f"Merging {name} (float32)", pick_device(), float32_bytes)
        with room:
            return _merge_and_write(settings, tuned, adapter, name, out, gguf, info, progress)
    except ModelLoadError as error:  # the memory budget can't hold the float32 model
        raise ExportError(str(error)) from error


def _merge_and_write(settings: Settings, tuned: ModelSpec, adapter: Path, name: str, out: Path, gguf: GgufType,
                     info: dict[str, Any], progress: Progress) -> ExportResult:
    """Build base + adapter in float32, merge, and write the folder (and GGUF) under a staging name."""
    try:
        model, tokenizer = build_model(tuned, settings, LoadOptions(dtype="float32", backend="transformers"),
                                       progress=lambda line: progress(0.1, line))
    except (ModelLoadError, OSError, ValueError) as error:
        raise ExportError(f"Couldn't load {tuned.name}: {error}") from error
    template = _gguf_template(tuned.source, model.config, settings) if gguf != "none" else None
    progress(0.35, "Merging the adapter into the base (W + α/r · B·A)…")
    merged = model.merge_and_unload()
    notes = [f"Merged {name}'s adapter into {tuned.source} (float32)."]
    if info.get("quantized"):
        notes.append("The adapter was trained on the 4-bit (QLoRA) base; it is merged into the unquantized "
                     "float32 base, so the merged model's weights differ slightly from what training saw.")
    if template is None and gguf != "none" and llama_pre_tokenizer(tokenizer) is None:
        notes.append("llama.cpp doesn't know this tokenizer's pre-tokenizer (the GGUF says 'default'): run outside "
                     "the app (llama.cpp, Ollama), the GGUF may split text into different tokens than the model "
                     "learned. The app itself always tokenizes with the Hugging Face tokenizer.")
    # What the loader resolves for base + adapter, recorded explicitly: the merged folder is prompted the same way
    # whatever its name suggests (catalog.local_spec honours the record over guessing from the name).
    kind = resolved_kind(tuned, tokenizer)
    prompt_format = tuned.trained_format or concrete_format("auto", kind, tokenizer)
    record = {"run": name, "stage": info.get("stage"), "base_model": info.get("base_model", tuned.source),
              "adapter": str(adapter), "kind": kind, "prompt_format": prompt_format,
              "merged_from_4bit": bool(info.get("quantized")), "gguf": gguf}
    gguf_path = out / f"{out.name}.{gguf}.gguf" if gguf != "none" else None
    try:
        with staged_folder(out, replace=False) as staging:  # the folder appears whole, or not at all
            progress(0.45, f"Writing {out.name} (safetensors, tokenizer)…")
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / INFO_FILE).write_text(json.dumps(record, indent=2))
            del model, merged
            free_memory()  # the float32 model goes before the GGUF writer reads the weights back
            if gguf_path is not None:
                write_gguf(staging, staging / gguf_path.name, gguf, template,  # type: ignore[arg-type]
                           progress=lambda fraction, text: progress(0.6 + 0.4 * fraction, text))
    except FileExistsError as error:
        raise ExportError(f"{out} appeared while exporting (another export?); nothing was replaced.") from error
    except OSError as error:
        raise ExportError(f"Writing {out} failed, and nothing was kept: {error}") from error
    progress(1.0, f"Done: {out}")
    return ExportResult(out, gguf_path, tuple(notes))


def _adapter_info(adapter: Path) -> dict[str, Any]:
    """The run's ``playground.json`` beside the adapter (stage, base, prompt format, 4-bit or not), or {}."""
    try:
        info = json.loads((adapter / INFO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _gguf_template(source: str, config: Any, settings: Settings) -> Path | None:
    """The base's own GGUF when it is a packaged model (its settings and tokenizer are copied into the export),
    else None; :class:`ExportError` for an architecture the GGUF export doesn't cover."""
    model_type = getattr(config, "model_type", "")
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        raise ExportError(f"GGUF export covers Llama (SmolLM2), Qwen2 and Gemma 3 models; this base is "
                          f"{model_type or 'of an unknown type'}. Export the Hugging Face folder alone.")
    if source in PACKAGED:
        return packaged_gguf(PACKAGED[source], settings)
    if arch not in _FROM_CONFIG:
        raise ExportError(f"GGUF export of a {arch} model needs its settings from a packaged GGUF base "
                          f"({', '.join(PACKAGED)}); this one is {source}. Export the Hugging Face folder alone.")
    return None


# ---------------------------------------------------------------------------------------------- GGUF


def write_gguf(folder: Path, out: Path, gguf_type: Literal["f16", "q8_0"], template: Path | None = None,
               progress: Progress = lambda fraction, text: None) -> Path:
    """Write the Hugging Face model in ``folder`` (config.json, float32 safetensors, tokenizer) as a GGUF file.

    llama.cpp's own converter (``convert_hf_to_gguf.py``) is not on PyPI, so this does its part for the
    architectures the app runs, with the ``gguf`` package: tensor names from its ``TensorNameMap``, query/key rows
    reordered for llama.cpp's rotary embedding (Llama), Gemma's norms stored as w + 1, matrices in F16 or Q8_0
    (``gguf.quants``) and vectors in F32. The settings and tokenizer keys come from ``template`` (the base's own
    GGUF) when given, else from config.json and the Hugging Face tokenizer (byte-level BPE only)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text())
    config = config.get("text_config", config) if "num_hidden_layers" not in config else config
    arch = ARCHITECTURES.get(config.get("model_type", ""))
    if arch is None:
        raise ExportError(f"GGUF export covers Llama (SmolLM2), Qwen2 and Gemma 3; not {config.get('model_type')}.")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    blocks = int(config["num_hidden_layers"])
    file_type = gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer = gguf.GGUFWriter(None, arch)  # the path is given when the file is written (beside, then renamed)
    if template is not None:
        progress(0.0, f"Reading the settings and tokenizer of {template.name}…")
        wanted: list[str] | None = _copy_template(template, writer)
    else:
        _write_settings(writer, config, arch, heads, kv_heads)
        _write_tokenizer(writer, folder)
        wanted = None
    writer.add_name(out.name.split(".")[0])
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    weights: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        weights.update(load_file(file))
    names = llama_backend.tensor_names(arch, blocks)
    tensors: dict[str, Any] = {}
    while weights:  # each float32 weight is dropped once converted: the file's weights are held once, not twice
        key, value = weights.popitem()
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ExportError(f"The model's tensor {key} has no GGUF name for {arch}; GGUF export refused.")
        module = key.rsplit(".", 1)[0]
        value = llama_backend.gguf_rows(arch, module, value.astype(np.float32), heads, kv_heads)
        if arch in _NORM_PLUS_ONE and target.endswith("norm.weight"):
            value = value + 1.0
        tensors[target] = value
    if wanted is not None and "output.weight" in wanted and "output.weight" not in tensors:
        tensors["output.weight"] = tensors["token_embd.weight"]  # the base GGUF stores the tied output matrix
    if wanted is not None and set(tensors) != set(wanted):
        differ = sorted(set(tensors) ^ set(wanted))
        raise ExportError(f"The merged model's tensors don't match its base GGUF's (e.g. {', '.join(differ[:3])}); "
                          f"GGUF export refused.")
    for index, target in enumerate(sorted(tensors)):
        value = tensors.pop(target)  # the writer keeps the F16 / Q8_0 copy; the float32 one goes
        progress(0.1 + 0.8 * index / (index + 1 + len(tensors)), f"GGUF {gguf_type.upper()}: {target}")
        if value.ndim < 2:
            writer.add_tensor(target, np.ascontiguousarray(value, dtype=np.float32))
        elif gguf_type == "q8_0" and value.shape[-1] % _Q8_BLOCK == 0:
            quantized = gguf.quants.quantize(np.ascontiguousarray(value), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(target, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(target, np.ascontiguousarray(value, dtype=np.float16))
    progress(0.95, f"Writing {out.name}…")
    with staged_file(out) as scratch:
        writer.write_header_to_file(path=scratch)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out


_NOT_COPIED = ("GGUF.", "general.architecture", "general.file_type", "general.alignment",
               "general.quantization_version", "general.name")
"""Template keys not copied: the file's own header fields, and what the writer sets for the export itself."""


def _copy_template(template: Path, writer: Any) -> list[str]:
    """Copy every setting and tokenizer key of the base's GGUF into ``writer``; returns its tensor names.

    ``gguf.GGUFReader`` is slow on a 262k-token vocabulary (about a minute for Gemma) but gives each key's exact GGUF
    type, so the copy is the same file a converter would write."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(template)
    for key, field in reader.fields.items():
        if key.startswith(_NOT_COPIED):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), kind, sub_type=sub)
    return [tensor.name for tensor in reader.tensors]


def _write_settings(writer: Any, config: dict[str, Any], arch: str, heads: int, kv_heads: int) -> None:
    """A Llama or Qwen2 model's GGUF settings from its config.json (what llama.cpp's converter writes for them)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ExportError(f"GGUF export doesn't cover {rope.get('rope_type') or rope.get('type')} rope scaling.")
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_freq_base(float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)


def llama_pre_tokenizer(tokenizer: Any) -> str | None:
    """llama.cpp's name for the Hugging Face ``tokenizer``'s pre-tokenizer (``smollm``, ``qwen2``, ``llama-bpe``…),
    found as its converter finds it (:data:`LLAMA_PRE_TOKENIZERS`), or None for a tokenizer not listed there."""
    ids = tokenizer.encode(_PRE_TOKENIZER_CHECK)
    return LLAMA_PRE_TOKENIZERS.get(hashlib.sha256(str(ids).encode()).hexdigest())


def _write_tokenizer(writer: Any, folder: Path) -> None:
    """A byte-level BPE tokenizer's GGUF keys (llama.cpp's ``gpt2`` model): tokens by id, their types, the merges,
    the special ids, the pre-tokenizer name (:func:`llama_pre_tokenizer`; ``default`` when unknown — the export's
    result warns) and the chat template. Only llama.cpp's own tokenizing reads the name: the app tokenizes with the
    Hugging Face tokenizer on both backends."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    state = json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") else {}
    model = state.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(state.get("pre_tokenizer")):
        raise ExportError("GGUF export builds byte-level BPE tokenizers only (Llama/SmolLM2, Qwen2); this one is "
                          f"{model.get('type', 'unknown')}. Export the Hugging Face folder alone.")
    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise ExportError("The tokenizer's ids have gaps; GGUF export refused.")
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(llama_pre_tokenizer(tokenizer) or "default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])])
    for add, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                          (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_unk_token_id, tokenizer.unk_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(tokenizer.bos_token_id is not None and
                             tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id])
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m playground.runs.export_model RUN_OR_ADAPTER [--out DIR] [--gguf f16|q8_0] [--data-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m playground.runs.export_model", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run's name (in DATA_DIR/runs), a run folder or a LoRA adapter folder")
    parser.add_argument("--out", type=Path, help="output folder (default: DATA_DIR/models/<run>-merged)")
    parser.add_argument("--gguf", choices=("f16", "q8_0"), help="also write a GGUF file of this type in the folder")
    parser.add_argument("--data-dir", type=Path, help="the app's data folder (default: the app's default)")
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()

    def say(fraction: float, text: str) -> None:
        print(f"[{fraction:4.0%}] {text}", flush=True)

    try:
        result = export_run(settings, args.run, args.out, args.gguf or "none", progress=say)
    except ExportError as error:
        print(f"Refused: {error}", file=sys.stderr)
        return 2
    print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
