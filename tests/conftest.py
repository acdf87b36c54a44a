"""Shared fixtures: tiny local models (no network) and settings pointing at a temporary data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from playground.core.settings import Settings  # noqa: E402
from tests.tiny_models import NF4_WIDTH, build_adapter, build_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random base model folder (no chat template), 256-token context."""
    return build_model(tmp_path_factory.mktemp("models") / "tiny-base", chat=False)


@pytest.fixture(scope="session")
def tiny_base_4bit(tmp_path_factory) -> Path:
    """The tiny base model, wide enough to load in 4-bit NF4 on every CPU (every quantized Linear ≥ one 64-wide
    block); use it, not ``tiny_base``, in any test that quantizes."""
    return build_model(tmp_path_factory.mktemp("models") / "tiny-base-4bit", chat=False, width=NF4_WIDTH)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    """A tiny random 'instruct' model folder with a chat template."""
    return build_model(tmp_path_factory.mktemp("models") / "tiny-chat", chat=True, seed=1)


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base, tmp_path_factory) -> Path:
    """A LoRA adapter folder on the tiny base model."""
    return build_adapter(tiny_base, tmp_path_factory.mktemp("adapters") / "tiny-lora")


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with a fresh data dir; memory budget 1 GiB."""
    s = Settings(data_dir=tmp_path / "data", memory_budget_gb=1.0)
    s.ensure_dirs()
    return s
