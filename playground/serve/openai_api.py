"""The OpenAI-compatible HTTP API in front of a :class:`~playground.serve.served_model.ServedModel`.

``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions``, streamed (server-sent events ending with
``data: [DONE]``) or not, in OpenAI's JSON shapes, errors included (``{"error": {"message", "type", "param",
"code"}}``: 400 bad parameters or a prompt over the context window, 401 missing or wrong key, 404 another model's
name). FastAPI validates the bodies and uvicorn serves them; only the fields a small local model can honour are
accepted, and the OpenAI fields it can't (several choices, log-probabilities, tools and functions, structured
output, audio, penalties other than repetition) are refused by name rather than ignored.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import threading
import time
import uuid
from typing import Any, AsyncIterator, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from playground.models.generation import GenerationParams
from playground.models.prompting import Message, PromptError, RenderedPrompt
from playground.serve.served_model import MAX_STOPS, Cancelled, ContextTooLong, GenerationFailed, Piece, ServedModel

OWNER = "rlhf-playground"


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            raise ApiError(400, f"A {self.role} message without text content is not supported (no tool calls).",
                           param="messages")
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """What both endpoints share. Unset fields take the app's defaults (:class:`GenerationParams`), except the seed,
    which is drawn at random as OpenAI does; ``top_k`` and ``repetition_penalty`` are the extra fields vLLM and
    llama.cpp's server accept too. The OpenAI fields that would change the answer but can't be honoured are
    declared so they can be refused by name; other unknown fields (``user``, ``metadata``, ``store``: bookkeeping
    that changes no answer) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    logprobs: Any = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    top_logprobs: int | None = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None
    modalities: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None

    def params(self, max_tokens: int | None) -> GenerationParams:
        """The generation settings, or a 400 with generation's own message for an out-of-range value."""
        self._refuse_unsupported()
        given = {"max_new_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                 "top_k": self.top_k, "repetition_penalty": self.repetition_penalty}
        values = {key: value for key, value in given.items() if value is not None}
        values["seed"] = self.seed if self.seed is not None else secrets.randbelow(2**63)
        try:
            return GenerationParams(**values)
        except ValueError as error:
            message = str(error).replace("max_new_tokens", "max_tokens")
            raise ApiError(400, message, param=message.split()[0]) from error

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOPS:
            raise ApiError(400, f"stop takes at most {MAX_STOPS} strings, got {len(stops)}.", param="stop")
        return stops

    def _refuse_unsupported(self) -> None:
        refused = [("n", self.n != 1, "only one choice per request (n=1)"),
                   ("logprobs", self.logprobs not in (None, False), "log-probabilities are not returned"),
                   ("frequency_penalty", self.frequency_penalty != 0, "use repetition_penalty instead"),
                   ("presence_penalty", self.presence_penalty != 0, "use repetition_penalty instead"),
                   ("top_logprobs", self.top_logprobs not in (None, 0), "log-probabilities are not returned"),
                   ("logit_bias", bool(self.logit_bias), "logit_bias is not supported"),
                   ("tools", bool(self.tools), "this server has no tool calling"),
                   ("tool_choice", self.tool_choice not in (None, "none"), "this server has no tool calling"),
                   ("functions", bool(self.functions), "this server has no function calling"),
                   ("function_call", self.function_call not in (None, "none"), "this server has no function calling"),
                   ("response_format", self.response_format not in (None, {"type": "text"}),
                    "only plain text answers (no JSON mode or JSON schema)"),
                   ("modalities", self.modalities not in (None, ["text"]), "only text answers"),
                   ("audio", self.audio is not None, "only text answers"),
                   ("prediction", self.prediction is not None, "predicted outputs are not supported"),
                   ("web_search_options", self.web_search_options is not None, "this server has no web search")]
        for param, bad, why in refused:
            if bad:
                raise ApiError(400, f"Unsupported {param}: {why}.", param=param)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None

    def conversation(self) -> tuple[list[Message], str]:
        """The messages as the app's conversation (user/assistant turns) and its system prompt: system (or
        developer) messages are taken at the start only."""
        system: list[str] = []
        turns: list[Message] = []
        for message in self.messages:
            if message.role in ("system", "developer"):
                if turns:
                    raise ApiError(400, "A system message is only supported before the first user message.",
                                   param="messages")
                system.append(message.text())
            else:
                turns.append({"role": message.role, "content": message.text()})
        return turns, "\n\n".join(system)


class CompletionRequest(Sampling):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def text(self) -> str:
        for param, bad in (("echo", self.echo), ("suffix", self.suffix), ("best_of", self.best_of not in (None, 1))):
            if bad:
                raise ApiError(400, f"Unsupported {param}.", param=param)
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ApiError(400, "Only one prompt per request.", param="prompt")
            return self.prompt[0]
        return self.prompt


def usage(piece: Piece) -> dict[str, int]:
    return {"prompt_tokens": piece.prompt_tokens, "completion_tokens": piece.completion_tokens,
            "total_tokens": piece.prompt_tokens + piece.completion_tokens}


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event: ``data: <json>`` and a blank line."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def pieces(served: ServedModel, prompt: RenderedPrompt, params: GenerationParams, stops: list[str],
                 request: Request) -> AsyncIterator[Piece]:
    """The answer's pieces, generated in a worker thread (generation blocks). Ends the generation when the client
    goes away: Starlette ends a streamed response whose client left, and a watcher asks every half second whether
    the client is still there, whatever the answer is doing (waiting for the model, or writing tokens a plain
    response holds until the end: a check only when no token came would never run while they flow)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.5)
        cancel.set()

    def work() -> None:
        try:
            for piece in served.generate(prompt, params, stops, cancel):
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as error:  # handed to the request's coroutine, which answers with it
            loop.call_soon_threadsafe(queue.put_nowait, error)

    threading.Thread(target=work, name="serve-generate", daemon=True).start()
    watcher = asyncio.create_task(watch())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        watcher.cancel()


def build_app(served: ServedModel, api_key: str | None = None, aliases: tuple[str, ...] = ()) -> FastAPI:
    """The FastAPI app serving ``served``. With ``api_key`` every route needs ``Authorization: Bearer <key>``.
    A request's ``model`` must be the served model's name (or one of ``aliases``: the name it was started with)."""

    async def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise ApiError(401, "Missing or incorrect API key: send it as 'Authorization: Bearer <key>'.",
                           code="invalid_api_key")

    app = FastAPI(title=f"RLHF Playground: {served.name}", dependencies=[Depends(check_key)],
                  docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())
    names = {served.name, *aliases}

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def bad_body(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"{'.'.join(where) or 'body'}: {first.get('msg', 'invalid request')}"
        return ApiError(400, f"Invalid request: {message}", param=".".join(where) or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return ApiError(error.status_code, str(error.detail), code="not_found" if error.status_code == 404 else None
                        ).response()

    def model_card() -> dict[str, Any]:
        return {"id": served.name, "object": "model", "created": started, "owned_by": OWNER}

    def check_model(name: str) -> None:
        if name not in names:
            raise ApiError(404, f"The model {name!r} does not exist here: this server serves {served.name!r}.",
                           param="model", code="model_not_found")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        check_model(name)
        return model_card()

    async def respond(body: Sampling, prompt_of: Any, max_tokens: int | None, request: Request, chat: bool) -> Any:
        check_model(body.model)
        params = body.params(max_tokens)
        stops = body.stops()
        try:
            prompt = prompt_of()
            params = served.fit(prompt, params, max_tokens_given=max_tokens is not None)
        except PromptError as error:
            raise ApiError(400, str(error), param="messages" if chat else "prompt") from error
        except ContextTooLong as error:
            raise ApiError(400, str(error), param="messages" if chat else "prompt",
                           code="context_length_exceeded") from error
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        head = {"id": ident, "created": created, "model": served.name}
        answer = pieces(served, prompt, params, stops, request)
        if not body.stream:
            last = Piece("")
            try:
                async for piece in answer:
                    last = piece
            except GenerationFailed as error:
                raise ApiError(500, str(error), kind="server_error") from error
            except Cancelled:
                # Its client left while it waited for the model. No one reads this (uvicorn drops what is sent
                # after a disconnect): the empty 499, nginx's "client closed request", ends the request quietly
                # instead of an exception's traceback in the log.
                return Response(status_code=499)
            choice: dict[str, Any] = {"index": 0, "finish_reason": last.finish_reason, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": last.answer}
            else:
                choice["text"] = last.answer
            return {**head, "object": "chat.completion" if chat else "text_completion", "choices": [choice],
                    "usage": usage(last)}

        kind = "chat.completion.chunk" if chat else "text_completion"
        with_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(text: str | None, finish: str | None, role: bool = False) -> str:
            if chat:
                delta = ({"role": "assistant"} if role else {}) | ({"content": text} if text is not None else {})
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            return sse({**head, "object": kind, "choices": [choice]} | ({"usage": None} if with_usage else {}))

        async def events() -> AsyncIterator[str]:
            if chat:
                yield chunk("", None, role=True)
            try:
                async for piece in answer:
                    if piece.text:
                        yield chunk(piece.text, None)
                    if piece.finish_reason:
                        yield chunk(None if chat else "", piece.finish_reason)
                        if with_usage:
                            yield sse({**head, "object": kind, "choices": [], "usage": usage(piece)})
            except (GenerationFailed, Cancelled) as error:  # the status line is sent: the error goes in the stream
                yield sse({"error": {"message": str(error) or "cancelled", "type": "server_error", "param": None,
                                     "code": None}})
            yield sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        def prompt() -> RenderedPrompt:
            turns, system = body.conversation()
            return served.chat_prompt(turns, system)

        return await respond(body, prompt, body.max_completion_tokens or body.max_tokens, request, chat=True)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        return await respond(body, lambda: served.text_prompt(body.text()), body.max_tokens, request, chat=False)

    return app
