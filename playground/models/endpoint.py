"""OpenAI-compatible endpoints as model sources: what one is, the saved list, and streaming an answer from one.

An endpoint is a server that speaks OpenAI's API (vLLM, llama.cpp's server, ``python -m playground.serve``, OpenAI
itself) and one model it serves. Its catalog source is the choice string ::

    endpoint:<api>:<model>@<base_url>      e.g. endpoint:chat:gpt-4o-mini@https://api.openai.com/v1

``api`` is ``chat`` (an instruction-tuned model: ``/v1/chat/completions``, the server applies its chat template to
the messages and system prompt) or ``completions`` (a base model: ``/v1/completions``, a plain-text prompt rendered
here). The string is what the model boxes show, what a vote stores as the side's model and what the leaderboard
rates, so a vote names the server, the model and the API that answered.

The API key is never part of it: an endpoint names the *environment variable* that holds its key (``key_env``),
and the key is read from ``os.environ`` when a request is made; it is never written to the database, a config, a
log or the saved list (``DATA_DIR/endpoints.json``, which keeps base URL, model, API and that name).

Whoever can use the app can add an endpoint, so the name is not free: only a variable named ``PLAYGROUND_ENDPOINT_KEY``
or ``PLAYGROUND_ENDPOINT_KEY_<SOMETHING>`` may be a key (never HF_TOKEN, AWS_SECRET_ACCESS_KEY…: the app's other
secrets can't be sent anywhere), and a key variable is bound to the origin (scheme, host, port) it is first saved
with: the saved list keeps that binding (``key_hosts``) even when the endpoint is removed, the key is only ever sent
there, and saving it for another origin is refused. The operator changes a binding by editing endpoints.json.

``top_k``, ``repetition_penalty`` and ``ignore_eos`` are not OpenAI parameters (vLLM, llama.cpp's server and
``playground.serve`` take them; OpenAI answers 400 "Unrecognized request argument supplied: top_k"). They are not
sent to api.openai.com; another server that refuses them with a 400 naming one is asked again at once without them,
and not sent them again while the app runs; the pane's stats say so.

Requests go through the maintained ``openai`` client (SSE streaming, typed errors), not a hand-written HTTP parser.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from filelock import FileLock

from playground.core.files import write_atomic
from playground.core.settings import Settings
from playground.models.prompting import Message, PromptError, render, validate_messages

EndpointApi = Literal["chat", "completions"]
APIS: tuple[str, ...] = ("chat", "completions")
PREFIX = "endpoint:"
BACKEND = "endpoint"
"""What a pane's stats line says ran the answer (``on endpoint``)."""

