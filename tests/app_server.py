"""Run the real app in-process on a free port for API tests (gradio_client talks to it over HTTP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from gradio_client import Client

from playground.core.settings import Settings
from playground.ui import build_app, launch_kwargs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(settings: Settings) -> Iterator[Client]:
    """The app for ``settings`` (its port is ignored: a free one is used), and a client connected to it (logged in
    when the settings ask for a login)."""
    app = build_app(settings)
    kwargs = launch_kwargs(settings) | {"server_port": free_port()}
    app.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield Client(f"http://127.0.0.1:{kwargs['server_port']}/", auth=settings.auth, verbose=False)
    finally:
        app.close()
