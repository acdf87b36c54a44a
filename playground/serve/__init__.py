"""Serving out: ``python -m playground.serve MODEL`` answers OpenAI's chat-completions and completions API with
any model the app can pick (a catalog name, a model folder, a trained adapter on its base), so a tuned adapter can
be used from any tool that speaks that API.

This module stays light (the Runs tab imports it for the command line); the server is in :mod:`.openai_api` and
:mod:`.served_model`, the command line in :mod:`.__main__`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

DEFAULT_PORT = 8000
API_KEY_ENV = "PLAYGROUND_API_KEY"
"""The environment variable ``--api-key-env`` names by default in the commands the app shows."""


def shell_command(model: str | Path, data_dir: Path | None = None) -> str:
    """The line to paste into a shell to serve ``model`` (on this machine only, port :data:`DEFAULT_PORT`), with the
    app's data dir when given (where a packaged base model's imported weights are)."""
    parts = ["python", "-m", "playground.serve", str(model)]
    if data_dir is not None:
        parts += ["--data-dir", str(data_dir)]
    return shlex.join(parts)