_SOURCE = re.compile(r"^endpoint:(chat|completions):(.+)@(https?://[^@\s]+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_PREFIX = "PLAYGROUND_ENDPOINT_KEY"
"""The only environment variables an endpoint's key may come from: ``PLAYGROUND_ENDPOINT_KEY`` and
``PLAYGROUND_ENDPOINT_KEY_<SOMETHING>``. Any user of the app can add an endpoint; with a free name they could have
the app send HF_TOKEN or AWS_SECRET_ACCESS_KEY to their own server."""
_KEY_NAME = re.compile(rf"^{KEY_PREFIX}(_[A-Za-z0-9_]+)?$")
EXTRAS = ("top_k", "repetition_penalty", "ignore_eos")
"""Sampling fields outside OpenAI's API that vLLM, llama.cpp's server and playground.serve take."""
NO_EXTRAS_HOSTS = frozenset({"api.openai.com"})
"""Hosts known to refuse :data:`EXTRAS` (400 "Unrecognized request argument supplied"): never sent them."""
_REFUSED_EXTRAS: set[str] = set()
"""Base URLs that refused the extras once while the app runs: not sent them again (no 400 and retry per answer)."""
NO_KEY = "no-key"
"""Sent as the bearer token when an endpoint names no key variable: the openai client refuses an empty key, and a
server without authentication ignores the header. (Never OPENAI_API_KEY by default: that would hand the user's
OpenAI key to whatever server the URL names.)"""
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
"""How long a request may wait for the server to connect, and for the next piece of an answer."""


class EndpointError(ValueError):
    """An endpoint that can't be used or didn't answer; the message says what went wrong and what to do."""


@dataclass(frozen=True)
class Endpoint:
    """One model on an OpenAI-compatible server."""

    base_url: str
    """The API's root, usually ending in ``/v1`` (``http://127.0.0.1:8000/v1``)."""
    model: str
    """The model's id as the server's ``/v1/models`` lists it."""
    api: EndpointApi = "chat"
    """``chat``: messages to /v1/chat/completions; ``completions``: plain text to /v1/completions (base models)."""
    key_env: str | None = None
    """The NAME of the environment variable holding the API key (``OPENAI_API_KEY``); None: the server needs none."""

    def __post_init__(self) -> None:
        url = (self.base_url or "").strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointError(f"The base URL {self.base_url!r} is not an http(s) URL; it looks like "
                                f"http://127.0.0.1:8000/v1.")
        if parts.username or parts.password:
            raise EndpointError(f"The base URL carries credentials; leave them out and put the API key in an "
                                f"environment variable {KEY_PREFIX}_<NAME> whose name you give (it is never stored).")
        if "?" in url or "#" in url:  # a query can carry a secret (?api_key=…) that would be saved and shown
            raise EndpointError(f"The base URL {self.base_url!r} has a query or fragment (?… or #…); give the API's "
                                f"root without one (http://127.0.0.1:8000/v1) and put a key in {KEY_PREFIX}_<NAME>.")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError as error:
            raise EndpointError(f"The base URL {self.base_url!r} has a bad port ({error}).") from error
        model = (self.model or "").strip()
        if not model or any(c.isspace() for c in model):
            raise EndpointError(f"The model name {self.model!r} is empty or has spaces; give the id the server "
                                f"lists (Test connection shows them).")
        if self.api not in APIS:
            raise EndpointError(f"The API must be chat or completions, not {self.api!r}.")
        key_env = (self.key_env or "").strip().lstrip("$") or None
        if key_env is not None and not _ENV_NAME.match(key_env):
            raise EndpointError(f"{self.key_env!r} is not an environment variable's name: give the NAME of the "
                                f"variable that holds the key (like {KEY_PREFIX}_OPENAI), never the key itself.")
        if key_env is not None and not _KEY_NAME.match(key_env):
            raise EndpointError(f"${key_env} can't be an endpoint's key: only variables named {KEY_PREFIX} or "
                                f"{KEY_PREFIX}_<NAME> can (so no other secret of the app's environment is ever "
                                f"sent to a server). Put the key in {KEY_PREFIX}_<NAME> before starting the app "
                                f"(export {KEY_PREFIX}_OPENAI=sk-…) and give that name.")
        object.__setattr__(self, "base_url", url)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "key_env", key_env)

    @property
    def source(self) -> str:
        """The catalog source and choice string: ``endpoint:<api>:<model>@<base_url>``."""
        return f"{PREFIX}{self.api}:{self.model}@{self.base_url}"

    @property
    def origin(self) -> str:
        """Where requests go, as a key's binding names it: ``scheme://host:port`` (the port always written)."""
        return origin_of(self.base_url)

    @property
    def kind(self) -> Literal["base", "instruct"]:
        return "instruct" if self.api == "chat" else "base"

    @property
    def name(self) -> str:
        """Short display name: ``<model> @ <host:port>``."""
        return f"{self.model} @ {urlsplit(self.base_url).netloc}"

    @property
    def note(self) -> str:
        """The model lists' note: it is an endpoint, and where its key comes from."""
        return f"endpoint · {self.api} · " + (f"key from ${self.key_env}" if self.key_env else "no key")


