"""Loading: turn a ModelSpec into a ready (model, tokenizer) and keep recently used models in memory.

- Packaged GGUF weights are imported once (dequantized by transformers' GGUF support) into safetensors under the
  data dir; every later load reads that cache, which takes seconds instead of most of a minute.
- Device is CUDA when present, else CPU; dtype is a choice; 4-bit NF4 goes through bitsandbytes (CPU too).
- LoRA adapters are applied with PEFT.
- A packaged GGUF model (and an adapter trained on it) runs on llama.cpp when ``llama-cpp-python`` is installed and
  the options allow it (:func:`choose_backend`): no import, only the tokenizer is read once (seconds), and decoding
  is faster. Everything else, and all training, runs on transformers.
- :class:`ModelCache` keeps loaded models in least-recently-used order within a memory budget.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from playground.core.files import staged_folder
from playground.core.settings import Settings
from playground.models import preparation
from playground.models.catalog import PACKAGED, ModelKind, ModelSpec, PackagedModel, is_gguf_file

DType = Literal["auto", "float32", "bfloat16", "float16"]
Quant = Literal["none", "4bit"]
Backend = Literal["auto", "transformers", "llama.cpp"]
BACKENDS: tuple[str, ...] = ("auto", "transformers", "llama.cpp")
Progress = Callable[[str], None]

_IMPORT_DONE = "import-complete.json"
IMPORT_FORMAT = 2
"""Raised whenever an import's output changes, so a folder imported by older code is imported again
(it is part of the folder's name). 2: the GGUF's control tokens are marked special in the saved tokenizer."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is meant for the user."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load: data type and quantization. Device is automatic (CUDA when present)."""

    dtype: DType = "auto"
    """auto = bfloat16/float16 on CUDA, float32 on CPU."""
    quant: Quant = "none"
    """4bit = NF4 weights via bitsandbytes (QLoRA's format), on CUDA or CPU."""
    backend: Backend = "auto"
    """What runs the model: auto = llama.cpp for a packaged GGUF model (and its adapters) when it is installed and
    the dtype and quantization are left at auto/none on a CPU, else transformers. See :func:`choose_backend`."""

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.quant not in ("none", "4bit"):
            raise ValueError(f"quant must be none or 4bit, got {self.quant!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


@dataclass
class LoadedModel:
    """A model ready to generate, with what the UI needs to know about it."""

    spec: ModelSpec
    options: LoadOptions
    model: Any
    tokenizer: Any
    device: str
    kind: ModelKind
    context_length: int
    footprint_bytes: int
    load_seconds: float = 0.0
    backend: str = "transformers"
    """What runs it: ``transformers`` (``model`` is a PreTrainedModel) or ``llama.cpp`` (a LlamaRunner)."""
    eos_token_ids: tuple[int, ...] = ()
    """Token ids that end an answer: the generation config's and the tokenizer's end-of-sequence tokens."""


def import_backends() -> None:
    """Import torch, transformers and peft once, up front.

    transformers resolves its classes lazily, and two threads resolving them at the same moment (both panes
    loading at once) can fail with ImportError; resolving them once under the cache's lock avoids that. The app
    also calls this in the background at start-up, so the first Send does not pay for the import.
    """
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        GenerationConfig,
        GgufConfig,
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        StoppingCriteriaList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )


def pick_device() -> str:
    """The device this process loads models on: ``"cpu"`` without CUDA, ``"cuda"`` in a single process, and under a
    multi-process launch (``accelerate launch``) ``"cuda:N"``, N the process's local rank, so every rank builds its
    model on its own GPU (see :func:`playground.core.distributed.local_device`). Compare its type, not the string, with
    ``"cuda"``."""
    import torch

    from playground.core.distributed import local_device

    return local_device(torch.cuda.device_count() if torch.cuda.is_available() else 0)


FP16_OVERFLOWS = frozenset({"gemma2", "gemma3", "gemma3_text"})
"""Model types whose activations overflow float16's range (Gemma 2 and 3 give NaN or empty answers in fp16:
transformers issue 36822): on a card without bf16 they run in float32 rather than fp16."""


def resolve_dtype(dtype: DType, device: str, model_type: str = "") -> Any:
    """The torch dtype for a LoadOptions dtype on ``device``. ``auto``: float32 on a CPU; on a GPU bfloat16 where the
    card computes in it (compute capability 8.0 and up: Ampere, Ada, Hopper…; ROCm) and float16 on older cards (T4,
    RTX 20-series, V100) — float32 there for a ``model_type`` that overflows fp16 (:data:`FP16_OVERFLOWS`).
    ``torch.cuda.is_bf16_supported()`` alone says True on those older cards too, because by default it counts bf16
    they only emulate — slowly — hence ``including_emulation=False``."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return torch.bfloat16
            return torch.float32 if model_type in FP16_OVERFLOWS else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def config_model_type(location: str) -> str:
    """The ``model_type`` of the model at ``location`` (a folder, or a hub id already downloaded); "" if unreadable."""
    from transformers import AutoConfig

    try:
        return str(AutoConfig.from_pretrained(location).model_type)
    except (OSError, ValueError):
        return ""


def compute_autocast(device: Any, dtype: Any) -> Any:
    """Autocast to ``dtype`` on ``device``'s type when it is bf16 or fp16, else a no-op: how a model whose unquantized
    or trainable weights stay float32 (a 4-bit base after :func:`upcast_unquantized`, LoRA master weights, a score
    head) computes in the training precision, as accelerate runs the TRL stages. Training, PPO's roles and the Reward
    tab's scoring all use it, so a reward model scores as it trained."""
    import contextlib

    import torch

    if dtype not in (torch.bfloat16, torch.float16):
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(error).lower()


# ---------------------------------------------------------------------------------------------- GGUF import


def imported_dir(package: PackagedModel, settings: Settings) -> Path:
    """Where this package version's weights live as safetensors once imported (by this :data:`IMPORT_FORMAT`)."""
    return settings.import_cache_dir / f"{package.key}-{package.version()}-import{IMPORT_FORMAT}"


def gguf_metadata(gguf_file: Path) -> dict[str, Any]:
    """A GGUF file's metadata keys and values (string arrays — the vocabulary, the merges — as their length only).

    transformers' own header reader walks the file with ``struct`` in well under a second; the ``gguf`` package's
    ``GGUFReader`` builds a numpy view per token and takes over a minute on Gemma's 262k-token vocabulary."""
    from transformers.integrations.gguf.reader import read_gguf_metadata

    return read_gguf_metadata(str(gguf_file))[0]


def gguf_control_token_ids(gguf_file: Path) -> list[int]:
    """Ids of the tokens a GGUF's token types mark CONTROL or UNKNOWN: markup for the model, never text it writes."""
    from gguf import TokenType

    kinds = gguf_metadata(gguf_file).get("tokenizer.ggml.token_type") or []
    return [i for i, kind in enumerate(kinds) if kind in (TokenType.CONTROL, TokenType.UNKNOWN)]


def mark_control_tokens(tokenizer: Any, ids: list[int], extra: tuple[str, ...] = ()) -> int:
    """Make the tokens ``ids`` and the tokens named in ``extra`` special in ``tokenizer``; return how many changed.

    Special tokens are what ``decode(..., skip_special_tokens=True)`` leaves out, so a control token the model
    generates never reaches an answer, a vote or an export. Ids and vocabulary size stay as they were (checked:
    a tokenizer that disagreed would silently change every id the model was trained on).
    """
    from transformers import AddedToken

    size = len(tokenizer)
    wanted = list(dict.fromkeys(ids))
    for token in extra:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != token:
            raise ModelLoadError(f"The tokenizer has no token {token!r} to mark as a control token.")
        wanted.append(token_id)
    decoder = tokenizer.added_tokens_decoder
    todo = [i for i in dict.fromkeys(wanted) if not (i in decoder and decoder[i].special)]
    if not todo:
        return 0
    names = tokenizer.convert_ids_to_tokens(todo)
    tokenizer.add_special_tokens(
        {"extra_special_tokens": [AddedToken(name, special=True, normalized=False) for name in names]},
        replace_extra_special_tokens=False,
    )
    if len(tokenizer) != size or tokenizer.convert_tokens_to_ids(names) != todo:
        raise ModelLoadError("Marking the control tokens special changed the tokenizer's ids; import refused.")
    return len(todo)


def gguf_home(package: PackagedModel, settings: Settings) -> Path:
    """Where a package's GGUF is kept when it has to be assembled from parts (see :func:`packaged_gguf`)."""
    return settings.import_cache_dir / f"{package.key}-{package.version()}-gguf"


def packaged_gguf(package: PackagedModel, settings: Settings, progress: Progress = lambda _: None) -> Path:
    """The package's GGUF file on disk: the package's own file, or — for a model split over several wheels, whose
    ``locate`` assembles it — the file assembled once under the data dir (written beside, then renamed in)."""
    if not package.installed():
        raise ModelLoadError(f"{package.title} is not installed. Install it with: {package.install}")
    home = gguf_home(package, settings)
    if home.is_dir() and (found := sorted(home.glob("*.gguf"))):
        return found[0]
    settings.import_cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.import_cache_dir, prefix=f".{package.key}-gguf-") as scratch_name:
        scratch = Path(scratch_name)
        progress(f"Locating {package.title}'s GGUF file (joining its parts the first time)")
        located = Path(package.locate(scratch))
        if scratch not in located.parents:  # the package's own file: use it where it is
            return located
        try:
            scratch.rename(home)
        except OSError:  # another process assembled it first; keep theirs
            pass
    return sorted(home.glob("*.gguf"))[0]


def _gguf_tokenizer(package: PackagedModel, gguf: Path) -> tuple[Any, int]:
    """The Hugging Face tokenizer transformers reads from the GGUF, its control tokens marked special; and how many
    were marked. Both backends use this tokenizer, so they render and tokenize a prompt identically."""
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    # The class by name: AutoTokenizer would first read the whole GGUF with the slow reader only to learn the
    # model type (a minute for Gemma); the class is the one AutoTokenizer picks for this package (a test checks).
    tokenizer_class = tokenizer_class_from_name(package.tokenizer_class)
    tokenizer = tokenizer_class.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return tokenizer, mark_control_tokens(tokenizer, gguf_control_token_ids(gguf), package.extra_control_tokens)


def tokenizer_dir(package: PackagedModel, settings: Settings) -> Path:
    """Where the tokenizer alone is kept for the llama.cpp backend (by package version and :data:`IMPORT_FORMAT`)."""
    return settings.import_cache_dir / f"{package.key}-{package.version()}-tokenizer{IMPORT_FORMAT}"


def import_tokenizer(package: PackagedModel, settings: Settings, progress: Progress = lambda _: None) -> Path:
    """A folder with the package's tokenizer and generation config, read from its GGUF once (seconds; the weights
    stay in the GGUF for llama.cpp). A finished full import already holds them, so it is used when present."""
    full = imported_dir(package, settings)
    if (full / _IMPORT_DONE).is_file():
        return full
    target = tokenizer_dir(package, settings)
    if (target / _IMPORT_DONE).is_file():
        return target
    from transformers import GenerationConfig

    started = time.monotonic()
    gguf = packaged_gguf(package, settings)
    progress(f"Reading {package.title}'s tokenizer from its GGUF (first time only)")
    tokenizer, marked = _gguf_tokenizer(package, gguf)
    metadata = gguf_metadata(gguf)
    # The generation config a full import would save (transformers makes it from the GGUF's token ids).
    keys = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id", "pad_token_id": "padding_token_id"}
    generation = GenerationConfig(**{name: metadata[f"tokenizer.ggml.{key}"] for name, key in keys.items()
                                     if f"tokenizer.ggml.{key}" in metadata})
    try:
        with staged_folder(target, replace=False) as out:
            tokenizer.save_pretrained(out)
            generation.save_pretrained(out)
            (out / _IMPORT_DONE).write_text(json.dumps({
                "package": package.pip_name, "version": package.version(), "gguf": gguf.name,
                "format": IMPORT_FORMAT, "control_tokens_marked": marked,
                "seconds": round(time.monotonic() - started, 1)}, indent=2))
    except FileExistsError:  # another process published its finished folder first (a folder only appears whole)
        pass
    return target


def import_packaged(package: PackagedModel, settings: Settings, progress: Progress = lambda _: None) -> Path:
    """Import a packaged GGUF into a safetensors folder once; return the folder (at once if already imported).

    The import writes into a temporary folder beside the target and renames it, so an interrupted import
    leaves nothing that looks finished.
    """
    target = imported_dir(package, settings)
    if (target / _IMPORT_DONE).is_file():
        return target
    if not package.installed():
        raise ModelLoadError(f"{package.title} is not installed. Install it with: {package.install}")
    target.parent.mkdir(parents=True, exist_ok=True)
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    started = time.monotonic()
    if target.exists() and not (target / _IMPORT_DONE).is_file():
        shutil.rmtree(target)  # unfinished (left by older code, which wrote in place): never loaded
    try:
        with staged_folder(target, replace=False) as out:
            progress(f"Importing {package.title} from GGUF (first time only, about a minute): locating the weights")
            gguf = packaged_gguf(package, settings, progress)
            progress(f"Importing {package.title}: reading the tokenizer (1/3)")
            tokenizer, marked = _gguf_tokenizer(package, gguf)
            progress(f"Importing {package.title}: dequantizing the weights (2/3)")
            # `dequantize=True` makes transformers unpack every block into dense tensors and drop its GGUF quantizer,
            # so the model is an ordinary one that `save_pretrained` accepts (a GGUF-quantized one refuses).
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent),
                gguf_file=gguf.name,
                dtype=torch.float32,
                quantization_config=GgufConfig(dequantize=True),
            )
            progress(f"Importing {package.title}: saving as safetensors (3/3)")
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            record = {"package": package.pip_name, "version": package.version(), "gguf": gguf.name,
                      "format": IMPORT_FORMAT, "control_tokens_marked": marked,
                      "seconds": round(time.monotonic() - started, 1)}
            (out / _IMPORT_DONE).write_text(json.dumps(record, indent=2))
            del model
    except FileExistsError:  # another process finished first; keep theirs
        return target
    remove_stale_imports(package, settings)
    return target


