"""Prometheus metrics of one prediction server.

One process (``create_app`` in a program or a test, ``serve`` with one worker): the
metrics live in a registry of the app's own, so several apps in one process count
apart and nothing global is touched.

Several worker processes (``serve --workers N``, a Docker bundle with
``FIXATIVE_WORKERS`` > 1): prometheus-client's multiprocess mode, so that ``/metrics``
describes the whole server whichever worker answers the scrape. The supervising process
creates a private directory with :func:`shared_metrics_dir` and names it in
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; prometheus-client, imported
afresh in each worker, then keeps every value in per-process files there, and
``/metrics`` merges the files of all workers. Counters and histograms add up over every
worker that ever ran in this server, exited ones included, so totals never go back
when a worker is replaced. Each gauge says how it merges where it is made.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.errors import InternalError
from core.processes import pid_alive
from core.settings import METRICS_DIR_ENV as MULTIPROC_ENV

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384)
CONTENT_TYPE = CONTENT_TYPE_LATEST
DIR_PREFIX = "fixative-metrics-"


class ServerMetrics:
    """Requests by route and status, latency, rows predicted, errors, batch sizes,
    requests in progress, live worker processes and the model version served.

    ``multiprocess_dir``: the directory shared by the server's worker processes (see
    the module docstring); None keeps the metrics in this object's own registry.
    """

    def __init__(self, model: str, version: str, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        r: CollectorRegistry | None
        if multiprocess_dir is None:
            self.registry = CollectorRegistry(auto_describe=True)
            r = self.registry
        else:
            _check_multiprocess(multiprocess_dir)
            from prometheus_client.multiprocess import MultiProcessCollector

            # The metrics register nowhere: their values are in the shared files, and a
            # registry holding them as well as the collector would export them twice.
            r = None
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=multiprocess_dir)
        labels = {"model": model, "version": version}
        self.requests = Counter("fixative_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("fixative_request_duration_seconds",
                                 "Whole-request latency by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Counter("fixative_rows_predicted", "Input rows predicted by route",
                            ["route"], registry=r)
        self.errors = Counter("fixative_errors", "Failed requests by route and error code",
                              ["route", "code"], registry=r)
        self.batch_rows = Histogram("fixative_batch_rows", "Rows per model call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("fixative_batch_requests", "Requests per model call",
                                        buckets=BATCH_BUCKETS, registry=r)
        # livesum: what the running workers are busy with now. A worker that exited
        # (or was killed) serves nothing, so its share is dropped, not frozen in.
        self.in_progress = Gauge("fixative_requests_in_progress",
                                 "Requests being answered now, by route", ["route"],
                                 multiprocess_mode="livesum", registry=r)
        # livesum again: 1 per running worker adds up to how many serve right now.
        workers = Gauge("fixative_worker_processes", "Server processes answering requests",
                        multiprocess_mode="livesum", registry=r)
        workers.set(1)
        # max: every worker serves the same version, so the merged value stays 1 (a sum
        # would report N) and stays so while workers are replaced.
        info = Gauge("fixative_model_info", "The model version this server serves (always 1)",
                     list(labels), multiprocess_mode="max", registry=r)
        info.labels(**labels).set(1)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, n_requests: int, n_rows: int) -> None:
        self.batch_requests.observe(n_requests)
        self.batch_rows.observe(n_rows)

    def render(self) -> bytes:
        if self.multiprocess_dir is not None:
            _reap_dead_workers(self.multiprocess_dir)
        return generate_latest(self.registry)

    def close(self) -> None:
        """This process stops serving: its live gauges leave the merged view (its
        counters and histograms stay in the totals)."""
        if self.multiprocess_dir is not None:
            _mark_dead(os.getpid(), self.multiprocess_dir)


# -- multiprocess mode ---------------------------------------------------------------------


def _check_multiprocess(path: str) -> None:
    from prometheus_client import values

    if not os.path.isdir(path):
        raise InternalError(f"The metrics directory {path} ({MULTIPROC_ENV}) does not exist; "
                            "the process that starts the workers must create it first.")
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise InternalError(f"{MULTIPROC_ENV} was set after prometheus-client was imported in "
                            "this process, so its metrics would not reach the shared "
                            "directory; set it before the worker processes start.")


def _mark_dead(pid: int, path: str) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    try:
        mark_process_dead(pid, path)
    except FileNotFoundError:  # another worker removed the same files first
        pass


def _reap_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that ended without shutting down (killed,
    crashed): a clean shutdown does so itself, and the supervisor has no hook for it."""
    pids = set()
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        tail = os.path.basename(file)[:-3].rpartition("_")[2]
        if tail.isdigit():
            pids.add(int(tail))
    for pid in pids - {os.getpid()}:
        if not pid_alive(pid):
            _mark_dead(pid, path)


@contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh private directory for the metric files of worker processes started inside
    the block, named in ``PROMETHEUS_MULTIPROC_DIR`` meanwhile (started processes inherit
    it) and removed, with the previous value restored, when the block ends.

    A fresh directory per run matters: files left by an earlier server would be merged
    into this one's totals.
    """
    path = tempfile.mkdtemp(prefix=DIR_PREFIX)  # mode 0700: only this user reads it
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
