"""Settings: where the app keeps its data, where it listens, and its limits; every path derives from here."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

#: Environment variable that overrides the default data directory (the ``--data-dir`` flag wins over it).
DATA_DIR_ENV = "RLHF_PLAYGROUND_DATA_DIR"

#: The offline defaults: the base model goes left, the instruction-tuned one right (the lecture's contrast).
DEFAULT_MODEL_A = "gemma-3-270m"
DEFAULT_MODEL_B = "smollm2-135m-instruct"


#: The command-line flag that lets the app listen beyond this machine with no login (see :class:`NoLoginError`).
OPEN_WITHOUT_LOGIN_FLAG = "--i-trust-this-network-without-login"


class DataDirError(RuntimeError):
    """The data directory can't be created or written to."""


class NoLoginError(ValueError):
    """The app would be reachable from other machines (a wide ``--host`` or ``--share``) with no login."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach: ``localhost``, 127.x.x.x or ::1.

    Any other name counts as reachable from elsewhere: it may resolve to (or bind) an outward interface, and an empty
    name binds every interface."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too (Python < 3.13 says no)
    return (mapped or address).is_loopback


def default_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/rlhf-playground`` on Linux), unless the environment overrides it."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("rlhf-playground", appauthor=False))


def default_memory_budget_gb() -> float:
    """Half of this machine's RAM: room for two side-by-side models plus the OS and the browser."""
    import psutil  # a gradio dependency; imported here so importing settings stays cheap

    return round(psutil.virtual_memory().total / 2**30 / 2, 1)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know at start-up. Built by ``app.py`` from the command line."""

    data_dir: Path = field(default_factory=default_data_dir)
    """Root of everything the app writes: imported models, adapters, the ratings database, exports, runs."""
    host: str = "127.0.0.1"
    """Interface to listen on. 127.0.0.1 keeps the app private to this machine."""
    port: int = 7860
    """TCP port of the web UI."""
    auth: tuple[str, str] | None = None
    """(user, password) required to open the app; None means no login."""
    share: bool = False
    """Ask Gradio for a public share link (needs the internet; off by default)."""
    model_a: str = DEFAULT_MODEL_A
    """Model shown on the left when the app opens: a catalog key, hub id or folder."""
    model_b: str = DEFAULT_MODEL_B
    """Model shown on the right when the app opens."""
    memory_budget_gb: float = field(default_factory=default_memory_budget_gb)
    """Loaded models are evicted, least recently used first, to stay under this many GiB."""
    gpu_memory_budget_gb: float | None = None
    """The same for models on the GPU, against the card's memory; None: 70 % of it (the rest is for the CUDA
    context and each answer's KV cache and activations)."""
    prepare_models: bool = True
    """Load the panes' models in the background as soon as the app starts, so the first Send answers at once."""
    open_without_login: bool = False
    """Allow listening beyond this machine (or a share link) with no login: whoever can reach the app can read every
    vote, export and delete data and start training runs. Off unless asked for by name."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.reachable_from_elsewhere and self.auth is None and not self.open_without_login:
            raise NoLoginError(
                f"{self._audience()} could read every vote, export and delete data and start training runs, and no "
                f"login is set. Add one with --auth USER:PASS (for example --auth alice:a-long-password), or listen "
                f"on this machine only (--host 127.0.0.1, no --share). On a network where you trust everyone who can "
                f"reach it, {OPEN_WITHOUT_LOGIN_FLAG} starts it with no login anyway."
            )
        if self.memory_budget_gb <= 0:
            raise ValueError(f"memory_budget_gb must be positive, got {self.memory_budget_gb}")
        if self.gpu_memory_budget_gb is not None and self.gpu_memory_budget_gb <= 0:
            raise ValueError(f"gpu_memory_budget_gb must be positive, got {self.gpu_memory_budget_gb}")
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())

    @property
    def reachable_from_elsewhere(self) -> bool:
        """Whether other machines can open the app: a host other than loopback, or a public share link."""
        return self.share or not is_loopback(self.host)

    def no_login_warning(self) -> str | None:
        """The warning to print at start when the app is reachable from elsewhere with no login (the opt-out)."""
        if not self.reachable_from_elsewhere or self.auth is not None:
            return None
        return (f"WARNING: no login ({OPEN_WITHOUT_LOGIN_FLAG}). {self._audience()} can read every vote, export and "
                f"delete data and start training runs on this machine. Use --auth USER:PASS unless you trust them all.")

    def _audience(self) -> str:
        """Who can reach the app, in words, for the refusal and the warning."""
        if self.share:
            return "With --share, anyone on the internet who has the link"
        return f"With --host {self.host}, anyone on the network who can reach this machine"

    @property
    def models_dir(self) -> Path:
        """Drop Hugging Face model folders here and they appear in the model lists."""
        return self.data_dir / "models"

    @property
    def adapters_dir(self) -> Path:
        """LoRA adapter folders (training runs will register theirs here)."""
        return self.data_dir / "adapters"

    @property
    def import_cache_dir(self) -> Path:
        """GGUF weights imported once into safetensors, one folder per packaged model version."""
        return self.data_dir / "cache" / "imported"

    @property
    def ratings_db(self) -> Path:
        """The SQLite database of comparisons and votes (the source of truth for ratings)."""
        return self.data_dir / "ratings.sqlite3"

    @property
    def endpoints_file(self) -> Path:
        """The OpenAI-compatible endpoints the user added (URL, model, API, the key's variable NAME; never a key)."""
        return self.data_dir / "endpoints.json"

    @property
    def exports_dir(self) -> Path:
        """Preference data exported from the votes (JSONL, Parquet, ``datasets`` folders)."""
        return self.data_dir / "exports"

    @property
    def runs_dir(self) -> Path:
        """Training runs, one folder each (config.yaml, metrics.jsonl, train.log, checkpoints, adapter)."""
        return self.data_dir / "runs"

    @property
    def recipes_dir(self) -> Path:
        """The Lecture tab's own recipes: a file here replaces the shipped recipe of the same name."""
        return self.data_dir / "recipes"

    @property
    def datasets_dir(self) -> Path:
        """Uploaded datasets that passed validation."""
        return self.data_dir / "datasets"

    def ensure_dirs(self) -> None:
        """Create the data folders and prove they are writable; raise :class:`DataDirError` with advice if not."""
        try:
            for folder in (self.models_dir, self.adapters_dir, self.import_cache_dir, self.exports_dir, self.runs_dir,
                           self.datasets_dir):
                folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.data_dir, prefix=".write-test-"):
                pass
        except OSError as error:
            raise DataDirError(
                f"The data directory {self.data_dir} is not writable ({error.strerror or error}). "
                f"Choose another with --data-dir or the {DATA_DIR_ENV} environment variable."
            ) from error
