"""Command line: ``python -m core COMMAND ...``.

Each feature module registers its own subcommands (``register(subparsers)``) and
raises :class:`core.errors.FixativeError` on failure; ``main`` turns that into one
clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from core.cli.output import visible
from core.errors import FixativeError

# Modules that add subcommands, each with ``register(subparsers) -> None``.
EXTENSIONS: list[str] = ["core.cli.store", "core.cli.card", "core.cli.deploy", "core.cli.monitor",
                         "core.cli.uploads", "core.cli.workbench", "core.cli.watch"]
# The module that registers each command: a command imports only its own module (listing
# versions must not load pandas for the monitor's sake). Help, and a word that is no
# command, register them all. tests/cli/test_cli_imports.py checks this table.
COMMANDS: dict[str, str] = {
    **dict.fromkeys(["write", "list", "versions", "show", "search", "alias", "history",
                     "delete", "prune", "reindex", "verify", "compile"], "core.cli.store"),
    "card": "core.cli.card",
    **dict.fromkeys(["serve", "endpoints", "docker"], "core.cli.deploy"),
    **dict.fromkeys(["monitor", "monitor-status", "promote", "promotions"], "core.cli.monitor"),
    **dict.fromkeys(["score", "actuals"], "core.cli.uploads"),
    "workbench": "core.cli.workbench",
    **dict.fromkeys(["watch", "watch-set", "watch-test", "watch-history"], "core.cli.watch"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or only with those of ``command``'s module."""
    parser = _Parser(prog="python -m core",
                     description="Fixative: version, deploy, document and monitor models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in [COMMANDS[command]] if command in COMMANDS else EXTENSIONS:
        importlib.import_module(module).register(sub)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first argument, unless it is an option."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _command_word(argv) == "list":  # answered from the listing kept on disk if it can
        from core.cli.quick import answer

        quick = _guarded(lambda: answer(argv))
        if quick is not None:
            return quick
    parser = build_parser(_command_word(argv))
    args = parser.parse_args(argv)
    code = _guarded(lambda: int(args.func(args) or 0))
    return 0 if code is None else code


def _guarded(run: Callable[[], int | None]) -> int | None:
    """``run()``, with a failure as one clear line on stderr and its exit status."""
    try:
        return run()
    except FixativeError as exc:
        print(f"error: {visible(exc.message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (``| head``): what it read is all it wanted. Point
        # stdout at /dev/null so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; check the path and its permissions.",
              file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
