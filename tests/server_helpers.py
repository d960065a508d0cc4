"""A real server process started for a test: wait until it answers, stop it for good."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import requests


def answers(proc: subprocess.Popen, url: str, output: Path) -> bool:
    """Whether ``url``/healthz answers 200 now; RuntimeError with the server's output if
    the process has exited."""
    if proc.poll() is not None:
        raise RuntimeError(output.read_text())
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def wait_ready(proc: subprocess.Popen, url: str, output: Path, timeout: float = 60) -> None:
    """Return once ``url``/healthz answers 200; RuntimeError with the server's output if it
    exits first, TimeoutError (after killing it) if it never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(proc, url, output):
            return
        time.sleep(0.1)
    stop(proc, signal.SIGKILL)
    raise TimeoutError(f"the server did not become ready:\n{output.read_text()}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Send ``sig``, wait up to 30 s, then kill; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for(check, what: str, seconds: float = 60.0):
    """Poll ``check`` every 0.2 s until it returns something true, and return that;
    AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
