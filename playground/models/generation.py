"""Generation: stream one model's answer, or two models' answers side by side at the same time, with stats.

Sampling is seeded per answer. transformers' ``generate`` samples from torch's *global* generator, so two answers
produced at once in two threads would interleave their draws and the same seed would not give the same answer.
We therefore keep ``generate`` (its caching, stopping and penalties) in greedy mode and put the sampling step in a
logits processor that draws from its own ``torch.Generator``: the greedy argmax then picks the drawn token.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from playground.models import endpoint
from playground.models.catalog import ModelSpec
from playground.models.loading import LoadedModel, LoadOptions, ModelCache, is_out_of_memory
from playground.models.prompting import Message, PromptFormat, RenderedPrompt, model_format, render


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings shared by both panes. Temperature 0 means greedy decoding."""

    temperature: float = 0.7
    """Divides the logits; 0 = always the most likely token, higher = more random."""
    top_p: float = 0.9
    """Sample only from the smallest set of tokens whose probabilities add up to top_p (1 = off)."""
    top_k: int = 50
    """Sample only from the k most likely tokens (0 = off)."""
    max_new_tokens: int = 200
    """Stop after this many generated tokens."""
    repetition_penalty: float = 1.1
    """Divides the logits of tokens already in the text (1 = off); base models loop without it."""
    seed: int = 42
    """The same seed, model, prompt and settings give the same answer."""
    ignore_eos: bool = False
    """Keep generating past the end-of-sequence token up to max_new_tokens (benchmarks use it for equal lengths)."""

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be 0 (off) or positive"),
            (1 <= self.max_new_tokens <= 8192, "max_new_tokens must be between 1 and 8192"),
            (0.5 <= self.repetition_penalty <= 3, "repetition_penalty must be between 0.5 and 3"),
            (0 <= self.seed < 2**63, "seed must be a non-negative integer"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class StreamStats:
    """How one answer went. Times in seconds; ``finish_reason`` is None while the answer is still streaming."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    elapsed: float = 0.0
    finish_reason: str | None = None
    """eos (the model ended its answer), length (max new tokens), stopped (by the user), error."""
    truncated_tokens: int = 0
    """How many prompt tokens were cut from the start to fit the model's context window."""
    backend: str = ""
    """What ran the model (``transformers`` or ``llama.cpp``): speeds and, slightly, answers depend on it."""
    note: str = ""
    """Anything else the pane should say about how the answer was made (an endpoint that refused top_k…)."""

    def summary(self) -> str:
        """One line for the pane, e.g. ``TTFT 0.21 s · 23.4 tok/s · 87 tokens · finished: eos``."""
        parts = []
        if self.time_to_first_token is not None:
            parts.append(f"TTFT {self.time_to_first_token:.2f} s")
        if self.tokens_per_second is not None:
            parts.append(f"{self.tokens_per_second:.1f} tok/s")
        parts.append(f"{self.new_tokens} tokens")
        parts.append(f"finished: {self.finish_reason}" if self.finish_reason else "generating…")
        if self.backend:
            parts.append(f"on {self.backend}")
        if self.truncated_tokens:
            parts.append(f"prompt truncated: first {self.truncated_tokens} of {self.prompt_tokens + self.truncated_tokens}"
                         f" tokens dropped to fit the context")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


@dataclass
class StreamUpdate:
    """A snapshot of one answer: its text so far, stats, and the exact prompt text the model received."""

    text: str = ""
    stats: StreamStats = field(default_factory=StreamStats)
    prompt_text: str = ""
    status: str = ""
    """A progress line while loading (e.g. the first-time GGUF import); empty once tokens flow."""
    error: str | None = None
    out_of_memory: bool = False
    done: bool = False


class SeededSampler:
    """Logits processor that samples the next token with its own generator and leaves only that token finite.

    Used with greedy decoding: ``scores`` (batch, vocab) → (batch, vocab) with 0 at the drawn token, -inf elsewhere.
    Temperature, top-k and top-p use transformers' own warpers, in the order ``generate`` applies them.
    """

    def __init__(self, params: GenerationParams, device: str) -> None:
        import torch
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.warpers: list[Any] = [TemperatureLogitsWarper(params.temperature)]
        if params.top_k > 0:
            self.warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1:
            self.warpers.append(TopPLogitsWarper(params.top_p))
        self.generator = torch.Generator(device=device).manual_seed(params.seed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)  # (batch, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


class _TokenQueue:
    """transformers streamer that forwards each new token id, with its arrival time, to a queue."""

    def __init__(self, sink: queue.Queue) -> None:
        self.sink = sink
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first puts the whole prompt
            self.prompt_seen = True
            return
        now = time.monotonic()
        for token in value.reshape(-1).tolist():
            self.sink.put(("token", token, now))

    def end(self) -> None:
        pass


class _StopOnEvent:
    """Stopping criterion: stop every sequence once the event is set (the Stop button)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def fit_to_context(input_ids: list[int], context: int, max_new_tokens: int, bos: int | None) -> tuple[list[int], int, int]:
    """Cut the prompt's oldest tokens (keeping a leading BOS) so prompt + answer fit the context window.

    Returns (ids, tokens dropped, max new tokens), the latter lowered to half the context if it alone is too big.
    """
    max_new = min(max_new_tokens, max(1, context // 2)) if max_new_tokens >= context else max_new_tokens
    room = context - max_new
    if len(input_ids) <= room:
        return input_ids, 0, max_new
    keep_bos = bos is not None and input_ids[0] == bos
    head = input_ids[:1] if keep_bos else []
    tail = input_ids[len(input_ids) - (room - len(head)):]
    return head + tail, len(input_ids) - len(head) - len(tail), max_new


def stream(
    loaded: LoadedModel,
    prompt: RenderedPrompt,
    params: GenerationParams,
    stop: threading.Event | None = None,
) -> Iterator[StreamUpdate]:
    """Generate an answer token by token; yield a snapshot after each token and a final one with ``done``.

    The model's backend (transformers' ``generate``, or llama.cpp's logits with the same processors) runs in a
    worker thread; this generator reads its tokens from a queue. Setting ``stop`` ends the answer after the current
    token (finish reason "stopped").
    """
    import torch
    from transformers import (
        GenerationConfig,
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        StoppingCriteriaList,
    )

    stop = stop or threading.Event()
    tokenizer = loaded.tokenizer
    ids = tokenizer(prompt.text, add_special_tokens=prompt.add_special_tokens)["input_ids"]
    ids, dropped, max_new = fit_to_context(ids, loaded.context_length, params.max_new_tokens, tokenizer.bos_token_id)
    stats = StreamStats(prompt_tokens=len(ids), truncated_tokens=dropped, backend=loaded.backend)
    update = StreamUpdate(prompt_text=tokenizer.decode(ids), stats=stats)
    eos_ids = list(loaded.eos_token_ids)

    processors = LogitsProcessorList()
    if params.repetition_penalty != 1:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0:
        processors.append(SeededSampler(params, loaded.device))
    tokens: queue.Queue = queue.Queue()

    if loaded.backend == "llama.cpp":
        def decode() -> None:
            _decode_llama(loaded, ids, max_new, processors, eos_ids, params.ignore_eos, stop, tokens)
    else:
        config = GenerationConfig(max_new_tokens=max_new, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=eos_ids, min_new_tokens=max_new if params.ignore_eos else None)
        input_ids = torch.tensor([ids], device=loaded.device)

        def decode() -> None:
            with torch.inference_mode():
                loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=config,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                    streamer=_TokenQueue(tokens),
                )

    def work() -> None:
        try:
            decode()
            tokens.put(("end", None, time.monotonic()))
        except BaseException as error:  # reported to the pane; the app keeps running
            tokens.put(("error", error, time.monotonic()))

    started = time.monotonic()
    threading.Thread(target=work, name=f"generate-{loaded.spec.name}", daemon=True).start()
    yield update
    new_ids: list[int] = []
    first_at = last_at = started
    while True:
        kind, value, at = tokens.get()
        if kind == "started":
            started = first_at = last_at = at
            continue
        if kind == "status":
            update.status = value
            yield update
            continue
        if kind == "token":
            update.status = ""
            new_ids.append(value)
            if len(new_ids) == 1:
                first_at = at
                stats.time_to_first_token = at - started
            last_at = at
            stats.new_tokens = len(new_ids)
            if len(new_ids) > 1:
                stats.tokens_per_second = (len(new_ids) - 1) / max(last_at - first_at, 1e-9)
            stats.elapsed = at - started
            update.text = tokenizer.decode(new_ids, skip_special_tokens=True)
            yield update
            continue
        stats.elapsed = at - started
        if kind == "error":
            stats.finish_reason = "error"
            update.error = _describe_error(value, loaded)
            update.out_of_memory = is_out_of_memory(value)
        elif new_ids and new_ids[-1] in eos_ids and not params.ignore_eos:
            stats.finish_reason = "eos"
        elif len(new_ids) >= max_new:
            stats.finish_reason = "length"
        else:
            stats.finish_reason = "stopped" if stop.is_set() else "eos"
        update.done = True
        yield update
        return


_active_llama = [0]
_active_lock = threading.Lock()


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity: a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 2


def _decode_llama(loaded: LoadedModel, ids: list[int], max_new: int, processors: Any, eos_ids: list[int],
                  ignore_eos: bool, stop: threading.Event, sink: queue.Queue) -> None:
    """The llama.cpp backend's decoding loop: llama.cpp gives the next-token logits (vocab,), and the same
    processors as the transformers path (repetition penalty, then the seeded sampler or greedy argmax) pick the
    token, so a seed and a setting mean the same on both backends. Puts ("token", id, time) on ``sink``.

    Written by hand because llama-cpp-python's own loop samples with llama.cpp's sampler (another random stream,
    other top-k/top-p details), which would make the two backends' answers to the same seed unrelated."""
    import torch

    runner = loaded.model
    if not runner.lock.acquire(blocking=False):
        sink.put(("status", f"waiting: the other pane is answering with {loaded.spec.name}", time.monotonic()))
        while not runner.lock.acquire(timeout=0.2):
            if stop.is_set():
                return
    # The answer's clock starts now, not while it waited for the other pane (its TTFT would include that answer).
    sink.put(("started", None, time.monotonic()))
    if stop.is_set():
        runner.lock.release()
        return
    with _active_lock:
        _active_llama[0] += 1
    try:
        # llama.cpp's own default, half the logical CPUs (hyper-threads share a core's arithmetic units), shared
        # between the answers running now. More is much worse, not better: ggml's threads spin at each step's
        # barrier, so a thread without a core of its own stalls all of them (2 threads on a 2-CPU machine with one
        # other busy process: 3-6 tok/s instead of 45-70).
        cores = max(1, _usable_cpus() // 2)
        runner.set_threads(max(1, cores // _active_llama[0]))
        logits = runner.start(ids)
        sequence = torch.tensor([ids], dtype=torch.long)  # (1, prompt + generated)
        for step in range(max_new):
            if stop.is_set():
                return
            scores = torch.from_numpy(logits).unsqueeze(0)  # (1, vocab)
            if ignore_eos:
                scores[:, eos_ids] = float("-inf")
            token = int(processors(sequence, scores).argmax(dim=-1))
            sink.put(("token", token, time.monotonic()))
            if token in eos_ids and not ignore_eos:
                return
            sequence = torch.cat([sequence, torch.tensor([[token]])], dim=1)
            if step + 1 < max_new:
                runner.set_threads(max(1, cores // _active_llama[0]))
                logits = runner.feed([token])
    finally:
        with _active_lock:
            _active_llama[0] -= 1
        runner.lock.release()


def _describe_error(error: BaseException, loaded: LoadedModel) -> str:
    if is_out_of_memory(error):
        return (f"Out of memory while generating with {loaded.spec.name} on {loaded.device}. The model was "
                f"unloaded; try fewer new tokens, 4-bit, or a smaller model.")
    return f"Generation failed: {type(error).__name__}: {error}"


def answer(
    cache: ModelCache,
    spec: ModelSpec,
    options: LoadOptions,
    messages: list[Message],
    fmt: PromptFormat,
    system: str,
    params: GenerationParams,
    stop: threading.Event,
) -> Iterator[StreamUpdate]:
    """One pane's whole job: load the model (yielding progress lines), render the prompt, stream the answer.

    Raises the catalog's, loader's and prompt's errors with their user-facing messages. A model that ran out of
    memory while generating is unloaded, so the next try starts from a clean slate. An endpoint (a server) has
    nothing to load: it streams through :func:`stream_endpoint`.
    """
    if spec.source_type == "endpoint":
        yield from stream_endpoint(spec, messages, fmt, system, params, stop)
        return
    progress: queue.Queue = queue.Queue()
    result: dict[str, Any] = {}

    def load_model() -> None:
        try:
            result["model"] = cache.get(spec, options, progress=progress.put)
        except BaseException as error:
            result["error"] = error
        finally:
            progress.put(None)

    threading.Thread(target=load_model, name=f"load-{spec.name}", daemon=True).start()
    key = cache.key(spec, options)
    while True:
        try:
            line = progress.get(timeout=1.0)
        except queue.Empty:  # a long step (an import) says nothing new for minutes: keep its percentage moving
            item = cache.board.get(key)
            if item is not None and item.finished is None and item.error is None:
                yield StreamUpdate(status=item.describe())
            continue
        if line is None:
            break
        yield StreamUpdate(status=line)
    if "error" in result:
        raise result["error"]
    loaded = result["model"]
    prompt = render(messages, model_format(fmt, spec.trained_format), loaded.kind, loaded.tokenizer, system)
    for update in stream(loaded, prompt, params, stop):
        if update.out_of_memory:
            cache.unload(spec, options)
        yield update


def stream_endpoint(spec: ModelSpec, messages: list[Message], fmt: PromptFormat, system: str,
                    params: GenerationParams, stop: threading.Event) -> Iterator[StreamUpdate]:
    """An OpenAI-compatible endpoint's answer as the same snapshots a local model gives (text so far, TTFT, tok/s,
    tokens, finish reason), so panes, Stop, batches and votes treat it alike. Tokens are the server's count when it
    reports usage at the end, else one per streamed piece (servers send a token per event); sampling fields the
    server refuses (top_k…) are left out and the stats' note says so. A failure — the server
    unreachable, 401, 429, an unknown model, the stream cut — is the snapshot's error, with the text that arrived
    kept exactly as it came."""
    try:
        server = endpoint.parse_source(spec.source, spec.api_key_env)
    except endpoint.EndpointError as error:
        raise ValueError(str(error)) from error
    request = endpoint.EndpointAnswer(server, messages, fmt, system, params)  # PromptError for a wrong format
    stats = StreamStats(backend=endpoint.BACKEND)
    update = StreamUpdate(prompt_text=request.prompt_text, stats=stats, status=f"asking {server.base_url}…")
    events: queue.Queue = queue.Queue()
    started = time.monotonic()
    request.start(events)
    yield update
    pieces, first_at, last_at, reason = 0, started, started, None
    while True:
        if stop.is_set():  # closing the stream ends it now, even while the server is stalled
            kind, value, at = "stopped", None, time.monotonic()
        else:
            try:
                kind, value, at = events.get(timeout=0.1)
            except queue.Empty:
                continue
        stats.elapsed = at - started
        if kind == "note":  # e.g. top_k not sent: the server refuses it
            stats.note = value
            continue
        if kind == "piece":
            if value.text:
                update.status = ""
                pieces += 1
                if pieces == 1:
                    first_at = at
                    stats.time_to_first_token = at - started
                last_at = at
                update.text += value.text
            stats.prompt_tokens = value.prompt_tokens if value.prompt_tokens is not None else stats.prompt_tokens
            stats.new_tokens = value.completion_tokens if value.completion_tokens is not None else pieces
            if stats.new_tokens > 1 and last_at > first_at:
                stats.tokens_per_second = (stats.new_tokens - 1) / (last_at - first_at)
            reason = value.finish_reason or reason
            if value.text or value.completion_tokens is not None:
                yield update
            continue
        update.status = ""
        if kind == "error":
            stats.finish_reason, update.error = "error", value
        elif kind == "stopped":
            request.close()
            stats.finish_reason = "stopped"
        else:
            stats.finish_reason = reason or "eos"
        update.done = True
        yield update
        return


def stream_pair(
    left: Callable[[threading.Event], Iterator[StreamUpdate]],
    right: Callable[[threading.Event], Iterator[StreamUpdate]],
    stop: threading.Event | None = None,
) -> Iterator[tuple[StreamUpdate, StreamUpdate]]:
    """Run two panes at the same time; yield (left, right) snapshots whenever either changes, until both are done.

    Each side runs in its own thread, so loading or generating on one never waits for the other. An exception on
    one side becomes that side's error; closing this generator (the Stop button cancels it) stops both sides.
    """
    stop = stop or threading.Event()
    events: queue.Queue = queue.Queue()
    latest = [StreamUpdate(status="waiting…"), StreamUpdate(status="waiting…")]

    def drive(index: int, job: Callable[[threading.Event], Iterator[StreamUpdate]]) -> None:
        last = latest[index]
        try:
            for last in job(stop):
                events.put((index, replace(last, stats=replace(last.stats))))
        except BaseException as error:
            message = str(error) if isinstance(error, (ValueError, RuntimeError)) else f"{type(error).__name__}: {error}"
            last = replace(last, error=message, done=True, status="", stats=replace(last.stats, finish_reason="error"))
            events.put((index, last))
            return
        if not last.done:
            events.put((index, replace(last, done=True)))

    for index, job in enumerate((left, right)):
        threading.Thread(target=drive, args=(index, job), name=f"pane-{index}", daemon=True).start()
    try:
        while not (latest[0].done and latest[1].done):
            index, update = events.get()
            latest[index] = update
            # Coalesce what is already queued (only the newest snapshot per side matters to the screen), but no
            # more than that: with fast producers "until empty" would never end and nothing would be yielded.
            for _ in range(events.qsize()):
                index, update = events.get_nowait()
                latest[index] = update
            yield latest[0], latest[1]
    finally:
        stop.set()
