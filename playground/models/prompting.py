"""Prompt formats: how a conversation becomes the exact text a model receives.

Instruction-tuned models were trained on their chat template, so they get it. A base model was only trained to
continue text, so it gets a completion format: the text itself ("plain"), or an Instruction/Response frame that
nudges it towards answering. Seeing the base model *continue* a request instead of answering it is the lecture's
first point ("language modeling ≠ assisting users").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PromptFormat = Literal["auto", "chat", "plain", "instruction"]

FORMAT_HELP: dict[str, str] = {
    "auto": "chat template for instruction-tuned models, plain text for base models",
    "chat": "the model's own chat template",
    "plain": "the conversation as plain text for the model to continue",
    "instruction": "### Instruction: … ### Response: frame",
}

Message = dict[str, str]
"""``{"role": "user" | "assistant", "content": str}``, as in Gradio's Chatbot and transformers' chat templates."""


class PromptError(ValueError):
    """The conversation can't be rendered in the chosen format; the message says what to pick instead."""


@dataclass(frozen=True)
class RenderedPrompt:
    """The text a model receives, and whether the tokenizer should add its special tokens (BOS) around it."""

    text: str
    format: PromptFormat
    add_special_tokens: bool


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def concrete_format(fmt: PromptFormat, kind: str, tokenizer: Any) -> PromptFormat:
    """Resolve ``auto``: chat for an instruct model with a template, plain otherwise."""
    if fmt != "auto":
        return fmt
    return "chat" if kind == "instruct" and has_chat_template(tokenizer) else "plain"


def model_format(fmt: PromptFormat, trained_format: str | None) -> PromptFormat:
    """The format a model is prompted in: "auto" is a tuned adapter's training format when its run recorded one
    (``ModelSpec.trained_format``: it answers best the way it was trained), else ``fmt`` itself (:func:`render`
    resolves a remaining "auto" by the model's kind)."""
    if fmt == "auto" and trained_format:
        return trained_format  # type: ignore[return-value]  # a run records one of the PromptFormat names
    return fmt


def validate_messages(messages: list[Message]) -> None:
    """A conversation alternates user/assistant turns, starts with the user and ends with a non-empty user turn."""
    if not messages:
        raise PromptError("The conversation is empty: type a prompt.")
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected:
            raise PromptError(f"Turn {i + 1} should be from the {expected}, got {message.get('role')!r}.")
    if not messages[-1]["content"].strip():
        raise PromptError("The prompt is empty: type something to send.")


def render(
    messages: list[Message],
    fmt: PromptFormat,
    kind: str,
    tokenizer: Any,
    system: str = "",
) -> RenderedPrompt:
    """Render a conversation (last turn from the user) in a format, ready to tokenize.

    Chat templates write their own special tokens (``<bos>``, ``<|im_start|>``), so their text is tokenized with
    ``add_special_tokens=False``; completion formats let the tokenizer add BOS, which base models such as Gemma
    need to produce sensible text.
    """
    validate_messages(messages)
    fmt = concrete_format(fmt, kind, tokenizer)
    system = system.strip()
    if fmt == "chat":
        return RenderedPrompt(_chat(messages, tokenizer, system), fmt, add_special_tokens=False)
    if fmt == "plain":
        turns = [m["content"].strip() for m in messages]
        text = "\n\n".join(([system] if system else []) + turns)
        if len(messages) > 1:  # the model continues after the last user turn as the next paragraph
            text += "\n\n"
        return RenderedPrompt(text, fmt, add_special_tokens=True)
    if fmt == "instruction":
        parts = [system + "\n\n"] if system else []
        for message in messages:
            if message["role"] == "user":
                parts.append(f"### Instruction:\n{message['content'].strip()}\n\n### Response:\n")
            else:
                parts.append(f"{message['content'].strip()}\n\n")
        return RenderedPrompt("".join(parts), fmt, add_special_tokens=True)
    raise PromptError(f"Unknown prompt format {fmt!r}; choose one of {', '.join(FORMAT_HELP)}.")


def _chat(messages: list[Message], tokenizer: Any, system: str) -> str:
    if not has_chat_template(tokenizer):
        raise PromptError("This model has no chat template: use the plain or instruction format.")
    conversation = ([{"role": "system", "content": system}] if system else []) + list(messages)
    try:
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception as error:  # jinja2 TemplateError: e.g. templates that reject a system turn
        if not system:
            raise PromptError(f"The model's chat template failed: {error}") from error
    # Some templates (Gemma's) have no system role: fold the system prompt into the first user turn instead.
    folded = [{"role": "user", "content": f"{system}\n\n{messages[0]['content']}"}] + list(messages[1:])
    return tokenizer.apply_chat_template(folded, tokenize=False, add_generation_prompt=True)
