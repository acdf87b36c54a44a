"""The llama.cpp backend: run a packaged GGUF model, and a LoRA adapter trained on it, straight from its file.

Why: the packaged models ship as 4-bit GGUF files. With transformers they must first be dequantized into float32
safetensors (Gemma 3 270M: about two minutes, once), and then every generated token reads all those float32 weights
(1 GB for Gemma). llama.cpp, through ``llama-cpp-python``, maps the 4-bit file as it is and decodes four to five
times faster on 2 CPU cores (docs/BENCHMARKS.md), with no import step. It is optional: without it (or for 4-bit/bf16 options, hub models,
local folders, a GPU, training) everything runs on transformers as before.

What llama.cpp does here is deliberately narrow: it computes next-token logits. Everything around them — the
prompt (rendered and tokenized by the same Hugging Face tokenizer the transformers backend uses), the context
fitting, the repetition penalty and the seeded sampling — is the same code on both backends (``generation.py``), so
a prompt, a seed and a setting mean the same thing on either. A base model and its tuned adapter always run on the
same backend: a PEFT LoRA adapter is converted to a GGUF LoRA adapter (:func:`lora_to_gguf`) and llama.cpp applies
it beside the base's own weights.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import re
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.models.adapters import AdapterError, adapter_config

NAME = "llama.cpp"
CONVERTER_VERSION = 1
"""Part of a converted adapter's cache name: raised whenever :func:`lora_to_gguf`'s output changes."""

#: Architectures whose GGUF conversion permutes the rows of the attention query and key weights (llama.cpp's
#: converter reorders them for its rotary embedding): a LoRA's B matrix (out × r) must be permuted the same way.
_PERMUTES_QK = {"llama"}
#: Architectures the LoRA conversion is checked for against transformers (``tests/test_llama_backend.py`` and the
#: agreement figures in docs/BENCHMARKS.md). Another architecture falls back to transformers rather than risk a
#: silently wrong conversion.
SUPPORTED_ARCHITECTURES = {"llama", "gemma3"}


_LORA_KEY = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")
#: Output layers the packaged models tie to their token embeddings: a GGUF has no separate tensor to adapt.
_UNTIED_OUTPUTS = {"lm_head", "embed_tokens"}


class BackendError(RuntimeError):
    """llama.cpp can't run this model here; the message says why (the caller falls back to transformers)."""


def installed() -> bool:
    """Whether ``llama-cpp-python`` is installed (found without importing it: the import loads a native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=16, n_batch=16, verbose=False)
llm.eval([llm.token_bos() if llm.token_bos() >= 0 else 0, 1])
"""
_probed: dict[str, str | None] = {}
_probe_lock = threading.Lock()


def runs_here(gguf: Path) -> str | None:
    """None when llama.cpp evaluates ``gguf`` on this machine, else why not — checked once per file per process,
    in a child process. A llama.cpp built for CPU features this machine lacks dies with "Illegal instruction"
    (SIGILL) on its first computation, which would take the whole app down; the child takes it instead."""
    key = str(gguf)
    with _probe_lock:
        if key not in _probed:
            try:
                done = subprocess.run([sys.executable, "-c", _PROBE, key], capture_output=True, text=True, timeout=300)
                if done.returncode == 0:
                    _probed[key] = None
                elif done.returncode == -4:
                    _probed[key] = ("llama.cpp crashed with 'Illegal instruction': it was built for CPU features this "
                                    "machine lacks; rebuild it with scripts/setup.sh --llama-cpp")
                else:
                    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                    _probed[key] = f"llama.cpp could not run {gguf.name} (exit {done.returncode}: {last})"
            except (OSError, subprocess.TimeoutExpired) as error:
                _probed[key] = f"llama.cpp could not be tried ({type(error).__name__}: {error})"
        return _probed[key]


