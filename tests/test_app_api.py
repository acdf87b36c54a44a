"""The Compare endpoint through gradio_client, against the app launched on a free port with tiny models."""

import pytest

from playground.core.settings import Settings
from playground.ratings.store import Store
from tests.app_server import serve


@pytest.fixture(scope="module")
def app_settings(tiny_base, tiny_chat, tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), model_a=str(tiny_base), model_b=str(tiny_chat),
                        memory_budget_gb=1)
    settings.ensure_dirs()
    return settings


@pytest.fixture(scope="module")
def client(app_settings):
    with serve(app_settings) as client:
        yield client


def compare(client, prompt, a, b, new_conversation=True, **overrides):
    if new_conversation:
        client.predict(str(a), str(b), api_name="/clear")
    args = dict(text=prompt, a=str(a), b=str(b), fmt_a="auto", fmt_b="auto", system_text="", temp=0.7, p=0.9, k=50,
                n=12, rep=1.1, seed_value=42, blind_on=False, dtype_value="auto", quant_value="none")
    args.update(overrides)
    return client.predict(*args.values(), api_name="/compare")[:10]  # prompt box, 8 pane parts, loaded models


def answer_text(chat):
    content = chat[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_compare_returns_both_answers_with_stats(client, tiny_base, tiny_chat):
    out = compare(client, "Explain the moon landing.", tiny_base, tiny_chat)
    prompt_box, title_l, title_r, chat_l, chat_r, stats_l, stats_r, sent_l, sent_r, loaded = out
    assert prompt_box == ""
    assert "tiny-base" in title_l and "tiny-chat" in title_r
    assert answer_text(chat_l) and answer_text(chat_r)
    assert "tok/s" in stats_l and "finished" in stats_r
    assert sent_l.startswith("<s>Explain") and "<|assistant|>" in sent_r
    assert "tiny-base" in loaded and "tiny-chat" in loaded


def test_same_seed_same_answers_through_the_api(client, tiny_base, tiny_chat):
    first = compare(client, "Tell me a story.", tiny_base, tiny_chat, temp=1.0, seed_value=9)
    second = compare(client, "Tell me a story.", tiny_base, tiny_chat, temp=1.0, seed_value=9)
    assert answer_text(first[3]) == answer_text(second[3])
    assert answer_text(first[4]) == answer_text(second[4])


def test_follow_up_continues_the_conversation(client, tiny_base, tiny_chat):
    compare(client, "First question?", tiny_base, tiny_chat)
    out = compare(client, "Second question?", tiny_base, tiny_chat, new_conversation=False)
    assert len(out[3]) == len(out[4]) == 4
    assert "First question?" in out[8] and "Second question?" in out[8]  # the chat model saw the whole dialogue


def test_blind_mode_hides_names(client, tiny_base, tiny_chat):
    out = compare(client, "Hello?", tiny_base, tiny_chat, blind_on=True)
    assert "Model 1" in out[1] and "Model 2" in out[2]
    assert "tiny" not in out[1] + out[2]
    # The exact prompt text shows the model's template (a chat model's differs from a base model's): hidden too.
    assert "<|assistant|>" not in out[7] + out[8] and "Hidden in blind mode" in out[7]
    assert answer_text(out[3]) and "tok/s" in out[5]  # the answers and their stats are shown


def test_blind_mode_hides_names_in_errors(client, tiny_chat):
    """A failing model's message names it; blind, the pane says which side failed and how to see why."""
    out = compare(client, "Hello?", "/no/such/folder", tiny_chat, blind_on=True)
    shown = " ".join(str(part) for part in out[:9])
    assert "/no/such/folder" not in shown and "tiny" not in shown
    assert "failed. Press Reveal models to see why" in out[5] + out[6]


def test_clear_in_blind_mode_keeps_the_names_hidden(client, tiny_base, tiny_chat):
    titles = client.predict(str(tiny_base), str(tiny_chat), True, api_name="/clear")[:2]
    assert titles == ("### Left: Model 1", "### Right: Model 2")


def test_unknown_model_is_reported_in_its_pane(client, tiny_chat):
    out = compare(client, "Hello?", "/no/such/folder", tiny_chat)
    assert "not a model folder" in out[5]
    assert answer_text(out[4])  # the other side still answered


def test_empty_prompt_sends_nothing(client, tiny_base, tiny_chat):
    with pytest.raises(Exception, match="Type a prompt first; nothing was sent"):
        compare(client, "   ", tiny_base, tiny_chat)


def test_impossible_setting_is_a_clear_error(client, tiny_base, tiny_chat):
    with pytest.raises(Exception, match="less than minimum value 1"):
        compare(client, "Hi", tiny_base, tiny_chat, n=0)


def test_stop_ends_both_answers(client, tiny_base, tiny_chat):
    import time

    client.predict(str(tiny_base), str(tiny_chat), api_name="/clear")
    args = ["Tell me everything.", str(tiny_base), str(tiny_chat), "plain", "plain", "", 1.0, 1.0, 0, 1024, 1.0, 1,
            False, "auto", "none"]
    job = client.submit(*args, api_name="/compare")
    deadline = time.monotonic() + 60
    while not any("tok/s" in str(out[5]) for out in job.outputs()) and time.monotonic() < deadline:
        time.sleep(0.02)
    client.predict(api_name="/stop")
    out = job.result()
    assert "finished: stopped" in out[5] and "finished: stopped" in out[6]
    with pytest.raises(Exception, match="Nothing to vote on"):  # stopped answers are not complete
        vote(client, "left")


def test_unload_endpoint(client, tiny_base, tiny_chat):
    compare(client, "Hi", tiny_base, tiny_chat)
    assert client.predict(api_name="/unload") == "No models loaded."


def vote(client, side, strength=0, why="", rater="tester"):
    return client.predict(side, strength, why, rater, api_name="/vote")


def test_vote_is_stored_once_and_can_be_changed(client, app_settings, tiny_base, tiny_chat):
    compare(client, "Which is better?", tiny_base, tiny_chat)
    before = Store(app_settings.ratings_db).count()
    note = vote(client, "left", 4, "more fluent")[-1]
    assert "Left" in note and "strength 4" in note
    note = vote(client, "tie")[-1]
    assert "a tie" in note
    store = Store(app_settings.ratings_db)
    assert store.count() == before + 1  # changed, not added
    saved = store.comparisons()[-1]
    assert (saved.winner, saved.strength, saved.rater, saved.prompt) == ("tie", None, "tester", "Which is better?")
    assert saved.a.model == str(tiny_base) and saved.b.model == str(tiny_chat) and saved.left_side == "a"
    assert saved.a.params["seed"] == 42 and saved.a.finish_reason in ("eos", "length")
    assert saved.a.response and saved.a.completion_tokens and saved.a.tokens_per_second


def test_blind_vote_reveals_names_and_records_the_left_model(client, app_settings, tiny_base, tiny_chat):
    compare(client, "Blind question", tiny_base, tiny_chat, blind_on=True)
    title_left, title_right, note = vote(client, "left", rater="blind rater")
    assert "tiny" in title_left and "tiny" in title_right  # revealed after the vote
    saved = Store(app_settings.ratings_db).comparisons()[-1]
    assert saved.blind and saved.rater == "blind rater"
    left_model = saved.a.model if saved.left_side == "a" else saved.b.model
    assert left_model.endswith(title_left.split("/")[-1])
    assert saved.winner == saved.left_side


def test_vote_before_answers_is_refused(client, tiny_base, tiny_chat):
    client.predict(str(tiny_base), str(tiny_chat), api_name="/clear")
    with pytest.raises(Exception, match="Nothing to vote on"):
        vote(client, "left")