def remove_stale_imports(package: PackagedModel, settings: Settings) -> list[Path]:
    """Delete this package's imports other than the current one (an older package version, or an import by older
    code: :data:`IMPORT_FORMAT`), which nothing loads any more and which take hundreds of MB; returns them.
    Unfinished imports (hidden scratch folders) are left to the process writing them."""
    current = {imported_dir(package, settings), tokenizer_dir(package, settings), gguf_home(package, settings)}
    own = re.compile(rf"{re.escape(package.key)}-\d")  # the key, then a version: not another key it begins
    stale = [p for p in settings.import_cache_dir.glob(f"{package.key}-*")
             if own.match(p.name) and p.is_dir() and not p.is_symlink() and p not in current]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


# ---------------------------------------------------------------------------------------------- loading


def _check_local_folder(folder: Path) -> None:
    if is_gguf_file(str(folder)):  # an exported GGUF: its tokenizer is the folder's around it
        if not (folder.parent / "tokenizer_config.json").is_file():
            raise ModelLoadError(f"{folder.name} has no tokenizer beside it (tokenizer_config.json in "
                                 f"{folder.parent}): the app runs a GGUF file only inside its exported folder.")
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json).")
    if not any(folder.glob("*.safetensors")):
        raise ModelLoadError(
            f"{folder} has no .safetensors weights. The playground only loads safetensors "
            f"(pickled .bin files can run code); convert the model with save_pretrained first."
        )