@dataclass(frozen=True)
class GgufInfo:
    """What the LoRA conversion and the loader need from a GGUF file's metadata."""

    architecture: str
    blocks: int
    heads: int
    kv_heads: int
    context_length: int
    head_dim: int
    tensor_shapes: dict[str, tuple[int, ...]]
    """GGUF tensor name → shape in torch/numpy order: (out, in) for a weight matrix."""


def _header(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """A GGUF file's metadata and its tensor shapes (name → shape, torch order), in one pass over the header.

    transformers' header reader walks it in well under a second (``gguf.GGUFReader`` builds an object per token and
    takes over a minute on Gemma's 262k-token vocabulary), but its tensor table only through private functions: the
    public ``GgufHeader`` refuses files holding a type it can't dequantize, such as Gemma's Q5_0 tensors, which
    llama.cpp runs. If those functions move, ``GGUFReader`` gives the same answer, slowly."""
    try:
        from transformers.integrations.gguf import reader

        blob = reader._mapped(str(path))
        metadata, count, position = reader._read_metadata(blob, str(path))
        table, _ = reader._read_tensor_table(blob, count, position)
        return metadata, {name: tuple(int(d) for d in shape) for name, shape, *_ in table}
    except (ImportError, AttributeError, TypeError):
        from gguf import GGUFReader

        gguf_reader = GGUFReader(path)
        metadata = {key: field.contents() for key, field in gguf_reader.fields.items()}
        return metadata, {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in gguf_reader.tensors}


def gguf_info(path: Path) -> GgufInfo:
    """Read a GGUF model file's architecture, sizes and tensor shapes."""
    try:
        metadata, shapes = _header(path)
    except (OSError, ValueError) as error:
        raise BackendError(f"{path.name} is not a readable GGUF file: {error}") from error
    arch = metadata.get("general.architecture")
    if not arch:
        raise BackendError(f"{path.name} names no architecture (general.architecture).")
    heads = int(metadata.get(f"{arch}.attention.head_count", 0))
    return GgufInfo(
        architecture=arch,
        blocks=int(metadata.get(f"{arch}.block_count", 0)),
        heads=heads,
        kv_heads=int(metadata.get(f"{arch}.attention.head_count_kv", heads)),
        context_length=int(metadata.get(f"{arch}.context_length", 2048)),
        head_dim=int(metadata.get(f"{arch}.attention.key_length", 0)
                     or int(metadata.get(f"{arch}.embedding_length", 0)) // max(heads, 1)),
        tensor_shapes=shapes,
    )


def unsupported_adapter(adapter_dir: Path) -> str | None:
    """Why this PEFT adapter can't be converted for llama.cpp (None when it can): plain LoRA on linear layers only."""
    try:
        config = adapter_config(adapter_dir)
    except AdapterError as error:
        return str(error)
    if config.get("peft_type", "LORA") != "LORA":
        return f"it is a {config.get('peft_type')} adapter, not LoRA"
    for key, what in (("use_dora", "DoRA"), ("use_rslora", "rank-stabilized scaling"),
                      ("modules_to_save", "fully trained modules"), ("rank_pattern", "per-layer ranks"),
                      ("alpha_pattern", "per-layer alphas")):
        if config.get(key):
            return f"it uses {what}, which llama.cpp's LoRA format does not carry"
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return "it has no adapter_model.safetensors"
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as error:  # noqa: BLE001 - any unreadable file is a reason, said to the user
        return f"its adapter_model.safetensors can't be read ({error})"
    for key in keys:
        found = _LORA_KEY.fullmatch(key)
        if found is None:
            return f"it holds {key}, which is not a LoRA A or B matrix of a linear layer"
        if found[1].split(".")[-1] in _UNTIED_OUTPUTS:
            return f"it adapts {found[1]}, which these GGUFs share with the embeddings"
    return None


def _permute_rows(rows: Any, heads: int) -> Any:
    """llama.cpp's query/key row order: within each head, the two rotary halves are interleaved.

    ``rows`` (out, r) → (out, r), out = heads · head_dim. The same reordering the GGUF converter applies to the base
    model's q/k weights (transformers undoes it when it reads a GGUF), applied to the LoRA's B so that
    B·A lands on the rows of the weight llama.cpp holds."""
    out = rows.shape[0]
    return rows.reshape(heads, 2, out // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def tensor_names(architecture: str, blocks: int) -> Any:
    """The ``gguf`` package's map from Hugging Face tensor names to GGUF ones (``model.layers.0.self_attn.q_proj`` →
    ``blk.0.attn_q``) for an architecture as GGUF names it (``llama``, ``gemma3``, ``qwen2``); shared by the LoRA
    conversion here and the merged-model export (:mod:`playground.runs.export_model`)."""
    import gguf

    arch = next((a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == architecture), None)
    if arch is None:
        raise BackendError(f"The gguf package knows no architecture {architecture!r}.")
    return gguf.get_tensor_name_map(arch, blocks)


def gguf_rows(architecture: str, module: str, rows: Any, heads: int, kv_heads: int) -> Any:
    """The rows of linear layer ``module``'s weight — or of a LoRA's B on it — in the order a GGUF of
    ``architecture`` holds them: query and key rows reordered for llama.cpp's rotary embedding where the converter
    does that (:data:`_PERMUTES_QK`), everything else as it is."""
    if architecture in _PERMUTES_QK and module.endswith("q_proj"):
        return _permute_rows(rows, heads)
    if architecture in _PERMUTES_QK and module.endswith("k_proj"):
        return _permute_rows(rows, kv_heads)
    return rows


def lora_to_gguf(adapter_dir: Path, base: GgufInfo, out: Path) -> Path:
    """Convert a PEFT LoRA adapter (safetensors) for a model whose GGUF is described by ``base`` into a GGUF LoRA
    adapter file at ``out`` (float32 tensors, alpha in the metadata; llama.cpp scales by alpha / rank as PEFT does).

    For each adapted linear layer ``W`` (out × in) PEFT stores A (r × in) and B (out × r); the GGUF adapter stores
    them under the base tensor's GGUF name + ``.lora_a`` / ``.lora_b`` with the same numpy shapes. Raises
    :class:`BackendError` for an adapter or architecture this conversion doesn't cover, or layers the base doesn't
    have (an adapter for another model)."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    reason = unsupported_adapter(adapter_dir)
    if reason:
        raise BackendError(f"The adapter {adapter_dir.name} can't run on llama.cpp: {reason}.")
    if base.architecture not in SUPPORTED_ARCHITECTURES:
        raise BackendError(f"LoRA conversion for llama.cpp is not checked for the {base.architecture} architecture.")
    config = adapter_config(adapter_dir)
    names = tensor_names(base.architecture, base.blocks)
    halves: dict[str, dict[str, Any]] = {}
    # Read with torch: numpy has no bfloat16, the dtype a GPU run saves its adapter in.
    for key, value in load_file(adapter_dir / "adapter_model.safetensors").items():
        found = _LORA_KEY.fullmatch(key)
        if found is None:
            raise BackendError(f"The adapter {adapter_dir.name} holds {key}, which is not a LoRA A or B matrix.")
        halves.setdefault(found[1], {})[found[2]] = value.float().numpy()
    if not halves:
        raise BackendError(f"The adapter {adapter_dir.name} holds no LoRA weights.")
    writer = gguf.GGUFWriter(out, base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config.get("lora_alpha", config.get("r", 8))))
    for module, pair in sorted(halves.items()):
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None or target not in base.tensor_shapes or set(pair) != {"A", "B"}:
            raise BackendError(f"The adapter's layer {module} has no counterpart in the {base.architecture} GGUF.")
        a, b = pair["A"], pair["B"]
        # Checked here: llama.cpp 0.3.36 only logs a misfit adapter ("failed to apply lora adapter … incorrect
        # shape") and goes on answering without it (tests/test_llama_backend.py saw no exception).
        if (b.shape[0], a.shape[1]) != base.tensor_shapes[target] or a.shape[0] != b.shape[1]:
            raise BackendError(f"The adapter's layer {module} ({b.shape[0]} × {a.shape[1]}) does not fit the base "
                               f"model's {target} {base.tensor_shapes[target]}: it was trained on another model.")
        b = gguf_rows(base.architecture, module, b, base.heads, base.kv_heads)
        stem = target.removesuffix(".weight")
        writer.add_tensor(f"{stem}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{stem}.weight.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def converted_lora(adapter_dir: Path, base_gguf: Path, base: GgufInfo, cache_dir: Path) -> Path:
    """The GGUF form of ``adapter_dir`` for ``base_gguf``, converted once and cached by the adapter's content (a
    retrained adapter in the same folder is converted again); written to a temporary name, then renamed."""
    digest = hashlib.sha256()
    digest.update(f"{CONVERTER_VERSION}:{base_gguf.name}:".encode())
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((adapter_dir / name).read_bytes())
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{digest.hexdigest()[:24]}.gguf"
    if target.is_file():
        return target
    with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".lora-", suffix=".gguf", delete=False) as scratch:
        scratch_path = Path(scratch.name)
    try:
        lora_to_gguf(adapter_dir, base, scratch_path)
        scratch_path.replace(target)
    finally:
        scratch_path.unlink(missing_ok=True)
    return target


_open_runners: "weakref.WeakSet[LlamaRunner]" = weakref.WeakSet()


@atexit.register
def _close_open_runners() -> None:
    # llama-cpp-python frees its model in __del__, which at interpreter exit runs after its native library is
    # unloaded and prints a TypeError traceback for every model still open; closing them first keeps exit quiet.
    for runner in list(_open_runners):
        runner.close()


class LlamaRunner:
    """One llama.cpp model (and optional LoRA adapter) with a single sequence: evaluate tokens, read the logits.

    llama.cpp keeps one KV cache per context, so one answer at a time: :attr:`lock` is held for a whole answer
    (two panes on the same model take turns; different models run side by side)."""

    def __init__(self, gguf: Path, context: int, lora: Path | None = None, threads: int | None = None,
                 info: GgufInfo | None = None) -> None:
        from llama_cpp import Llama

        self.path = gguf
        self.info = info
        self.lora = lora
        # verbose=False: llama.cpp's loading log would flood the terminal the app runs in.
        try:
            self.llama = Llama(model_path=str(gguf), n_ctx=context, n_batch=512,
                               lora_path=str(lora) if lora else None, n_threads=threads, verbose=False)
        except (RuntimeError, ValueError) as error:
            what = "its LoRA adapter does not fit it (trained on another model?)" if lora else "it can't be read"
            raise BackendError(f"llama.cpp could not load {gguf.name}: {what} ({error}).") from error
        self.context = context
        self.vocab = self.llama.n_vocab()
        self.lock = threading.Lock()
        _open_runners.add(self)

    def set_threads(self, threads: int) -> None:
        """Threads for the next tokens (two answers at once on a 2-core machine should not both ask for 2)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llama.ctx, threads, max(threads, 1))

    def start(self, tokens: list[int]) -> Any:
        """Forget the previous sequence, evaluate ``tokens`` (the prompt); return the next-token logits (vocab,)."""
        self.llama.reset()
        return self.feed(tokens)

    def feed(self, tokens: list[int]) -> Any:
        """Append ``tokens`` to the sequence; return the logits (vocab,) float32 for the token after them."""
        import llama_cpp
        import numpy as np

        self.llama.eval(tokens)
        pointer = llama_cpp.llama_get_logits_ith(self.llama.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab,)).copy()

    def footprint_bytes(self) -> int:
        """What the model cache budgets for: the weights (mapped from the file; llama-cpp-python reads them into
        memory instead when an adapter is given), the adapter, and the float16 KV cache for the whole context."""
        weights = self.path.stat().st_size + (self.lora.stat().st_size if self.lora else 0)
        if self.info is None:
            return weights
        return weights + self.info.blocks * 2 * self.context * self.info.kv_heads * self.info.head_dim * 2

    def close(self) -> None:
        self.llama.close()
