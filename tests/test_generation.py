"""Generation: seeded streaming, stats, finish reasons, stop, context truncation, two panes at once, failures."""

import threading

import pytest
import torch

from playground.models.catalog import ModelSpec
from playground.models.generation import GenerationParams, answer, fit_to_context, stream, stream_pair
from playground.models.loading import LoadOptions, ModelCache, load
from playground.models.prompting import render

MSG = [{"role": "user", "content": "Explain the moon landing to a six year old."}]


@pytest.fixture(scope="module")
def base_model(tiny_base, tmp_path_factory):
    from playground.core.settings import Settings

    return load(ModelSpec(str(tiny_base)), Settings(data_dir=tmp_path_factory.mktemp("data"), memory_budget_gb=1))


def final(loaded, params, stop=None, messages=MSG):
    prompt = render(messages, "plain", loaded.kind, loaded.tokenizer)
    texts, last = [], None
    for last in stream(loaded, prompt, params, stop):
        texts.append(last.text)
    return texts, last


def test_same_seed_same_answer_other_seed_other_answer(base_model):
    params = GenerationParams(temperature=1.0, max_new_tokens=24, seed=7)
    _, first = final(base_model, params)
    _, again = final(base_model, params)
    _, other = final(base_model, GenerationParams(temperature=1.0, max_new_tokens=24, seed=8))
    assert first.text == again.text
    assert first.text != other.text


def test_seed_holds_while_another_answer_samples_at_the_same_time(base_model):
    params = GenerationParams(temperature=1.0, max_new_tokens=24, seed=3)
    _, alone = final(base_model, params)
    noise = threading.Thread(target=lambda: [torch.rand(1000) for _ in range(2000)])
    noise.start()  # draws from torch's global generator meanwhile
    _, together = final(base_model, params)
    noise.join()
    assert together.text == alone.text


def test_greedy_matches_plain_generate(base_model):
    params = GenerationParams(temperature=0, repetition_penalty=1.0, max_new_tokens=16)
    _, last = final(base_model, params)
    tok = base_model.tokenizer
    ids = tok(MSG[0]["content"], return_tensors="pt")
    out = base_model.model.generate(**ids, max_new_tokens=16, do_sample=False, eos_token_id=tok.eos_token_id,
                                    pad_token_id=tok.pad_token_id)
    assert last.text == tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_streams_token_by_token_with_stats(base_model):
    texts, last = final(base_model, GenerationParams(max_new_tokens=20, seed=1))
    assert len(texts) >= 20  # an initial snapshot, then one per token, then the final one
    assert last.done and last.stats.finish_reason in ("length", "eos")
    assert 1 <= last.stats.new_tokens <= 20
    assert last.stats.time_to_first_token > 0
    assert last.stats.tokens_per_second > 0
    assert last.prompt_text.startswith("<s>Explain")
    assert "tokens" in last.stats.summary() and "finished" in last.stats.summary()


def test_finish_reason_length(base_model):
    _, last = final(base_model, GenerationParams(max_new_tokens=5, seed=1, temperature=0))
    if last.stats.new_tokens == 5:
        assert last.stats.finish_reason == "length"


def test_finish_reason_eos(base_model, monkeypatch):
    eos = base_model.tokenizer.eos_token_id

    class ForceEos:
        def __call__(self, input_ids, scores):
            out = torch.full_like(scores, float("-inf"))
            out[:, eos] = 0
            return out

    import playground.models.generation as generation

    monkeypatch.setattr(generation, "SeededSampler", lambda params, device: ForceEos())
    _, last = final(base_model, GenerationParams(max_new_tokens=10))
    assert last.stats.finish_reason == "eos" and last.stats.new_tokens == 1


def test_stop_ends_the_answer_early(base_model):
    stop = threading.Event()
    prompt = render(MSG, "plain", "base", base_model.tokenizer)
    last = None
    for last in stream(base_model, prompt, GenerationParams(max_new_tokens=200, seed=2), stop):
        if last.stats.new_tokens == 3:
            stop.set()
    assert last.stats.finish_reason == "stopped"
    assert last.stats.new_tokens < 200


def test_long_prompt_is_truncated_and_says_so(base_model):
    long = [{"role": "user", "content": "the moon " * 400}]  # far past the 256-token context
    _, last = final(base_model, GenerationParams(max_new_tokens=32, seed=1), messages=long)
    assert last.stats.truncated_tokens > 0
    assert last.stats.prompt_tokens + 32 <= 256
    assert "prompt truncated" in last.stats.summary()
    assert last.prompt_text.startswith("<s>")  # BOS kept