def weights_location(spec: ModelSpec, settings: Settings, progress: Progress = lambda _: None) -> str:
    """Folder path or hub id that ``from_pretrained`` reads for this spec's source."""
    if spec.source_type == "endpoint":
        check_available(spec)  # raises: an endpoint has no weights here
    if spec.source_type == "package":
        return str(import_packaged(PACKAGED[spec.source], settings, progress))
    if spec.source_type == "local":
        _check_local_folder(Path(spec.source))
    return spec.source


def check_available(spec: ModelSpec) -> None:
    """Cheaply (nothing is loaded or imported) make sure the spec's weights can be had: a packaged model is
    installed, a local folder holds a model in safetensors, a hub id is in the local Hugging Face cache or — when
    the hub may be used — exists there. Raises :class:`ModelLoadError` saying what to pick instead."""
    if spec.source_type == "endpoint":  # its weights are on the server: it answers (Compare, Rate, judge) only
        raise ModelLoadError(f"{spec.name} is an OpenAI-compatible endpoint: it answers over HTTP, but there are no "
                             f"weights here to load or train. Pick a packaged model, a model folder or a hub id.")
    if spec.source_type == "package":
        if not PACKAGED[spec.source].installed():
            raise ModelLoadError(f"{spec.source} is not installed. Install it with: {PACKAGED[spec.source].install}")
    elif spec.source_type == "local":
        _check_local_folder(Path(spec.source))
    else:
        import huggingface_hub

        if isinstance(huggingface_hub.try_to_load_from_cache(spec.source, "config.json"), str):
            return
        advice = "Pick a packaged model (gemma-3-270m, smollm2-135m-instruct), a local model folder, or a hub id " \
                 "that has been downloaded before."
        if huggingface_hub.is_offline_mode():
            raise ModelLoadError(f"{spec.source} is not in the local Hugging Face cache and the hub is off "
                                 f"(HF_HUB_OFFLINE is set), so it can't be loaded. {advice}")
        try:
            exists = huggingface_hub.repo_exists(spec.source)
        except Exception as error:  # no network, proxy, rate limit…: the run would fail the same way
            raise ModelLoadError(f"{spec.source} is not in the local Hugging Face cache and the hub can't be "
                                 f"reached ({type(error).__name__}). {advice}") from error
        if not exists:
            raise ModelLoadError(f"There is no model {spec.source} on the Hugging Face hub (or it is private). "
                                 f"{advice}")


