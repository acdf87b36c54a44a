"""RLHF Playground: parse the command line into Settings and launch the web UI. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from playground.core.settings import (
    DATA_DIR_ENV,
    DEFAULT_MODEL_A,
    DEFAULT_MODEL_B,
    OPEN_WITHOUT_LOGIN_FLAG,
    DataDirError,
    Settings,
    default_data_dir,
)


def parse_auth(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASS, both non-empty")
    return user, password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="RLHF Playground: compare a base and an instruction-tuned model side by side, on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 = everyone, "
                             "which needs --auth)")
    parser.add_argument("--port", type=int, default=7860, help="port of the web UI (default: 7860)")
    parser.add_argument("--data-dir", default=None,
                        help=f"where models, votes and runs are kept (default: ${DATA_DIR_ENV} or {default_data_dir()})")
    parser.add_argument("--auth", type=parse_auth, default=None, metavar="USER:PASS",
                        help="require this login to open the app (needed when --host is not loopback, or with --share)")
    parser.add_argument("--share", action="store_true",
                        help="create a public Gradio share link (off by default; needs --auth)")
    parser.add_argument(OPEN_WITHOUT_LOGIN_FLAG, dest="open_without_login", action="store_true",
                        help="let a non-loopback --host or --share start with no login: everyone who can reach the "
                             "app can read and delete votes and start training runs (prints a warning)")
    parser.add_argument("--model-a", default=DEFAULT_MODEL_A,
                        help=f"left model when the app opens: packaged key, hub id or folder (default: {DEFAULT_MODEL_A})")
    parser.add_argument("--model-b", default=DEFAULT_MODEL_B,
                        help=f"right model when the app opens (default: {DEFAULT_MODEL_B})")
    parser.add_argument("--memory-budget-gb", type=float, default=None,
                        help="unload least recently used models beyond this much memory (default: half the RAM)")
    parser.add_argument("--gpu-memory-budget-gb", type=float, default=None,
                        help="the same for models on the GPU (default: 70%% of the card's memory)")
    parser.add_argument("--no-prepare", dest="prepare_models", action="store_false",
                        help="don't load the two panes' models when the app starts (they load on the first Send)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = {"host": args.host, "port": args.port, "auth": args.auth, "share": args.share,
               "model_a": args.model_a, "model_b": args.model_b, "open_without_login": args.open_without_login,
               "prepare_models": args.prepare_models}
    if args.data_dir:
        options["data_dir"] = args.data_dir
    if args.memory_budget_gb is not None:
        options["memory_budget_gb"] = args.memory_budget_gb
    if args.gpu_memory_budget_gb is not None:
        options["gpu_memory_budget_gb"] = args.gpu_memory_budget_gb
    try:
        settings = Settings(**options)
        settings.ensure_dirs()
    except (DataDirError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    warning = settings.no_login_warning()
    if warning:
        print(warning, file=sys.stderr)
    from playground.ui import serve  # after the checks: importing gradio takes a moment

    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
