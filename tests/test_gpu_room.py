"""Room on the GPU for a training run: the Train tab's offer names the app's models on the GPU, and unloading frees
those and nothing else. No GPU here: a model's place is the cache's record of it (its ``device``), which is what the
offer and the unloading read, so a tiny CPU model recorded as on ``cuda`` stands for one."""

from __future__ import annotations

import dataclasses

from playground.models.catalog import ModelSpec
from playground.models.loading import ModelCache
from playground.runs import gpu_room
from playground.runs.reward_model import RewardModels


def as_if_on_gpu(cache: ModelCache, spec: ModelSpec) -> None:
    loaded = cache.get(spec)
    key = next(k for k, m in cache._models.items() if m is loaded)  # the cache's record, as a CUDA load writes it
    cache._models[key] = dataclasses.replace(loaded, device="cuda")


def test_only_the_apps_gpu_models_are_offered_and_unloaded(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    rewards = RewardModels(settings, cache)
    cache.get(ModelSpec(str(tiny_base)))
    assert gpu_room.offer(cache, rewards) == ""  # a CPU model: nothing to offer, the option stays hidden
    assert gpu_room.unload_for_training(cache, rewards) == [] and len(cache.loaded()) == 1

    as_if_on_gpu(cache, ModelSpec(str(tiny_chat)))
    names, size = gpu_room.app_models_on_gpu(cache, rewards)
    assert names == ["tiny-chat"] and size == cache.used_bytes("gpu") > 0
    assert gpu_room.offer(cache, rewards).startswith("The app holds 1 model on the GPU (tiny-chat; ")
    assert gpu_room.unload_for_training(cache, rewards) == ["tiny-chat"]
    assert [m.spec.source for m in cache.loaded()] == [str(tiny_base)]  # the CPU model stays
    assert gpu_room.offer(cache, rewards) == ""