def _hub_error(spec: ModelSpec, error: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"Couldn't load {spec.source} from the Hugging Face hub: it isn't in the local cache and the hub "
        f"can't be reached (offline?). Pick a packaged model (gemma-3-270m, smollm2-135m-instruct) or a local "
        f"folder. Details: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    )


def quantization_config(compute_dtype: Any) -> Any:
    """The one 4-bit setting every path uses (QLoRA's: NF4 weights, double quantization of the block scales,
    matmuls in ``compute_dtype``), so a model is quantized alike for Compare, training, reward scoring and PPO.

    Under DeepSpeed ZeRO-3 (a run launched with ``assets/accelerate/deepspeed-zero3.yaml``) the packed 4-bit weights
    are stored in ``compute_dtype`` tensors rather than bytes (``bnb_4bit_quant_storage``): ZeRO-3 splits every weight
    across the GPUs and casts the model to bf16, which must leave a packed weight's bits as they are — PEFT's
    DeepSpeed guide, "QLoRA and ZeRO-3". Only the container changes: the numbers are the same."""
    from transformers import BitsAndBytesConfig

    from playground.core.distributed import deepspeed_zero_stage

    storage = {"bnb_4bit_quant_storage": compute_dtype} if deepspeed_zero_stage() == 3 else {}
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype, **storage)


