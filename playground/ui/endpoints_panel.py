"""Endpoints panel (in Compare): add an OpenAI-compatible server's model as a model source, test the connection,
remove one. Added endpoints are listed in every model box (Compare, Rate, the judge) under their choice string
``endpoint:<api>:<model>@<base_url>`` (:mod:`playground.models.endpoint`). The API key is never typed here: the
user names the environment variable that holds it (``PLAYGROUND_ENDPOINT_KEY_<NAME>`` only), and the key is read
from the app's environment per request and sent only to the host that variable was first saved with."""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from playground.core.settings import Settings
from playground.models.catalog import list_models
from playground.models.endpoint import (
    APIS,
    KEY_PREFIX,
    Endpoint,
    EndpointError,
    check_connection,
    check_key_binding,
    remove_endpoint,
    save_endpoint,
)
from playground.ui.rater import bind

INTRO = ("A model on any OpenAI-compatible server (vLLM, llama.cpp's server, `python -m playground.serve`, OpenAI) "
         "can answer in a pane, in a Rate batch or as the judge. **chat** sends the messages to "
         "`/v1/chat/completions` (the server applies the chat template: instruction-tuned models); **completions** "
         "sends plain text to `/v1/completions` (base models). For the API key give the **name** of the environment "
         f"variable that holds it: only `{KEY_PREFIX}_<NAME>` variables, set before starting the app (e.g. "
         f"`export {KEY_PREFIX}_OPENAI=sk-…`). The key is read when a request is made and never stored, and the "
         "variable is bound to the host it is first added with: its key is never sent anywhere else (Test "
         "connection with a key works once the endpoint is added). Leave it empty for a server without a key. "
         "Everyone who can open the app can add and remove endpoints.")


Choices = Callable[[], list[tuple[str, str]]]
"""The model boxes' choices as they are now (Compare's ``model_choices`` over the catalog)."""


def build(settings: Settings, boxes: list[gr.Dropdown], choices: Choices) -> None:
    """The panel: base URL, model, API, key variable name; Test connection, Add, Remove. ``boxes`` are the two
    model dropdowns that list the endpoints, given ``choices`` again after an add or a remove (their values kept)."""
    with gr.Accordion("Endpoints (OpenAI-compatible servers)", open=False):
        gr.Markdown(INTRO)
        with gr.Row():
            base_url = gr.Textbox(label="Base URL", placeholder="http://127.0.0.1:8000/v1", scale=3)
            model = gr.Textbox(label="Model", placeholder="the id the server lists", scale=2)
            api = gr.Radio(list(APIS), value="chat", label="API")
            key_env = gr.Textbox(label="API key: environment variable NAME", placeholder=f"{KEY_PREFIX}_OPENAI",
                                 info="The variable's name, not the key; empty: no key")
        with gr.Row():
            test = gr.Button("Test connection", size="sm")
            add = gr.Button("Add endpoint", size="sm", variant="primary")
            remove = gr.Button("Remove endpoint", size="sm")
        note = gr.Markdown("")

    form = [base_url, model, api, key_env]
    test.click(bind(test_endpoint, settings), form, note, api_name="endpoint_test")
    add.click(bind(add_endpoint, settings, choices), form + boxes, [note] + boxes, api_name="endpoint_add")
    remove.click(bind(drop_endpoint, settings, choices), form + boxes, [note] + boxes, api_name="endpoint_remove")


# ---------------------------------------------------------------------------------------------- callbacks


def _endpoint(base_url: str | None, model: str | None, api: str | None, key_env: str | None) -> Endpoint:
    try:
        return Endpoint(base_url or "", model or "", api or "chat", key_env or None)  # type: ignore[arg-type]
    except EndpointError as error:
        raise gr.Error(str(error)) from error


def test_endpoint(settings: Settings, base_url: str | None, model: str | None, api: str | None,
                  key_env: str | None) -> str:
    """Test connection (the /endpoint_test endpoint): the server's models, or what is wrong, in words. A key is
    sent only to the origin its variable is bound to in the saved list (else the reason, and nothing is sent)."""
    server = _endpoint(base_url, model, api, key_env)
    try:
        check_key_binding(settings, server)
        return check_connection(server)
    except EndpointError as error:
        return f"**Not usable:** {error}"


def _refreshed(choices: Choices, values: tuple[Any, ...]) -> list[Any]:
    listed = choices()
    return [gr.update(choices=listed, value=value) for value in values]


def add_endpoint(settings: Settings, choices: Choices, base_url: str | None, model: str | None, api: str | None,
                 key_env: str | None, a: str | None = None, b: str | None = None) -> list[Any]:
    """Add endpoint (the /endpoint_add endpoint): saved (URL, model, API, the key's variable name) and listed in
    the model boxes; nothing is sent to the server."""
    server = _endpoint(base_url, model, api, key_env)
    try:
        save_endpoint(settings, server)
    except EndpointError as error:
        raise gr.Error(str(error)) from error
    return [f"Added `{server.source}` ({server.note}): pick it in Model A or B here; Rate lists it after a page "
            f"reload, the Judge tab when it opens."] + _refreshed(choices, (a, b))


def drop_endpoint(settings: Settings, choices: Choices, base_url: str | None, model: str | None, api: str | None,
                  key_env: str | None, a: str | None = None, b: str | None = None) -> list[Any]:
    """Remove endpoint (the /endpoint_remove endpoint): off the model lists; votes that name it are kept."""
    server = _endpoint(base_url, model, api, key_env)
    before = len(list_models(settings))
    remove_endpoint(settings, server.source)
    said = f"Removed `{server.source}`." if len(list_models(settings)) < before else \
        f"`{server.source}` was not in the list; nothing changed."
    return [said] + _refreshed(choices, (a, b))