def origin_of(url: str) -> str:
    """``scheme://host:port`` of an http(s) URL, lower-case, with the default port written (80 or 443), so
    ``https://API.openai.com/v1`` and ``https://api.openai.com:443`` are one origin."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def is_endpoint(source: str) -> bool:
    return (source or "").startswith(PREFIX)


def parse_source(source: str, key_env: str | None = None) -> Endpoint:
    """The endpoint a choice string names (``endpoint:<api>:<model>@<base_url>``); EndpointError when malformed."""
    match = _SOURCE.match((source or "").strip())
    if match is None:
        raise EndpointError(f"{source!r} is not an endpoint: write endpoint:chat:MODEL@http://HOST:PORT/v1 (or "
                            f"endpoint:completions:… for a base model), or add it under Endpoints.")
    api, model, base_url = match.groups()
    return Endpoint(base_url, model, api, key_env)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- the saved list


def saved_endpoints(settings: Settings) -> list[Endpoint]:
    """The endpoints the user added (``DATA_DIR/endpoints.json``), in the order added; unreadable entries skipped,
    and so is one whose key variable is bound to another origin (a hand-edited file)."""
    return _read(settings)[0]


def key_origin(settings: Settings, key_env: str) -> str | None:
    """The origin the key variable ``key_env`` is bound to (the only one its key is sent to); None: not yet saved."""
    return _read(settings)[1].get(key_env)


def check_key_binding(settings: Settings, server: Endpoint) -> None:
    """EndpointError unless ``server``'s key variable (if any) is bound to its origin in the saved list: Test
    connection sends a key only where it was saved for, so a user can't point a key variable at their own server."""
    if server.key_env is None:
        return
    bound = key_origin(settings, server.key_env)
    if bound is None:
        raise EndpointError(f"${server.key_env} is not the key of a saved endpoint yet: add the endpoint first "
                            f"(that binds the variable to {server.origin} for good), then test it. A key is only "
                            f"ever sent to the host it was saved with.")
    if bound != server.origin:
        raise EndpointError(_bound_elsewhere(server, bound))


def _bound_elsewhere(server: Endpoint, bound: str) -> str:
    return (f"${server.key_env} is the key for {bound} only; it is never sent to {server.origin}. Put the key for "
            f"{server.origin} in another {KEY_PREFIX}_<NAME> variable (set before starting the app).")