def keep_4bit_differentiable(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference.

    On a CPU with AVX-512 BF16 (a current Xeon), a ``Linear4bit`` that runs once in eval mode without gradients (an
    eval pass, PPO's sampling, scoring) repacks its weight into a layout only ``gemv_4bit`` reads, and from then on
    every forward, in training too, goes through that kernel. It has no backward: gradients stop flowing through the
    frozen base, and every LoRA below the last layer gets a wrong gradient (cosine 0.005 to the true one on a tiny
    model, bitsandbytes 0.50). Its numerics differ too (reward scores 3 % apart from the unpacked path's), so a
    reward model would score differently in the Reward tab than in its training and in PPO. So every model that
    trains, and every reward model, keeps the differentiable path; generation in Compare keeps the faster kernel."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def upcast_unquantized(model: Any) -> None:
    """The parameters a 4-bit model keeps unquantized (norms, embeddings, a score head) in float32, as PEFT's
    ``prepare_model_for_kbit_training`` leaves a model that trains. Done here for every 4-bit model that trains or
    scores, so a reward model scores with the precision it trained with (on a GPU, bf16 norms would differ); Compare's
    generation keeps them in the compute dtype (half their memory)."""
    import torch

    for param in model.parameters():
        if param.dtype in (torch.float16, torch.bfloat16) and type(param).__name__ != "Params4bit":
            param.data = param.data.float()


Head = Literal["causal", "score"]
"""What the base model is built as: a causal LM (generation, SFT, DPO, PPO) or a one-output sequence classifier
(a reward model: the causal LM's backbone plus a linear score head on the last token)."""


def build_model(spec: ModelSpec, settings: Settings, options: LoadOptions = LoadOptions(), head: Head = "causal",
                adapter: str | Path | None = None, training: bool = False,
                progress: Progress = lambda _: None) -> tuple[Any, Any]:
    """The only place a model is built from its weights: (model, tokenizer) for ``spec``'s source.

    Every path (Compare, the training stages, reward scoring, PPO, the benchmarks) comes here, so the same spec and
    options give the same numerics everywhere: dtype from :func:`resolve_dtype`, 4-bit from
    :func:`quantization_config`, placed whole on :func:`pick_device`, safetensors only (pickles can run code). The
    tokenizer gets a pad token (its EOS when it has none) and the model's config the same pad id (a score head finds
    the last token by it). ``adapter`` (a LoRA folder, or ``spec.adapter`` when None) is applied frozen for
    inference; a training stage passes a bare spec and ``training=True`` and adds its own trainable adapter. Errors
    are the libraries'."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    device = pick_device()
    location = weights_location(spec, settings, progress)
    kwargs: dict[str, Any] = {"device_map": {"": device}, "use_safetensors": True}
    if is_gguf_file(location):  # an exported GGUF: transformers imports its weights; the tokenizer is the folder's
        location, kwargs = str(Path(location).parent), {"device_map": {"": device}, "gguf_file": Path(location).name}
    needs_type = options.dtype == "auto" and memory_of(device) == "gpu"  # fp16 or not, on a card without bf16
    kwargs["dtype"] = dtype = resolve_dtype(options.dtype, device,
                                            config_model_type(location) if needs_type else "")
    progress(f"Loading {spec.name} on {device}…")
    if options.quant == "4bit":
        kwargs["quantization_config"] = quantization_config(dtype)
    if head == "score":
        kwargs["num_labels"] = 1
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_class = AutoModelForSequenceClassification if head == "score" else AutoModelForCausalLM
    model = model_class.from_pretrained(location, **kwargs)
    if options.quant == "4bit" and (training or head == "score"):  # a reward model scores as it trained
        keep_4bit_differentiable(model)
        upcast_unquantized(model)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    adapter = adapter if adapter is not None else spec.adapter
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model, tokenizer


def resolved_kind(spec: ModelSpec, tokenizer: Any) -> ModelKind:
    """The kind a loaded model is prompted as: the spec's; else a packaged model's; else instruct when its tokenizer
    has a chat template, base when not. Every backend, and a merged export's record of it, decides it here."""
    if spec.kind is not None:
        return spec.kind
    if spec.source in PACKAGED:
        return PACKAGED[spec.source].kind
    return "instruct" if getattr(tokenizer, "chat_template", None) else "base"


def end_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """The ids that end an answer: the generation config's end-of-sequence ids, then the tokenizer's EOS."""
    eos = generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def choose_backend(spec: ModelSpec, options: LoadOptions, device: str | None = None) -> tuple[str, str]:
    """(backend, why) for loading ``spec`` with ``options``, decided cheaply (nothing is loaded).

    llama.cpp runs a packaged GGUF model, with or without a plain LoRA adapter, when ``llama-cpp-python`` is
    installed, no CUDA GPU is present (the build here is for the CPU) and the options leave dtype and quantization
    at auto/none (the GGUF's own 4-bit weights are what runs). ``options.backend`` forces a choice: transformers
    always works; llama.cpp where it can't run raises :class:`ModelLoadError` saying why. ``device`` skips asking
    torch (whose import takes seconds) when the caller knows it or only estimates."""
    from playground.models import llama_backend

    if options.backend == "transformers":
        return "transformers", "chosen"
    why = ""
    if spec.source_type != "package" and not is_gguf_file(spec.source):
        why = "llama.cpp runs only GGUF models (the packaged ones, or an exported GGUF file)"
    elif options.quant != "none" or options.dtype != "auto":
        why = f"{options.quant if options.quant != 'none' else options.dtype} weights need transformers"
    elif not llama_backend.installed():
        why = "llama-cpp-python is not installed (bash scripts/setup.sh --llama-cpp)"
    elif spec.adapter and (reason := llama_backend.unsupported_adapter(Path(spec.adapter))):
        why = f"the adapter can't be converted: {reason}"
    elif memory_of(device or pick_device()) == "gpu":
        why = "a CUDA GPU is present"
    if not why:
        return "llama.cpp", ""
    if options.backend == "llama.cpp":
        raise ModelLoadError(f"{spec.name} can't run on llama.cpp: {why}. Pick the transformers backend.")
    return "transformers", why


def shared_backend(specs: list[ModelSpec], options: LoadOptions) -> LoadOptions:
    """``options`` with the backend fixed so that models sharing a source run on the same backend: a base and its
    tuned adapter compared on different backends (4-bit GGUF weights vs float32) would not be a controlled
    comparison. When two of them share a source and one needs transformers, all of them use it (one options value
    serves the whole comparison or batch)."""
    if options.backend != "auto":
        return options
    chosen = {spec: choose_backend(spec, options)[0] for spec in specs}
    for spec, backend in chosen.items():
        if backend == "transformers" and any(o.source == spec.source and chosen[o] != backend for o in specs):
            return LoadOptions(options.dtype, options.quant, "transformers")
    return options


def _load_llama(spec: ModelSpec, settings: Settings, options: LoadOptions, progress: Progress) -> LoadedModel | None:
    """A packaged model (and adapter) on llama.cpp; None when llama.cpp can't run on this machine (the caller falls
    back to transformers, unless llama.cpp was asked for by name)."""
    from transformers import AutoTokenizer, GenerationConfig

    from playground.models import llama_backend

    started = time.monotonic()
    package = PACKAGED.get(spec.source)  # None: an exported GGUF file, its tokenizer in the folder around it
    gguf = packaged_gguf(package, settings, progress) if package else Path(spec.source)
    progress(f"Trying llama.cpp on {spec.name} (once)…")
    if (problem := llama_backend.runs_here(gguf)) is not None:
        if options.backend == "llama.cpp":
            raise ModelLoadError(problem)
        progress(f"{problem}; using transformers")
        return None
    if package is None:
        _check_local_folder(gguf)
    folder = import_tokenizer(package, settings, progress) if package else gguf.parent
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    info = llama_backend.gguf_info(gguf)
    lora = None
    if spec.adapter:
        progress(f"Converting {spec.name}'s adapter for llama.cpp (once)…")
        try:
            lora = llama_backend.converted_lora(Path(spec.adapter), gguf, info, settings.import_cache_dir / "lora-gguf")
        except llama_backend.BackendError as error:
            if options.backend == "llama.cpp":
                raise ModelLoadError(str(error)) from error
            progress(f"{error} Using transformers.")
            return None
    progress(f"Loading {spec.name} on llama.cpp…")
    try:
        # The whole trained context would cost GBs of KV cache for prompts of a few hundred tokens; 8192 is plenty.
        runner = llama_backend.LlamaRunner(gguf, context=min(info.context_length, 8192), lora=lora, info=info)
    except llama_backend.BackendError as error:
        raise ModelLoadError(str(error)) from error
    eos_ids = end_token_ids(GenerationConfig.from_pretrained(str(folder)), tokenizer)
    return LoadedModel(spec=spec, options=options, model=runner, tokenizer=tokenizer, device="cpu",
                       kind=resolved_kind(spec, tokenizer),
                       context_length=runner.context,
                       footprint_bytes=runner.footprint_bytes(), load_seconds=time.monotonic() - started,
                       backend="llama.cpp", eos_token_ids=tuple(eos_ids))


def load(
    spec: ModelSpec,
    settings: Settings,
    options: LoadOptions = LoadOptions(),
    progress: Progress = lambda _: None,
) -> LoadedModel:
    """Load a spec's model and tokenizer on the best device and backend (:func:`choose_backend`), with its adapter;
    raise ModelLoadError with advice."""
    started = time.monotonic()
    device = pick_device()
    try:
        backend, _ = choose_backend(spec, options)
        if backend == "llama.cpp" and (loaded := _load_llama(spec, settings, options, progress)) is not None:
            return loaded
        model, tokenizer = build_model(spec, settings, options, progress=progress)
    except ModelLoadError:
        raise
    except Exception as error:
        if is_out_of_memory(error):
            free_memory()
            raise ModelLoadError(
                f"Out of memory while loading {spec.name} on {device}. Unload other models, try 4-bit, "
                f"or pick a smaller model."
            ) from error
        if spec.source_type == "hub" and isinstance(error, (OSError, ConnectionError)):
            raise _hub_error(spec, error) from error
        raise ModelLoadError(f"Couldn't load {spec.name}: {type(error).__name__}: {error}") from error
    model.eval()
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    context = int(getattr(config, "max_position_embeddings", 0) or 2048)
    kind = resolved_kind(spec, tokenizer)
    eos_ids = end_token_ids(model.generation_config, tokenizer)
    return LoadedModel(
        spec=spec,
        options=options,
        model=model,
        tokenizer=tokenizer,
        device=device,
        kind=kind,
        context_length=context,
        footprint_bytes=int(model.get_memory_footprint()),
        load_seconds=time.monotonic() - started,
        eos_token_ids=tuple(eos_ids),
    )


def free_memory() -> None:
    """Return freed tensors to the OS / driver after a model is dropped."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def estimate_load_seconds(spec: ModelSpec, options: LoadOptions, settings: Settings) -> float:
    """Expected seconds to load ``spec`` now, counting the one-time work not cached yet (for the panes' ETA)."""
    try:
        backend, _ = choose_backend(spec, options, device="cpu")  # an estimate: not worth importing torch for
    except ModelLoadError:
        return preparation.MINIMUM_SECONDS
    if spec.source_type != "package":
        folder = Path(spec.source)
        weights = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20 if folder.is_dir() else \
            folder.stat().st_size / 2**20 if folder.is_file() else 500.0
        return preparation.estimate_seconds(0, False, False, weights)
    package = PACKAGED[spec.source]
    imported = (imported_dir(package, settings) / _IMPORT_DONE).is_file()
    if backend == "llama.cpp":
        has_tokenizer = imported or (tokenizer_dir(package, settings) / _IMPORT_DONE).is_file()
        return preparation.estimate_seconds(package.gguf_mb, not has_tokenizer, False, package.gguf_mb)
    return preparation.estimate_seconds(package.gguf_mb, False, not imported, package.gguf_mb * 4)


Memory = Literal["ram", "gpu"]
"""Where a loaded model's weights live, each with its own budget."""

GPU_SHARE = 0.7
"""Share of the card's memory the app's loaded models may take by default. The rest is for the CUDA context (about
0.5 GB), each answer's KV cache and activations."""


def memory_of(device: str) -> Memory:
    """The memory a model on ``device`` (``cpu``, ``cuda``, ``cuda:1``) takes: the GPU's or the machine's RAM."""
    return "gpu" if device.startswith("cuda") else "ram"


def gpu_total_bytes() -> int:
    """The memory of this process's GPU in bytes (0 without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


def over_budget(models: Sequence[tuple[tuple, Memory, int]], others: dict[Memory, int],
                budget: Callable[[Memory], int], keep: tuple | None = None) -> list[tuple]:
    """The models to unload so that each memory holds no more than its budget: ``models`` are (key, memory, bytes),
    least recently used first, and they go in that order, never ``keep`` (the model just loaded); ``others`` are
    bytes held outside the cache in each memory (the Reward tab's model), counted but not unloaded. A memory no model
    uses never asks for its budget (so a CPU-only app never asks the GPU's size)."""
    dropped: list[tuple] = []
    for memory in ("ram", "gpu"):
        mine = [(key, size) for key, where, size in models if where == memory]
        used = sum(size for _, size in mine) + others.get(memory, 0)
        if not used or used <= budget(memory):  # type: ignore[arg-type]
            continue
        for key, size in mine:
            if used <= budget(memory):  # type: ignore[arg-type]
                break
            if key != keep:
                dropped.append(key)
                used -= size
    return dropped


def _size(size: int) -> str:
    """Bytes for a message: GiB, MiB or KiB, whichever reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size / 2**10:.0f} KiB"


Holder = Callable[[], list[tuple[str, int]]]
"""Models held outside the cache: (device, bytes) for each one loaded now."""


class ModelCache:
    """Loaded models, least recently used first out, kept within the budget of the memory they live in: the RAM
    budget (``budget_bytes``, default ``Settings.memory_budget_gb``) for models on the CPU, the GPU budget
    (``gpu_budget_bytes``, default ``Settings.gpu_memory_budget_gb`` or :data:`GPU_SHARE` of the card) for models
    on the GPU. Models held elsewhere (the Reward tab's) count too (:meth:`count_also`).

    One instance per app. Models load one at a time; asking for a model that is loading waits for it.
    """

    def __init__(self, settings: Settings, budget_bytes: int | None = None,
                 gpu_budget_bytes: int | None = None) -> None:
        self.settings = settings
        self.budget_bytes = budget_bytes if budget_bytes is not None else int(settings.memory_budget_gb * 2**30)
        gpu_gb = settings.gpu_memory_budget_gb
        self._gpu_budget_bytes = gpu_budget_bytes if gpu_budget_bytes is not None else \
            int(gpu_gb * 2**30) if gpu_gb else None  # None: GPU_SHARE of the card, asked when a model is on it
        self._holders: list[Holder] = []
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _models
        # Loads run one at a time: from_pretrained patches process-wide torch state while it builds a model (weight
        # init functions, default dtype), and two loads at once (both panes on the first Send) produced a model
        # whose sampling hit NaNs. Serializing also makes two panes asking for the same model load it once.
        self._load_lock = threading.Lock()
        self.board = preparation.Board()
        """What each load is doing, for the panes (their percentage and ETA), whichever thread started it."""

    @staticmethod
    def key(spec: ModelSpec, options: LoadOptions) -> tuple:
        return (spec.source, spec.adapter, options.dtype, options.quant, options.backend)

    def get(self, spec: ModelSpec, options: LoadOptions = LoadOptions(),
            progress: Progress = lambda _: None) -> LoadedModel:
        """The loaded model for this spec, loading it (and evicting old ones past the budget) if needed.

        While another load runs (the start-up preparation, the other pane), ``progress`` hears what it is doing:
        that load's own line, percentage and ETA when it is this model, else what this one waits for."""
        key = self.key(spec, options)
        if (hit := self._lookup(key)) is not None:
            return hit
        said = None
        while not self._load_lock.acquire(timeout=0.5):
            if (hit := self._lookup(key)) is not None:  # loaded meanwhile (the preparation is on to the next one)
                return hit
            item = self.board.get(key)
            waiting = [p.name for p in self.board.active()]
            line = item.describe() if item is not None and item.finished is None and item.error is None else \
                f"waiting: {waiting[0]} is loading first" if waiting else "waiting for another model to load"
            if line != said:
                progress(line)
                said = line
        try:
            import_backends()
            if (hit := self._lookup(key)) is not None:  # loaded by another pane while this one waited
                return hit
            item = self.board.begin(key, spec.name, estimate_load_seconds(spec, options, self.settings))

            def relay(line: str) -> None:
                item.line = line
                progress(item.describe())

            try:
                loaded = load(spec, self.settings, options, relay)
            except BaseException as error:
                item.error = str(error) or type(error).__name__
                raise
            item.finished = time.monotonic()
            with self._lock:
                self._models[key] = loaded
                self._evict_over_budget(keep=key)
            return loaded
        finally:
            self._load_lock.release()

    def prepare(self, specs: list[ModelSpec], options: LoadOptions = LoadOptions()) -> threading.Thread:
        """Load ``specs`` in the background, quickest first (so the first answer can start soonest); each one's
        progress is on :attr:`board`, and a failure is recorded there (the pane says it when it is asked)."""
        estimates = {spec: estimate_load_seconds(spec, options, self.settings) for spec in dict.fromkeys(specs)}
        order = sorted(estimates, key=estimates.__getitem__)
        queued = 0.0
        for spec in order:  # announced at once, so each pane shows what it waits for (its turn included) at once
            key = self.key(spec, options)
            if self._lookup(key) is None:
                queued += estimates[spec]
                self.board.begin(key, spec.name, queued)

        def run() -> None:
            for spec in order:
                try:
                    self.get(spec, options)
                except Exception as error:  # noqa: BLE001 - recorded on the board; a Send shows the full message
                    item = self.board.get(self.key(spec, options))
                    if item is not None and item.finished is None and item.error is None:  # failed before its load
                        item.error = str(error) or type(error).__name__

        thread = threading.Thread(target=run, name="prepare-models", daemon=True)
        thread.start()
        return thread

    def _lookup(self, key: tuple) -> LoadedModel | None:
        """The loaded model for ``key`` (marked most recently used), or None."""
        with self._lock:
            if key not in self._models:
                return None
            self._models.move_to_end(key)
            return self._models[key]

    def warm_up(self) -> threading.Thread:
        """Import the ML libraries in a background thread, so the page answers first and the first Send is quicker."""

        def run() -> None:
            with self._load_lock:
                import_backends()

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        thread.start()
        return thread

    @property
    def gpu_budget_bytes(self) -> int:
        """The budget for models on the GPU (asks the card's size the first time, so it imports torch)."""
        if self._gpu_budget_bytes is None:
            self._gpu_budget_bytes = int(gpu_total_bytes() * GPU_SHARE)
        return self._gpu_budget_bytes

    def budget(self, memory: Memory) -> int:
        """The budget of ``memory`` in bytes."""
        return self.gpu_budget_bytes if memory == "gpu" else self.budget_bytes

    def count_also(self, holder: Holder) -> None:
        """Count the models ``holder`` keeps loaded (the Reward tab's reward model) against the budgets: the cache
        unloads its own models to make room for them. ``holder`` must not wait on a lock (it is asked under
        the cache's)."""
        self._holders.append(holder)

    def make_room(self) -> None:
        """Unload least recently used models until every memory is within its budget (after a holder loaded one)."""
        with self._lock:
            self._evict_over_budget(keep=None)

    @contextmanager
    def room_for(self, name: str, device: str, size: int) -> Iterator[None]:
        """Count ``size`` bytes on ``device`` as held outside the cache while the block runs (a model built for a
        job, not for answering: an export's float32 merge), unloading least recently used models first so that
        memory stays within its budget. Refuses (:class:`ModelLoadError`, naming the sizes, nothing unloaded)
        when ``size`` and the models held elsewhere don't fit in the budget even with the cache empty."""
        memory = memory_of(device)
        holder: Holder = lambda: [(device, size)]  # noqa: E731 - a constant, asked under the lock
        with self._lock:
            held = self._held_elsewhere().get(memory, 0)
            budget = self.budget(memory)
            if size + held > budget:
                also = f" (other tabs' models hold {_size(held)} of it)" if held else ""
                raise ModelLoadError(
                    f"{name} needs about {_size(size)} of {'GPU' if memory == 'gpu' else 'RAM'} and the app's "
                    f"memory budget is {_size(budget)}{also}. Start the app with a larger "
                    f"{'--gpu-memory-budget-gb' if memory == 'gpu' else '--memory-budget-gb'}, or run it outside "
                    f"the app.")
            self._holders.append(holder)
            self._evict_over_budget(keep=None)
        try:
            yield
        finally:
            with self._lock:
                self._holders.remove(holder)

    def _held_elsewhere(self) -> dict[Memory, int]:
        held: dict[Memory, int] = {}
        for holder in self._holders:
            for device, size in holder():
                held[memory_of(device)] = held.get(memory_of(device), 0) + size
        return held

    def _evict_over_budget(self, keep: tuple | None) -> None:
        """Under the lock: unload what :func:`over_budget` says."""
        models = [(key, memory_of(m.device), m.footprint_bytes) for key, m in self._models.items()]
        dropped = over_budget(models, self._held_elsewhere(), self.budget, keep)
        for key in dropped:
            del self._models[key]
        if dropped:
            free_memory()

    def used_bytes(self, memory: Memory | None = None) -> int:
        """Bytes the cache's models take (in ``memory`` only, when given)."""
        return sum(m.footprint_bytes for m in self.loaded() if memory is None or memory_of(m.device) == memory)

    def loaded(self) -> list[LoadedModel]:
        """Loaded models, least recently used first."""
        with self._lock:
            return list(self._models.values())

    def unload(self, spec: ModelSpec | None = None, options: LoadOptions | None = None) -> int:
        """Drop one model (or, with no arguments, all of them); return how many were dropped."""
        with self._lock:
            if spec is None:
                keys = list(self._models)
            else:
                keys = [k for k in self._models if k[:2] == (spec.source, spec.adapter)
                        and (options is None or k == self.key(spec, options))]
            for k in keys:
                del self._models[k]
        free_memory()
        return len(keys)

    def unload_memory(self, memory: Memory) -> list[str]:
        """Drop every model in ``memory`` (``gpu``: before a training run needs the card); returns their names."""
        with self._lock:
            keys = [key for key, m in self._models.items() if memory_of(m.device) == memory]
            names = [self._models[key].spec.name for key in keys]
            for key in keys:
                del self._models[key]
        if keys:
            free_memory()
        return names

    def describe(self) -> str:
        """One line per loaded model for the UI."""
        models = self.loaded()
        if not models:
            return "No models loaded."
        lines = [f"- {m.spec.name} ({m.backend} on {m.device}, "
                 f"{m.options.quant if m.options.quant != 'none' else m.options.dtype}, "
                 f"{m.footprint_bytes / 2**20:.0f} MiB)" for m in models]
        used = [f"{self.used_bytes(memory) / 2**30:.2f} of {self.budget(memory) / 2**30:.1f} GiB {name}"
                for memory, name in (("ram", "RAM"), ("gpu", "GPU")) if self.used_bytes(memory)]
        return f"Loaded ({', '.join(used)}):\n" + "\n".join(lines)
