"""The README's Python example runs as written, and its commands match the CLI and CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_example_runs(tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(block)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "fixative-store" / "houses").is_dir()


def test_every_documented_command_exists():
    from core.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    documented = set(re.findall(r"^python -m core ([a-z-]+)", README, flags=re.M))
    assert documented and documented <= commands, documented - commands


def test_ci_runs_the_readme_test_command():
    test_command = re.search(r"Set up and run the tests.*?```bash\n(.*?)\n```", README,
                             flags=re.S).group(1)
    assert test_command in (ROOT / ".ci" / "run").read_text()
