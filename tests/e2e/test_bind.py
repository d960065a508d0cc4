"""Where the workbench listens: this machine by default; the network only behind a password.

Real processes: ``streamlit run app.py`` as a person starts it (so ``.streamlit/config.toml``
decides the address), and ``python -m core workbench`` (the launcher the Docker image runs).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, _wait_healthy, free_port

from core.model.bundle import bundle
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process

CONFIG = ROOT / ".streamlit" / "config.toml"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FIXATIVE_PASSWORD", "STREAMLIT_SERVER_ADDRESS")}
    return {**env, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **extra}


def _listening(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def started(tmp_path):
    processes: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"server-{len(processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
        processes.append(process)
        return process, log

    yield start
    for process in processes:
        _stop(process)


def test_config_listens_on_loopback_and_skips_the_clones_bulk():
    server = tomllib.loads(CONFIG.read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert {".venv", "fixative-store", ".git"} <= set(server["folderWatchBlacklist"])


@pytest.mark.browser
def test_default_start_answers_on_loopback_only_and_store_writes_stay_quiet(
        started, page, house_model, house_data):
    store = ROOT / "test-artifacts" / "bind-store"  # inside the clone, as ./fixative-store is
    shutil.rmtree(store, ignore_errors=True)
    port = free_port()
    process, log = started([sys.executable, "-m", "streamlit", "run", "app.py",
                            f"--server.port={port}", "--server.headless=true"],
                           _env(FIXATIVE_STORE=str(store)))
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process, log)
        assert _listening(process.pid) == {"127.0.0.1"}
        for address in _other_addresses():
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
                pass
        # A session imports the app's modules, so they are watched; then the store changes.
        page.goto(f"http://127.0.0.1:{port}/models")
        page.get_by_text("no models yet", exact=False).first.wait_for(timeout=60_000)
        features = house_data.drop(columns=["price"]).head(200)
        target = VersionStore(str(store))
        for _ in range(3):
            target.write(bundle(house_model, features, name="watched"))
        page.reload()
        page.get_by_role("combobox", name="Model").wait_for(timeout=60_000)
        text = log.read_text(errors="replace")
        assert "Watch" not in text and "WARNING" not in text and "Traceback" not in text, text
        assert len(text) < 2_000, text[:2_000]
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_launcher_refuses_public_without_password():
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "core", "workbench", "--public", "--port",
                             str(port)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: Refusing to listen on every network interface "
                                    "without a password")
    assert "Set FIXATIVE_PASSWORD" in result.stderr and "leave out --public" in result.stderr


@pytest.mark.parametrize("password", ["", "   "])
def test_an_empty_password_is_no_password(password, monkeypatch, capsys):
    from core.cli.main import main

    monkeypatch.setenv("FIXATIVE_PASSWORD", password)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("the launcher started streamlit"))
    assert main(["workbench", "--public", "--port", str(free_port())]) == 1
    assert "Refusing to listen on every network interface" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["0", "65536", "http", "", "-1", "8501" * 100])
def test_launcher_rejects_bad_ports(port, capsys, monkeypatch):
    from core.cli.main import main

    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("the launcher started streamlit"))
    assert main(["workbench", "--port", port]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a port number" in err


@pytest.mark.browser
def test_launcher_public_with_password_listens_everywhere_behind_the_gate(started, page,
                                                                          tmp_path):
    port = free_port()
    process, log = started([sys.executable, "-m", "core", "workbench", "--public", "--port",
                            str(port), "--store", str(tmp_path / "store")],
                           _env(FIXATIVE_PASSWORD="a long passphrase"))
    _wait_healthy(f"http://127.0.0.1:{port}", process, log)
    assert _listening(process.pid) == {"0.0.0.0"}
    page.goto(f"http://127.0.0.1:{port}/upload")
    page.get_by_label("Password", exact=True).wait_for()
    assert page.get_by_text("Upload a model").count() == 0


def test_app_shows_only_the_fix_when_exposed_without_password(tmp_path, monkeypatch):
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert [e.value for e in at.error] == [
            "The workbench is listening on 0.0.0.0 with no password, so anyone who can reach "
            "this machine could upload, trust, deploy or delete models. Set FIXATIVE_PASSWORD "
            "to a password and restart it, or listen on this machine only (server.address = "
            "\"127.0.0.1\", the default in .streamlit/config.toml)."]
        assert not at.sidebar.selectbox and not at.title and not at.text_input
        monkeypatch.setenv("FIXATIVE_PASSWORD", "set")
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.error and at.text_input(key="_fx_login_password") is not None
    finally:
        config.set_option("server.address", before)
