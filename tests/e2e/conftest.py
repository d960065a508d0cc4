"""Browser test infrastructure: a real ``streamlit run app.py`` and Debian's chromium.

``workbench_factory(store=..., env=...)`` starts the workbench on a free loopback port
with its own store and waits for ``/_stcore/health``; ``workbench`` is one such
server with a fresh temporary store for the module. ``browser`` is a headless
chromium driven by Playwright; ``page`` is a fresh page in a fresh context.
``screenshot(page, name)`` keeps a PNG under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Workbench:
    url: str
    store: Path
    process: subprocess.Popen
    log: Path


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n"
                               f"{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"streamlit did not become healthy within {STARTUP_TIMEOUT:.0f} s:\n"
                       f"{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def workbench_factory(tmp_path_factory) -> Iterator[Callable[..., Workbench]]:
    started: list[Workbench] = []

    def start(store: Path | None = None, env: dict[str, str] | None = None) -> Workbench:
        base = tmp_path_factory.mktemp("workbench")
        store = store or base / "store"
        port = free_port()
        log = base / "streamlit.log"
        # A password in the test runner's environment must not leak into the server.
        inherited = {k: v for k, v in os.environ.items() if k != "FIXATIVE_PASSWORD"}
        full_env = {**inherited, "FIXATIVE_STORE": str(store),
                    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py",
                 f"--server.port={port}", "--server.address=127.0.0.1",
                 "--server.headless=true", "--server.fileWatcherType=none",
                 "--server.runOnSave=false", "--global.developmentMode=false"],
                cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        bench = Workbench(f"http://127.0.0.1:{port}", Path(store), process, log)
        started.append(bench)
        _wait_healthy(bench.url, process, log)
        return bench

    yield start
    for bench in started:
        bench.process.terminate()
        try:
            bench.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            bench.process.kill()
            bench.process.wait(timeout=5)


@pytest.fixture(scope="module")
def workbench(workbench_factory) -> Workbench:
    return workbench_factory()


# Module scope: Playwright's sync API keeps an event loop running in the main thread
# while it is open, which would break asyncio.run in every test that runs after it.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = (f"{CHROMIUM} is missing; install Debian's chromium "
                   "(apt-get install -y chromium), as .ci/run does")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(page, name)`` saves a full-page PNG under ``test-artifacts/``."""

    def save(page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
