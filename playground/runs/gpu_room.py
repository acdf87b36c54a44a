"""Room on the GPU for a training run: the app's own loaded models (Compare's and Rate's, the Reward tab's reward
model) keep GPU memory that a run started from the Train tab needs too — on an 8 GB card a run and two loaded models
don't fit together — so the Train tab offers to unload them before the run starts.

A run is a separate process: the app can't hand it memory, only release its own before the run loads its model.
"""

from __future__ import annotations

from playground.models.loading import ModelCache, memory_of
from playground.runs.reward_model import RewardModels


def app_models_on_gpu(cache: ModelCache, reward_models: RewardModels | None = None) -> tuple[list[str], int]:
    """The names of the app's models loaded on a GPU and the bytes they take."""
    names = [m.spec.name for m in cache.loaded() if memory_of(m.device) == "gpu"]
    size = cache.used_bytes("gpu")
    for device, held in reward_models.held() if reward_models is not None else []:
        if memory_of(device) == "gpu":
            names.append("the Reward tab's reward model")
            size += held
    return names, size


def offer(cache: ModelCache, reward_models: RewardModels | None = None) -> str:
    """The Train tab's note beside its unload option: what the app holds on the GPU, or "" when nothing."""
    names, size = app_models_on_gpu(cache, reward_models)
    if not names:
        return ""
    return (f"The app holds {len(names)} model{'s' if len(names) > 1 else ''} on the GPU ({', '.join(names)}; "
            f"{size / 2**30:.1f} GiB). A run started now shares the card with them and may run out of memory.")


def unload_for_training(cache: ModelCache, reward_models: RewardModels | None = None) -> list[str]:
    """Unload the app's models from the GPU (they load again on their next use); returns what was unloaded."""
    names = cache.unload_memory("gpu")
    if reward_models is not None and any(memory_of(d) == "gpu" for d, _ in reward_models.held()):
        reward_models.unload()
        names.append("the Reward tab's reward model")
    return names
