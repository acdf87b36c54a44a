"""Benchmark: decoding speed of llama.cpp vs plain transformers float32 on the default models, and how closely the
two backends' greedy answers agree, for each base model and for base + a tuned adapter.

Run:  HF_HUB_OFFLINE=1 python -m bench.backends [--tokens 64] [--repeats 3] [--adapter RUN/adapter] [--prompts 24]

1. Speed: the Compare tab's path (``generation.stream``: same prompt, same processors, greedy, end-of-sequence
   suppressed so both make exactly ``--tokens`` tokens) on each backend, each timed in its own process, alternating;
   tokens/s after the first token (decoding, not prompt reading). Target: llama.cpp ≥ 2× transformers.
2. Agreement: greedy answers to the held-out prompts (``assets/datasets/heldout.jsonl``, the evaluation's prompt
   frame) on both backends; the share whose first 32 tokens are identical, and the mean length of the identical
   prefix. llama.cpp runs the packaged 4-bit GGUF weights; transformers runs them dequantized to float32 (and an
   adapter on top of those), so a small difference is expected: this says how small.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from pathlib import Path

from bench.harness import run_child
from playground.core.settings import Settings
from playground.data.evaluation import load_heldout
from playground.models.catalog import ModelSpec, resolve_choice
from playground.models.generation import GenerationParams, answer, stream
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import render

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
BACKENDS = ("transformers", "llama.cpp")
PROMPT = [{"role": "user", "content": "Explain the moon landing to a 6 year old in a few sentences."}]
AGREEMENT_TOKENS = 32


def child(backend: str, model: str, tokens: int, repeats: int) -> None:
    """Time one backend on one model in this process: load, one warm-up answer, then ``repeats`` timed answers;
    print [tokens/s after the first token, ...] as JSON."""
    cache = ModelCache(Settings())
    loaded = cache.get(resolve_choice(model, []), LoadOptions(backend=backend))
    assert loaded.backend == backend, f"asked for {backend}, got {loaded.backend}"
    prompt = render(PROMPT, "auto", loaded.kind, loaded.tokenizer)
    params = GenerationParams(temperature=0, max_new_tokens=tokens, ignore_eos=True)
    for _ in stream(loaded, prompt, params):  # warm-up
        pass
    rates = []
    for _ in range(repeats):
        *_, last = stream(loaded, prompt, params)
        rates.append(last.stats.tokens_per_second)
    print(json.dumps(rates))


def bench_speed(tokens: int, repeats: int) -> list[dict]:
    rows = []
    for model in MODELS:
        rates: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        for _ in range(repeats):
            for backend in BACKENDS:
                rates[backend] += run_child("bench.backends", [backend, model, "--tokens", str(tokens),
                                                               "--repeats", "2"], f"{backend} on {model}")
        median = {backend: statistics.median(r) for backend, r in rates.items()}
        rows.append({"model": model, **median, "ratio": median["llama.cpp"] / median["transformers"]})
    return rows


def greedy_ids(cache: ModelCache, spec: ModelSpec, backend: str, prompt: str) -> list[int]:
    """The first :data:`AGREEMENT_TOKENS` greedy token ids (fewer if the answer ends) on ``backend``."""
    options = LoadOptions(backend=backend)
    params = GenerationParams(temperature=0, max_new_tokens=AGREEMENT_TOKENS)
    *_, last = answer(cache, spec, options, [{"role": "user", "content": prompt}], "instruction", "", params,
                      threading.Event())
    if last.error:
        raise RuntimeError(last.error)
    loaded = cache.get(spec, options)
    return loaded.tokenizer(last.text, add_special_tokens=False)["input_ids"][:AGREEMENT_TOKENS]


def bench_agreement(specs: list[ModelSpec], count: int) -> list[dict]:
    prompts = [example.prompt for example in load_heldout()][:count]
    cache = ModelCache(Settings())
    rows = []
    for spec in specs:
        same, prefixes = 0, []
        for prompt in prompts:
            a, b = (greedy_ids(cache, spec, backend, prompt) for backend in BACKENDS)
            same += a == b
            prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            prefixes.append(prefix)
        cache.unload(spec)
        rows.append({"model": spec.name, "prompts": len(prompts), "identical": same / len(prompts),
                     "mean_prefix": statistics.mean(prefixes)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=24, help="held-out prompts for the agreement check")
    parser.add_argument("--adapter", action="append", default=[],
                        help="also check base + this adapter folder (e.g. a run's adapter); repeatable")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.tokens, args.repeats)
    Settings().ensure_dirs()
    print(f"machine: {platform.processor() or platform.machine()}; started {time.strftime('%Y-%m-%d %H:%M')}")
    if not args.skip_speed:
        print("\n| model | transformers fp32 tok/s | llama.cpp (GGUF as packaged) tok/s | ratio |")
        print("|---|---|---|---|")
        for row in bench_speed(args.tokens, args.repeats):
            print(f"| {row['model']} | {row['transformers']:.1f} | {row['llama.cpp']:.1f} | {row['ratio']:.2f} |")
    specs = [resolve_choice(model, []) for model in MODELS]
    specs += [resolve_choice(str(Path(adapter).resolve()), []) for adapter in args.adapter]
    print(f"\n| model | prompts | first {AGREEMENT_TOKENS} greedy tokens identical | mean identical prefix |")
    print("|---|---|---|---|")
    for row in bench_agreement(specs, args.prompts):
        print(f"| {row['model']} | {row['prompts']} | {100 * row['identical']:.0f} % | "
              f"{row['mean_prefix']:.1f} tokens |")


if __name__ == "__main__":
    main()
