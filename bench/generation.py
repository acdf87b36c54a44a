"""Benchmark: tokens/s of the playground's streaming path vs plain ``model.generate``, and two panes vs one.

Run:  HF_HUB_OFFLINE=1 python -m bench.generation [--tokens 128] [--repeats 3]
Uses the packaged offline models (imported into the data dir on first use). Prints a Markdown table.

1. Streaming vs plain generate: the same model (SmolLM2-135M-Instruct), prompt, settings, seed and length
   (end-of-sequence suppressed on both). Each path is timed in its own process, alternating. Target ratio
   (ours / plain) ≥ 0.95.
2. Both panes at once (Gemma 3 270M base + SmolLM2 instruct) vs each pane alone, one after the other.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from dataclasses import replace

import torch

from bench.harness import run_child
from playground.core.settings import Settings
from playground.models.catalog import resolve_choice
from playground.models.generation import GenerationParams, answer, stream, stream_pair
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import render

PROMPT = [{"role": "user", "content": "Explain the moon landing to a 6 year old in a few sentences."}]


#: This benchmark measures the transformers path (bench/backends.py compares it with llama.cpp).
TRANSFORMERS = LoadOptions(backend="transformers")

CASES = {
    "greedy": GenerationParams(temperature=0, repetition_penalty=1.1),
    "sampled (T=0.7, top-p 0.9, top-k 50)": GenerationParams(seed=0),
}


def plain_generate(loaded, prompt, params: GenerationParams) -> tuple[int, float, str]:
    """The baseline: one ``generate`` call with the same settings, no streamer, no thread."""
    tok = loaded.tokenizer
    ids = tok(prompt.text, add_special_tokens=prompt.add_special_tokens, return_tensors="pt")
    torch.manual_seed(params.seed)
    sampling = params.temperature > 0
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(
            **ids, max_new_tokens=params.max_new_tokens, min_new_tokens=params.max_new_tokens, do_sample=sampling,
            repetition_penalty=params.repetition_penalty, temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None, top_k=params.top_k if sampling else None,
            eos_token_id=loaded.model.generation_config.eos_token_id, pad_token_id=tok.pad_token_id)
    elapsed = time.perf_counter() - started
    new = out[0, ids["input_ids"].shape[1]:]
    return len(new), elapsed, tok.decode(new, skip_special_tokens=True)


def playground_stream(loaded, prompt, params: GenerationParams) -> tuple[int, float, str]:
    """Ours: the Compare tab's path (worker thread, streamer, seeded sampler, stats), consumed to the end."""
    started = time.perf_counter()
    *_, last = stream(loaded, prompt, params)
    return last.stats.new_tokens, time.perf_counter() - started, last.text


def child(mode: str, case: str, tokens: int, repeats: int) -> None:
    """Measure one path in this process: load, warm up, then ``repeats`` timed runs, printed as JSON."""
    cache = ModelCache(Settings())
    loaded = cache.get(resolve_choice("smollm2-135m-instruct", []), TRANSFORMERS)
    prompt = render(PROMPT, "auto", loaded.kind, loaded.tokenizer)
    params = replace(CASES[case], max_new_tokens=tokens, ignore_eos=True)  # equal lengths on both paths
    run = plain_generate if mode == "plain" else playground_stream
    run(loaded, prompt, params)
    print(json.dumps([run(loaded, prompt, params) for _ in range(repeats)]))


def bench_streaming(tokens: int, repeats: int) -> list[dict]:
    """Each path runs in its own process, alternating: torch's OpenMP thread pools belonging to different threads
    of one process slow each other down, which would penalise whichever path ran second."""
    rows = []
    for case in CASES:
        runs: dict[str, list] = {"plain": [], "ours": []}
        for _ in range(repeats):
            for mode in runs:
                runs[mode] += run_child("bench.generation", [mode, case, "--tokens", str(tokens), "--repeats", "2"],
                                        f"{mode} ({case})")
        rate = {mode: statistics.median(n / t for n, t, _ in r) for mode, r in runs.items()}
        rows.append({"case": case, "plain_tok_s": rate["plain"], "ours_tok_s": rate["ours"],
                     "ratio": rate["ours"] / rate["plain"], "tokens": runs["ours"][0][0],
                     "identical_text": runs["plain"][0][2] == runs["ours"][0][2]})
    return rows


def bench_pair(cache: ModelCache, tokens: int, repeats: int) -> dict:
    """Both panes at once vs the same two answers one after the other (greedy, so the work is identical)."""
    specs = [resolve_choice("gemma-3-270m", []), resolve_choice("smollm2-135m-instruct", [])]
    params = GenerationParams(temperature=0, max_new_tokens=tokens, ignore_eos=True)

    def job(spec):
        return lambda stop: answer(cache, spec, TRANSFORMERS, PROMPT, "auto", "", params, stop)

    for spec in specs:  # warm-up; also loads both models (in answer()'s worker threads, like the app)
        list(job(spec)(threading.Event()))
    alone, together = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        singles = []
        for spec in specs:
            *_, last = job(spec)(threading.Event())
            singles.append(last.stats.new_tokens)
        alone.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        *_, (left, right) = stream_pair(job(specs[0]), job(specs[1]))
        together.append(time.perf_counter() - t0)
    return {"alone_s": statistics.median(alone), "together_s": statistics.median(together),
            "ratio": statistics.median(together) / statistics.median(alone), "tokens": singles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.tokens, args.repeats)
    settings = Settings()
    settings.ensure_dirs()
    cache = ModelCache(settings)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print("\n| case | plain generate tok/s | playground stream tok/s | ratio | tokens | same text |")
    print("|---|---|---|---|---|---|")
    for row in bench_streaming(args.tokens, args.repeats):
        print(f"| {row['case']} | {row['plain_tok_s']:.1f} | {row['ours_tok_s']:.1f} | {row['ratio']:.3f} | "
              f"{row['tokens']} | {row['identical_text']} |")
    pair = bench_pair(cache, args.tokens, args.repeats)
    print(f"\nTwo panes (gemma-3-270m + smollm2-135m-instruct, greedy, {pair['tokens']} tokens): "
          f"one after the other {pair['alone_s']:.2f} s, at the same time {pair['together_s']:.2f} s, "
          f"ratio {pair['ratio']:.2f}")
    # Free the models (llama.cpp's among them) while the interpreter is whole: left to the exit, a llama.cpp model's
    # threads were torn down after Python's and the process sometimes aborted ("terminate called without an active
    # exception", exit 134) after printing its figures.
    cache.unload()


if __name__ == "__main__":
    main()
