"""Scraping ``/metrics`` of a multi-worker server and reading its workers' metric files."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> str:
    """``/metrics`` over a fresh connection (urllib opens one per request)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        return response.read().decode()


def value(text: str, sample_name: str, **labels: str) -> float:
    """Sum of the samples named ``sample_name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def wait_for_workers(url: str, n: int, timeout: float = 60) -> None:
    """Until ``n`` workers count themselves in ``/metrics`` (each has started its app)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value(scrape(url), "fixative_worker_processes") == n:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{n} workers did not start"
        time.sleep(0.2)


def predict_counts_by_worker(metrics_dir: Path) -> dict[str, float]:
    """``/predict`` requests per worker process, read from each one's own counter file."""
    counts = {}
    for path in sorted(metrics_dir.glob("counter_*.db")):
        pid = path.stem.rpartition("_")[2]
        counts[pid] = sum(
            s.value for metric in MultiProcessCollector.merge([str(path)])
            for s in metric.samples
            if s.name == "fixative_requests_total" and s.labels.get("route") == "/predict")
    return counts


def settled_predict_counts(metrics_dir: Path, total: float,
                           timeout: float = 10) -> dict[str, float]:
    """The per-worker counts once they add up to ``total`` (or the last seen, after
    ``timeout`` seconds, for the caller's assertion to show)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = predict_counts_by_worker(metrics_dir)
        if sum(counts.values()) == total or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def post_status(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def send_until_every_worker_answered(url: str, metrics_dir: Path, requests: list[bytes],
                                     workers: int = 2, rounds: int = 5) -> tuple[int, list[int]]:
    """Send ``requests`` (request bodies for ``/predict``) from 4 threads, each over a
    fresh connection, again while fewer than ``workers`` processes have answered any.
    Returns (rounds sent, statuses of every request)."""
    statuses: list[int] = []

    def send(body: bytes) -> int:
        return post_status(url + "/predict", body)

    for done in range(1, rounds + 1):
        with ThreadPoolExecutor(4) as pool:
            statuses += pool.map(send, requests)
        if sum(1 for n in predict_counts_by_worker(metrics_dir).values() if n > 0) >= workers:
            return done, statuses
    raise AssertionError(f"{rounds * len(requests)} requests over fresh connections all went "
                         f"to fewer than {workers} workers")
