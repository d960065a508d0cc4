"""``python -m core workbench [--public] [--port N] [--store URL]``: start the workbench.

Runs ``streamlit run app.py`` in the project folder (so ``.streamlit/config.toml``
applies: this machine only, watching the app's own files). ``--public`` listens on
every network interface and is refused unless ``$FIXATIVE_PASSWORD`` is set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from core import settings
from core.errors import InvalidArgument
from core.store.paths import local_root

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"
DEFAULT_PORT = 8501


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "workbench", help="start the workbench (this machine only; --public for the network)",
        description="Start the Streamlit workbench. It listens on 127.0.0.1 (this machine "
                    "only) unless --public is given; --public listens on every network "
                    f"interface and needs {settings.PASSWORD_ENV}.")
    bench.add_argument("--public", action="store_true",
                       help=f"listen on every network interface (0.0.0.0); refused unless "
                            f"{settings.PASSWORD_ENV} is set")
    bench.add_argument("--port", default=str(DEFAULT_PORT),
                       help=f"port to listen on (default {DEFAULT_PORT})")
    bench.add_argument("--store", metavar="URL", default=None,
                       help="board folder or fsspec URL (default: $FIXATIVE_STORE or "
                            "./fixative-store)")
    bench.set_defaults(func=run)


def command(public: bool, port: int) -> list[str]:
    """The streamlit command line the launcher runs."""
    address = EVERY_INTERFACE if public else LOOPBACK
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            f"--server.address={address}", f"--server.port={port}", "--server.headless=true"]


def _port(text: str) -> int:
    try:
        port = int(str(text).strip())
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"--port {str(text)[:20]!r} is not a port number; give one "
                              f"from 1 to 65535, e.g. --port {DEFAULT_PORT}.")
    return port


def run(args: Any) -> int:
    if args.public and not settings.password():
        raise InvalidArgument(
            f"Refusing to listen on every network interface without a password: anyone who "
            f"can reach this machine could upload, trust, deploy or delete models. Set "
            f"{settings.PASSWORD_ENV} (e.g. {settings.PASSWORD_ENV}='a long passphrase' "
            "python -m core workbench --public), or leave out --public to use the workbench "
            "on this machine only.")
    port = _port(args.port)
    env = dict(os.environ)
    location = args.store if args.store is not None else settings.store_location()
    if not location.strip():
        raise InvalidArgument("--store is empty; give a board folder or URL, or leave it out "
                              "to use $FIXATIVE_STORE or ./fixative-store.")
    root = local_root(location)
    # The workbench runs in the project folder: a relative store means the one here.
    env[settings.STORE_ENV] = root if root is not None else location
    os.chdir(ROOT)
    sys.stdout.flush()
    os.execve(sys.executable, command(args.public, port), env)
    return 0  # pragma: no cover - execve does not return