def test_fit_to_context():
    assert fit_to_context([1, 2, 3], 10, 4, bos=1) == ([1, 2, 3], 0, 4)
    assert fit_to_context([1, 5, 6, 7, 8, 9], 6, 2, bos=1) == ([1, 7, 8, 9], 2, 2)
    assert fit_to_context([5, 6, 7, 8], 4, 1, bos=1) == ([6, 7, 8], 1, 1)
    ids, dropped, max_new = fit_to_context(list(range(2, 12)), 8, 100, bos=None)
    assert max_new == 4 and len(ids) == 4 and dropped == 6


@pytest.mark.parametrize("field, value", [("temperature", -1), ("top_p", 0), ("top_k", -2), ("max_new_tokens", 0),
                                          ("repetition_penalty", 0.1), ("seed", -5)])
def test_impossible_params_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        GenerationParams(**{field: value})


def test_pair_streams_both_at_the_same_time(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    params = GenerationParams(max_new_tokens=40, seed=5, temperature=0.8)
    jobs = [lambda stop, p=p: answer(cache, ModelSpec(str(p)), LoadOptions(), MSG, "auto", "", params, stop)
            for p in (tiny_base, tiny_chat)]
    snapshots = list(stream_pair(jobs[0], jobs[1]))
    left, right = snapshots[-1]
    assert left.done and right.done and left.text and right.text
    assert left.prompt_text.startswith("<s>Explain") and "<|assistant|>" in right.prompt_text
    # Both were streaming at once: some snapshot shows both sides mid-answer.
    assert any(0 < left.stats.new_tokens < 40 and 0 < right.stats.new_tokens < 40 and not left.done
               and not right.done for left, right in snapshots)
    # The pair gives each side the same answer it gives alone.
    alone = [u for u in answer(cache, ModelSpec(str(tiny_base)), LoadOptions(), MSG, "auto", "", params,
                               threading.Event())][-1]
    assert alone.text == left.text


def test_pair_stop_cancels_both(settings, tiny_base, tiny_chat):
    cache = ModelCache(settings)
    params = GenerationParams(max_new_tokens=400, seed=5)
    stop = threading.Event()
    jobs = [lambda s, p=p: answer(cache, ModelSpec(str(p)), LoadOptions(), MSG, "plain", "", params, s)
            for p in (tiny_base, tiny_chat)]
    for left, right in stream_pair(jobs[0], jobs[1], stop):
        if left.stats.new_tokens >= 2 or right.stats.new_tokens >= 2:
            stop.set()
    assert left.stats.finish_reason == right.stats.finish_reason == "stopped"


def test_pair_closing_the_stream_stops_the_workers():
    seen = threading.Event()

    def endless(stop):
        from playground.models.generation import StreamUpdate

        while not stop.is_set():
            yield StreamUpdate(text="x")
        seen.set()
        yield StreamUpdate(done=True)

    pair = stream_pair(endless, endless)
    next(pair)
    pair.close()  # what Gradio does when the user cancels
    assert seen.wait(5)


def test_pair_reports_one_sides_error_and_finishes_the_other(settings, tiny_base):
    cache = ModelCache(settings)
    params = GenerationParams(max_new_tokens=8)
    def good(stop):
        return answer(cache, ModelSpec(str(tiny_base)), LoadOptions(), MSG, "plain", "", params, stop)
    def bad(stop):
        return answer(cache, ModelSpec("/no/such/model"), LoadOptions(), MSG, "plain", "", params, stop)
    *_, (left, right) = stream_pair(good, bad)
    assert left.done and left.error is None and left.text
    assert right.done and right.stats.finish_reason == "error"
    assert "no config.json" in right.error


def test_pair_chat_format_on_a_base_model_is_an_error_in_that_pane(settings, tiny_base):
    cache = ModelCache(settings)
    def job(stop):
        return answer(cache, ModelSpec(str(tiny_base)), LoadOptions(), MSG, "chat", "", GenerationParams(),
                                  stop)
    *_, (left, _) = stream_pair(job, lambda stop: iter(()))
    assert "no chat template" in left.error


def test_out_of_memory_while_generating_unloads_the_model(settings, tiny_base, monkeypatch):
    cache = ModelCache(settings)
    spec = ModelSpec(str(tiny_base))
    loaded = cache.get(spec)

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loaded.model, "generate", boom)
    last = list(answer(cache, spec, LoadOptions(), MSG, "plain", "", GenerationParams(), threading.Event()))[-1]
    assert last.stats.finish_reason == "error" and "Out of memory" in last.error
    assert cache.loaded() == []
