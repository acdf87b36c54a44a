"""Settings: where the app keeps its data, where it listens, and its limits; every path derives from here."""

from __future__ import annotations

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


class DataDirError(RuntimeError):
    """The data directory can't be created or written to."""


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

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.memory_budget_gb <= 0:
            raise ValueError(f"memory_budget_gb must be positive, got {self.memory_budget_gb}")
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())

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
    def exports_dir(self) -> Path:
        """Preference data exported from the votes (JSONL, Parquet, ``datasets`` folders)."""
        return self.data_dir / "exports"

    @property
    def runs_dir(self) -> Path:
        """Training runs, one folder each (config.yaml, metrics.jsonl, train.log, checkpoints, adapter)."""
        return self.data_dir / "runs"

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
