"""Prompt formats: chat templates for instruct models, completion frames for base models, exact and multi-turn."""

import pytest
from transformers import AutoTokenizer

from playground.models.prompting import PromptError, concrete_format, model_format, render

ONE = [{"role": "user", "content": "Name a fruit."}]
THREE = ONE + [{"role": "assistant", "content": "Apple."}, {"role": "user", "content": "Another?"}]


@pytest.fixture(scope="module")
def chat_tok(tiny_chat):
    return AutoTokenizer.from_pretrained(tiny_chat)


@pytest.fixture(scope="module")
def base_tok(tiny_base):
    return AutoTokenizer.from_pretrained(tiny_base)


def test_auto_picks_chat_for_instruct_and_plain_for_base(chat_tok, base_tok):
    assert concrete_format("auto", "instruct", chat_tok) == "chat"
    assert concrete_format("auto", "base", chat_tok) == "plain"
    assert concrete_format("auto", "instruct", base_tok) == "plain"  # no template to use


def test_auto_means_a_tuned_adapters_training_format():
    assert model_format("auto", "instruction") == "instruction"  # what the run recorded it was trained on
    assert model_format("auto", None) == "auto"  # render picks chat or plain by the model's kind
    assert model_format("plain", "instruction") == "plain"  # a format picked by hand is kept


def test_chat_uses_the_template_and_adds_no_extra_bos(chat_tok):
    prompt = render(THREE, "chat", "instruct", chat_tok, system="Be brief.")
    assert prompt.text == (
        "<|system|>\nBe brief.</s>\n<|user|>\nName a fruit.</s>\n<|assistant|>\nApple.</s>\n"
        "<|user|>\nAnother?</s>\n<|assistant|>\n"
    )
    assert prompt.add_special_tokens is False


def test_plain_is_the_text_itself_for_one_turn(base_tok):
    prompt = render(ONE, "plain", "base", base_tok)
    assert prompt.text == "Name a fruit."
    assert prompt.add_special_tokens is True


def test_plain_multi_turn_and_system(base_tok):
    prompt = render(THREE, "plain", "base", base_tok, system="A list of fruits.")
    assert prompt.text == "A list of fruits.\n\nName a fruit.\n\nApple.\n\nAnother?\n\n"


def test_instruction_frame(base_tok):
    prompt = render(THREE, "instruction", "base", base_tok)
    assert prompt.text == (
        "### Instruction:\nName a fruit.\n\n### Response:\nApple.\n\n### Instruction:\nAnother?\n\n### Response:\n"
    )


def test_chat_without_template_is_refused_with_advice(base_tok):
    with pytest.raises(PromptError, match="no chat template"):
        render(ONE, "chat", "instruct", base_tok)


def test_template_without_system_role_folds_the_system_prompt(chat_tok):
    class NoSystem:
        chat_template = "x"

        def apply_chat_template(self, conversation, **kwargs):
            if conversation[0]["role"] == "system":
                raise ValueError("System role not supported")
            return "|".join(m["content"] for m in conversation)

    assert render(ONE, "chat", "instruct", NoSystem(), system="Sys").text == "Sys\n\nName a fruit."


@pytest.mark.parametrize(
    "messages, message",
    [
        ([], "empty"),
        ([{"role": "user", "content": "   "}], "empty"),
        ([{"role": "assistant", "content": "hi"}], "should be from the user"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "should be from the assistant"),
    ],
)
def test_bad_conversations(base_tok, messages, message):
    with pytest.raises(PromptError, match=message):
        render(messages, "plain", "base", base_tok)