def _read(settings: Settings) -> tuple[list[Endpoint], dict[str, str]]:
    """The saved endpoints and the key bindings (variable name → origin). The file is
    ``{"endpoints": [...], "key_hosts": {...}}``; a plain list (the first format) binds each variable to the first
    endpoint that names it."""
    try:
        data = json.loads(settings.endpoints_file.read_text())
    except (OSError, json.JSONDecodeError):
        return [], {}
    rows = data.get("endpoints") if isinstance(data, dict) else data
    hosts_saved = data.get("key_hosts") if isinstance(data, dict) else None
    hosts = {str(k): str(v) for k, v in hosts_saved.items()} if isinstance(hosts_saved, dict) else {}
    found = []
    for row in rows if isinstance(rows, list) else []:
        try:
            server = Endpoint(**row)
        except (TypeError, EndpointError):
            continue
        if server.key_env is not None and hosts.setdefault(server.key_env, server.origin) != server.origin:
            continue
        found.append(server)
    return found, hosts


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Hold the saved list for a read-modify-write: a thread lock for this process's sessions, and a file lock
    (filelock, as run folders' status.json) for other processes with the same data folder."""
    path = settings.endpoints_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, FileLock(path.with_name(f".{path.name}.lock")):
        yield


_LOCK = threading.Lock()


def _write(settings: Settings, endpoints: list[Endpoint], hosts: dict[str, str]) -> None:
    data = {"endpoints": [asdict(e) for e in endpoints], "key_hosts": hosts}
    write_atomic(settings.endpoints_file, json.dumps(data, indent=2) + "\n")  # a reader never sees half a list


def save_endpoint(settings: Settings, endpoint: Endpoint) -> list[Endpoint]:
    """Add ``endpoint`` to the saved list, binding its key variable to its origin. Refused (EndpointError, nothing
    changed): a key variable bound to another origin, and an endpoint already saved with another key variable
    (remove it first). Saving the same endpoint again changes nothing."""
    with _locked(settings):
        endpoints, hosts = _read(settings)
        if endpoint.key_env is not None and hosts.get(endpoint.key_env, endpoint.origin) != endpoint.origin:
            raise EndpointError(_bound_elsewhere(endpoint, hosts[endpoint.key_env]))
        same = next((e for e in endpoints if e.source == endpoint.source), None)
        if same is not None:
            if same.key_env != endpoint.key_env:
                had = f"its key in ${same.key_env}" if same.key_env else "no key"
                raise EndpointError(f"{endpoint.source} is already saved with {had}; remove it first to change "
                                    f"that.")
            return endpoints
        if endpoint.key_env is not None:
            hosts[endpoint.key_env] = endpoint.origin
        endpoints.append(endpoint)
        _write(settings, endpoints, hosts)
        return endpoints


def remove_endpoint(settings: Settings, source: str) -> list[Endpoint]:
    """Drop the endpoint with this source from the saved list (votes that name it keep their records). Its key
    variable stays bound to its origin, so removing and adding again can't send the key elsewhere."""
    with _locked(settings):
        endpoints, hosts = _read(settings)
        kept = [e for e in endpoints if e.source != source]
        if len(kept) < len(endpoints):
            _write(settings, kept, hosts)
        return kept


# ---------------------------------------------------------------------------------------------- the client


def api_key(endpoint: Endpoint) -> str:
    """The key, read from the named environment variable now (never stored); EndpointError when it is unset."""
    if endpoint.key_env is None:
        return NO_KEY
    key = os.environ.get(endpoint.key_env)
    if not key:
        raise EndpointError(f"The environment variable {endpoint.key_env} (the API key for {endpoint.base_url}) is "
                            f"not set in the app's environment: set it and restart the app, or name another one.")
    return key


def client(endpoint: Endpoint) -> Any:
    """An ``openai.OpenAI`` client for this endpoint. No retries: a pane says at once what the server answered
    (a 429 retried in silence would look like a hang)."""
    import openai  # here: the page is built without importing it

    return openai.OpenAI(base_url=endpoint.base_url, api_key=api_key(endpoint), max_retries=0,
                         timeout=openai.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))


def describe_error(error: BaseException, endpoint: Endpoint) -> str:
    """What went wrong talking to ``endpoint``, in words a user can act on (from the openai client's errors)."""
    import openai

    where = endpoint.base_url
    if isinstance(error, EndpointError):
        return str(error)
    if isinstance(error, openai.APITimeoutError):
        return f"{where} didn't answer in time (waited {READ_TIMEOUT_S:.0f} s): is the server overloaded or stuck?"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error.__context__
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        return f"Can't reach {where}{detail}. Is the server running, and is the base URL right (usually …/v1)?"
    if isinstance(error, openai.APIStatusError):
        said = _server_message(error)
        status = error.status_code
        if status == 401:
            fix = f"check the key in ${endpoint.key_env}" if endpoint.key_env else \
                f"it needs an API key: remove the endpoint and add it again with the name of the variable " \
                f"({KEY_PREFIX}_<NAME>) that holds it"
            return f"{where} refused the API key (401 Unauthorized): {fix}. The server said: {said}"
        if status == 403:
            return f"{where} refused the request (403 Forbidden): this key may not use {endpoint.model}. " \
                   f"The server said: {said}"
        if status == 429:
            wait = error.response.headers.get("retry-after")
            return f"{where} is limiting requests (429 Too Many Requests){f': retry after {wait} s' if wait else ''}" \
                   f". Wait and send again. The server said: {said}"
        if status == 404:
            return f"{where} has no model {endpoint.model!r} at /{endpoint.api.replace('chat', 'chat/completions')} " \
                   f"(404 Not Found): Test connection lists what it serves. The server said: {said}"
        hint = " (this server may not take top_k or repetition_penalty: set Top-k to 0 and Repetition penalty to " \
               "1, and they are not sent)" if status in (400, 422) and re.search(r"top_k|repetition", said) else ""
        return f"{where} answered {status}: {said}{hint}"
    return f"{type(error).__name__} talking to {where}: {error}"


