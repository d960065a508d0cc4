"""Pin every package of a bundle's image, transitive ones too, with hashes.

``requirements.txt`` of a bundle names the packages the model and the server import, at
exact versions; this step resolves everything they pull in with ``uv pip compile
--generate-hashes`` for the image's one Python on Linux (``--python-version X.Y
--python-platform x86_64-manylinux_2_28``; the hashes cover every file of each pinned
version, so an arm64 build installs the same versions) into ``requirements.lock``, which
the image installs
with ``pip install --require-hashes --no-deps``: no package and no file the lock does
not name can reach the image. Packages installed here pin the transitive ones to the
versions this machine runs (a constraints file), so the image matches what was tested.

Resolving needs the package index (PyPI, or the mirror named in ``UV_INDEX_URL``): when
it cannot be reached the step fails with a message that says so, and a bundle can be
written without the lock (``--no-lock``).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from core.errors import InvalidArgument

LOCK_FILE = "requirements.lock"
TIMEOUT = 600.0
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


# The platform the image resolves for (the base image is a manylinux-compatible Debian).
PLATFORM = "x86_64-manylinux_2_28"

def uv_binary() -> str | None:
    """The uv executable: the one installed with the ``uv`` package, else on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_constraints(exclude: Sequence[str]) -> list[str]:
    """``name==version`` of every distribution installed here but those in ``exclude``."""
    skip = {_canonical(n) for n in exclude}
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _canonical(name) in skip or _canonical(name) in seen:
            continue
        version = dist.version
        if "+" in version:  # a local build (e.g. torch+cpu) is not on the index
            continue
        seen[_canonical(name)] = f"{name}=={version}"
    return sorted(seen.values(), key=str.lower)


def _compile(uv: str, folder: Path, python: str, constrained: bool, timeout: float
             ) -> subprocess.CompletedProcess[str]:
    # Not --universal: it also resolves for every later Python, where pins such as numpy
    # 1.x with onnx (whose ml-dtypes needs numpy 2 on Python 3.13) have no solution.
    command = [uv, "pip", "compile", "requirements.in", "--generate-hashes",
               "--python-platform", PLATFORM, "--python-version", python, "--no-header",
               "--quiet", "-o", LOCK_FILE]
    if constrained:
        command += ["-c", "constraints.txt"]
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def lock(requirement_lines: Sequence[str], python: str, *, timeout: float = TIMEOUT) -> str:
    """The text of ``requirements.lock`` for ``requirement_lines`` on Python ``python``
    (``major.minor``): every package pinned, each with its files' sha256 hashes."""
    uv = uv_binary()
    if uv is None:
        raise InvalidArgument("Cannot pin the image's packages with hashes: uv is not "
                              "installed (pip install uv). Or write the bundle with --no-lock "
                              "(requirements.txt pins only the packages Fixative imports).")
    names = [m.group(1) for line in requirement_lines if (m := _NAME.match(line))]
    with tempfile.TemporaryDirectory(prefix="fixative-lock-") as tmp:
        folder = Path(tmp)
        (folder / "requirements.in").write_text("\n".join(requirement_lines) + "\n")
        (folder / "constraints.txt").write_text("\n".join(installed_constraints(names)) + "\n")
        try:
            done = _compile(uv, folder, python, True, timeout)
            if done.returncode != 0 and any(
                    word in done.stderr.lower() for word in ("unsatisfiable", "no solution")):
                # the model's recorded versions do not go with what is installed here:
                # resolve the transitive packages freely instead
                done = _compile(uv, folder, python, False, timeout)
        except subprocess.TimeoutExpired:
            raise InvalidArgument(f"Pinning the image's packages with hashes took longer than "
                                  f"{timeout:g} s (uv pip compile); check that the package "
                                  "index is reachable, or write the bundle with --no-lock.") \
                from None
        if done.returncode != 0:
            detail = " ".join(done.stderr.strip().splitlines()[-6:])[:800]
            raise InvalidArgument(
                "Cannot pin the image's packages with hashes: uv pip compile failed "
                f"({detail}). It needs the package index: PyPI, or a mirror named in "
                "UV_INDEX_URL. Or write the bundle with --no-lock (requirements.txt pins "
                "only the packages Fixative imports, without hashes).")
        text = (folder / LOCK_FILE).read_text()
    header = ("# Every package of the image, pinned with hashes (uv pip compile "
              f"--generate-hashes --python-platform {PLATFORM}\n"
              f"# --python-version {python} from requirements.txt; constraints.txt held the "
              "versions installed\n# where the bundle was written). Installed with:\n"
              f"#   pip install --require-hashes --no-deps -r {LOCK_FILE}\n")
    return header + text
