"""mypy (configured in pyproject.toml: the ``core`` package) reports no errors, as CI enforces.

The first run type-checks numpy, pandas and scipy's stubs too: about 40 s of CPU (longer on
a busy machine). Its cache is kept in the system's temporary folder, one per checkout, so
later runs take a few seconds; nothing is written into the checkout.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / (
    "fixative-mypy-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12])


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy", reason="mypy is in requirements-dev.txt")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(CACHE)],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
