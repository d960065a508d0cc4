"""Entry point of the workbench image: the watcher beside the workbench, on request.

``python -m core.workbench.container COMMAND ...`` starts ``python -m core watch`` on
``$FIXATIVE_STORE`` when ``FIXATIVE_WATCH`` is ``1`` (or ``true``, ``yes``, ``on``),
then becomes ``COMMAND`` (the Dockerfile's ``CMD``, the workbench), so the container's
main process is still the workbench and stopping the container stops both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from core import settings


def start_watch() -> subprocess.Popen | None:
    if not settings.watch_enabled():
        return None
    return subprocess.Popen([sys.executable, "-m", "core", "watch"], stdin=subprocess.DEVNULL)


def main(argv: Sequence[str]) -> None:
    if not argv:
        sys.exit("usage: python -m core.workbench.container COMMAND [ARG ...]")
    start_watch()
    os.execvp(argv[0], list(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
