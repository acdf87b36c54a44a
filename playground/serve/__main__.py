"""``python -m playground.serve MODEL [--host H] [--port P] [--api-key-env NAME] [--data-dir DIR]`` — serve a model
as an OpenAI-compatible API (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``).

MODEL is anything the app's model boxes take: a catalog name (``gemma-3-270m``, ``tiny + my-run``), a Hugging Face
model folder, a LoRA adapter folder (served on the base it was trained on) or a hub id. It loads once, before the
server listens, the way the app loads it (same backends, prompt formats and generation).

It listens on 127.0.0.1 (this machine only) unless told otherwise, and refuses any other host without an API key.
The key is read from the environment variable ``--api-key-env`` names, so it never shows in the command line
(``ps``), the shell history or the logs. Exit status 2: a bad argument, model or data dir; 1: the model failed to
load.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from playground.core.settings import DATA_DIR_ENV, DataDirError, Settings, default_data_dir, is_loopback
from playground.serve import API_KEY_ENV, DEFAULT_PORT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m playground.serve",
                                     description="Serve a model (a trained adapter too) as an OpenAI-compatible API.")
    parser.add_argument("model", metavar="MODEL",
                        help="catalog name, model folder, adapter folder or hub id (as in the app's model boxes)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default: 127.0.0.1, this machine only; any other needs "
                             "--api-key-env)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--api-key-env", metavar="NAME", default=None,
                        help=f"require the API key held in environment variable NAME (for example {API_KEY_ENV}); "
                             f"clients send it as 'Authorization: Bearer <key>'")
    parser.add_argument("--data-dir", default=None,
                        help=f"the app's data dir, for its local models, adapters and runs and the imported packaged "
                             f"models (default: ${DATA_DIR_ENV} or {default_data_dir()})")
    parser.add_argument("--prompt-format", default="auto", choices=["auto", "chat", "plain", "instruction"],
                        help="how chat messages become the prompt (default: auto: the chat template of an "
                             "instruction-tuned model, plain text for a base model, a tuned adapter's training format)")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "llama.cpp"],
                        help="what runs the model (default: auto, as in the app)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="weights' data type (default: auto)")
    parser.add_argument("--quant", default="none", choices=["none", "4bit"], help="4-bit weights (default: none)")
    return parser.parse_args(argv)


def api_key(host: str, env_name: str | None) -> str | None:
    """The API key from the environment, or None on loopback with no ``--api-key-env``; ValueError with what to do
    for a wide host without a key, or a key variable that is unset or empty."""
    if env_name is None:
        if not is_loopback(host):
            raise ValueError(
                f"With --host {host}, anyone on the network who can reach this machine could use the model, and no "
                f"API key is set. Put a key in an environment variable and name it, for example: "
                f"export {API_KEY_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))') and "
                f"--api-key-env {API_KEY_ENV}; or listen on this machine only (--host 127.0.0.1).")
        return None
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ValueError(f"--api-key-env {env_name}: the environment variable {env_name} is not set or is empty.")
    return key


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        key = api_key(args.host, args.api_key_env)
        if not 0 < args.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
        settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
        settings.ensure_dirs()
    except (DataDirError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # After the checks: a refusal shouldn't wait for torch and FastAPI to import.
    import uvicorn

    from playground.models.catalog import CatalogError, list_models, resolve_choice
    from playground.models.loading import LoadOptions, ModelLoadError, load
    from playground.serve.openai_api import build_app
    from playground.serve.served_model import ServedModel

    try:
        spec = resolve_choice(args.model, list_models(settings))
        if spec.source_type == "endpoint":
            raise CatalogError(f"{spec.name} is an endpoint: it is already served, at its own address.")
    except CatalogError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Loading {spec.name}…", file=sys.stderr, flush=True)
    try:
        loaded = load(spec, settings, LoadOptions(dtype=args.dtype, quant=args.quant, backend=args.backend),
                      progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    said = logging.StreamHandler()  # the server's own lines (a cancelled request), looking like uvicorn's
    said.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logging.getLogger("playground.serve").addHandler(said)
    logging.getLogger("playground.serve").setLevel(logging.INFO)
    served = ServedModel(loaded, spec.name, args.prompt_format)
    app = build_app(served, key, aliases=(args.model,))
    where = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/v1"
    print(f"Serving {spec.name!r} ({loaded.backend} on {loaded.device}) at {where}"
          f"{' — API key required' if key else ''}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
