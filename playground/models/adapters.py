"""A saved LoRA adapter's settings (PEFT's ``adapter_config.json``), read one way for every part of the app that
looks at an adapter folder: the model lists, an SFT start, a reward run, the llama.cpp conversion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class AdapterError(Exception):
    """An adapter folder whose settings can't be read; the message says which file and why (no final full stop: the
    callers put it inside their own sentences)."""


def adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """The settings PEFT saved with an adapter, or an :class:`AdapterError` saying that the folder holds no readable
    adapter: the file missing, not UTF-8, not JSON, or not a JSON object (a damaged or half-copied folder)."""
    path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # ValueError: not JSON, or not UTF-8
        raise AdapterError(f"{adapter_dir} is not a readable LoRA adapter folder: {path.name} can't be read "
                           f"({error})") from error
    if not isinstance(config, dict):
        raise AdapterError(f"{adapter_dir} is not a readable LoRA adapter folder: {path.name} holds no adapter "
                           f"settings (a JSON object)")
    return config