def _server_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):  # the client passes the "error" object of OpenAI's error body, or the whole body
        inner = body.get("error")
        message = body.get("message") or (inner.get("message") if isinstance(inner, dict) else inner) \
            or body.get("detail")
        if message:
            return str(message)
    return str(getattr(error, "message", error))


def check_connection(endpoint: Endpoint) -> str:
    """Test connection: ask the server for its models (``/v1/models``) and say whether ``endpoint.model`` is one.
    Returns a Markdown line; raises EndpointError with the reason when the server can't be used."""
    try:
        models = sorted(m.id for m in client(endpoint).models.list())
    except Exception as error:  # every failure becomes the reason, in words
        raise EndpointError(describe_error(error, endpoint)) from error
    listed = ", ".join(f"`{m}`" for m in models[:20]) + (f" and {len(models) - 20} more" if len(models) > 20 else "")
    if endpoint.model in models:
        return f"Connected to {endpoint.base_url}: it serves `{endpoint.model}` ({len(models)} model(s): {listed})."
    return f"Connected to {endpoint.base_url}, but it doesn't list `{endpoint.model}`. It serves: {listed or 'none'}."


@dataclass
class Piece:
    """One server-sent event of an answer, as the stream reader passes it on."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


FINISH_REASONS = {"stop": "eos", "length": "length"}
"""OpenAI's finish reasons in the app's words (the local models' eos / length); others (content_filter…) kept."""


class EndpointAnswer:
    """One streamed answer from an endpoint: the request is built (and checked) here, read in a worker thread that
    puts ``("piece", Piece, time)``, then ``("end", None, time)`` or ``("error", message, time)`` on a queue.
    :meth:`close` (Stop) closes the HTTP stream, so a stalled server can't hold the pane."""

    def __init__(self, endpoint: Endpoint, messages: list[Message], fmt: str, system: str, params: Any) -> None:
        """``params`` is a :class:`playground.models.generation.GenerationParams` (not imported: generation imports
        this module). Chat endpoints take ``auto``/``chat`` (the server's template); completions endpoints a
        completion format (``auto`` = plain), rendered here."""
        validate_messages(messages)
        self.endpoint = endpoint
        system = (system or "").strip()
        body: dict[str, Any] = {"model": endpoint.model, "stream": True, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
                                "stream_options": {"include_usage": True}}
        # Not in OpenAI's API, but vLLM, llama.cpp's server and playground.serve take them. Top-k 0 and repetition
        # penalty 1 are not sent (the server's own default applies); a server that refuses them: see _create.
        extra: dict[str, Any] = {"top_k": params.top_k} if params.top_k > 0 else {}
        if params.repetition_penalty != 1:
            extra["repetition_penalty"] = params.repetition_penalty
        if params.ignore_eos:
            extra["ignore_eos"] = True
        if endpoint.api == "chat":
            if fmt not in ("auto", "chat"):
                raise PromptError(f"{endpoint.name} is a chat endpoint: the server applies the model's own chat "
                                  f"template, so pick the auto or chat format (or add it as a completions endpoint).")
            sent = ([{"role": "system", "content": system}] if system else []) + [dict(m) for m in messages]
            body["messages"] = sent
            self.prompt_text = json.dumps(sent, ensure_ascii=False, indent=1)
        else:
            if fmt == "chat":
                raise PromptError(f"{endpoint.name} is a completions endpoint (plain text): pick the plain or "
                                  f"instruction format (auto = plain), or add it as a chat endpoint.")
            self.prompt_text = render(messages, fmt, "base", None, system).text  # type: ignore[arg-type]
            body["prompt"] = self.prompt_text
        self.body, self.extra = body, extra
        self._stream: Any = None
        self._closed = threading.Event()

    def start(self, sink: queue.Queue) -> None:
        """Send the request and read the answer in a worker thread, onto ``sink``."""
        threading.Thread(target=self._read, args=(sink,), name=f"endpoint-{self.endpoint.model}",
                         daemon=True).start()

    def close(self) -> None:
        """Stop: close the HTTP stream (now, or as soon as the server starts answering)."""
        self._closed.set()
        if self._stream is not None:
            self._stream.close()

    def _read(self, sink: queue.Queue) -> None:
        got_text = finished = False
        try:
            self._stream = self._create(sink)
            if self._closed.is_set():
                self._stream.close()
                return
            for chunk in self._stream:
                piece = Piece()
                if chunk.usage is not None:
                    piece.prompt_tokens = chunk.usage.prompt_tokens
                    piece.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    piece.text = (choice.delta.content if self.endpoint.api == "chat" else choice.text) or ""
                    if choice.finish_reason:
                        piece.finish_reason = FINISH_REASONS.get(choice.finish_reason, choice.finish_reason)
                got_text = got_text or bool(piece.text)
                finished = finished or piece.finish_reason is not None
                sink.put(("piece", piece, time.monotonic()))
            if not finished and not self._closed.is_set():
                sink.put(("error", self._cut(got_text, "the stream ended without a finish reason"), time.monotonic()))
                return
            sink.put(("end", None, time.monotonic()))
        except Exception as error:  # every failure goes to the pane, in words; the other pane carries on
            if self._closed.is_set() or finished:  # stopped, or the answer was whole before the connection went
                sink.put(("end", None, time.monotonic()))
            elif got_text and not finished:
                sink.put(("error", self._cut(got_text, f"{type(error).__name__}: {error}"), time.monotonic()))
            else:
                sink.put(("error", describe_error(error, self.endpoint), time.monotonic()))

    def _create(self, sink: queue.Queue) -> Any:
        """Send the request; the stream. The extras (top_k…) are left out for a server known to refuse them, and
        when the server answers 400/422 naming one, the request is sent once more without them (OpenAI's answer:
        "Unrecognized request argument supplied: top_k"). Either way a ``("note", text, time)`` event says so."""
        import openai

        api = client(self.endpoint)
        create = api.chat.completions.create if self.endpoint.api == "chat" else api.completions.create
        extra, host = self.extra, urlsplit(self.endpoint.base_url).hostname
        if extra and (host in NO_EXTRAS_HOSTS or self.endpoint.base_url in _REFUSED_EXTRAS):
            sink.put(("note", _not_sent(extra, f"{host} doesn't take them"), time.monotonic()))
            extra = {}
        refused: list[str] = []
        try:
            return create(**self.body, extra_body=extra or None)
        except openai.APIStatusError as error:
            refused = [name for name in extra if name in _server_message(error)]
            if error.status_code not in (400, 422) or not refused:
                raise
        # retried outside the except block: an error of the retry doesn't carry the 400 as its context
        _REFUSED_EXTRAS.add(self.endpoint.base_url)
        sink.put(("note", _not_sent(extra, f"{host} refused {', '.join(refused)}"), time.monotonic()))
        return create(**self.body)

    def _cut(self, got_text: bool, why: str) -> str:
        kept = "The text above is what arrived, exactly, cut there." if got_text else "Nothing arrived."
        return f"The connection to {self.endpoint.base_url} broke off mid-answer ({why}). {kept}"


def _not_sent(extra: dict[str, Any], why: str) -> str:
    return f"{', '.join(extra)} not sent: {why}"
