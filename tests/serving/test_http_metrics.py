"""Server metrics: per-app in one process, merged over worker processes in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import metrics_helpers
import pytest
from starlette.testclient import TestClient

from core.errors import InternalError
from core.model.bundle import bundle
from core.serving.app import create_app
from core.serving.metrics import MULTIPROC_ENV, ServerMetrics, shared_metrics_dir

ROOT = Path(__file__).resolve().parents[2]


# -- one process ------------------------------------------------------------------------------

def test_one_process_keeps_metrics_per_object_and_writes_no_files(monkeypatch, tmp_path):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    a, b = ServerMetrics("m", "v1"), ServerMetrics("m", "v2")
    a.observe("/predict", 200, 0.01)
    a.rows.labels("predict").inc(3)
    a.close()  # nothing to hand back in one process
    text_a, text_b = a.render().decode(), b.render().decode()
    assert metrics_helpers.value(text_a, "fixative_requests_total", route="/predict") == 1
    assert metrics_helpers.value(text_b, "fixative_requests_total", route="/predict") == 0
    assert metrics_helpers.value(text_a, "fixative_worker_processes") == 1
    assert metrics_helpers.value(text_b, "fixative_model_info", version="v2") == 1
    assert metrics_helpers.value(text_b, "fixative_model_info", version="v1") == 0
    assert list(tmp_path.iterdir()) == []


def test_requests_in_progress_counts_the_scrape_itself(house_model, house_data):
    app = create_app(bundle(house_model, house_data.drop(columns="price"), name="house"),
                     tokens=[])
    rows = house_data.drop(columns="price").head(2).to_dict(orient="records")
    with TestClient(app) as client:
        client.post("/predict", json=rows)
        client.post("/predict", json=[{"nope": 1}])
        text = client.get("/metrics").text
    assert metrics_helpers.value(text, "fixative_requests_in_progress", route="/predict") == 0
    assert metrics_helpers.value(text, "fixative_requests_in_progress", route="/metrics") == 1
    assert metrics_helpers.value(text, "fixative_requests_total", route="/predict") == 2


# -- the multiprocess directory ------------------------------------------------------------------

def test_shared_dir_is_fresh_private_named_in_the_environment_and_removed(monkeypatch,
                                                                          tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    monkeypatch.setenv(MULTIPROC_ENV, "/somewhere/else")
    with shared_metrics_dir() as first:
        assert os.environ[MULTIPROC_ENV] == first
        assert Path(first).parent == tmp_path and os.listdir(first) == []
        assert Path(first).stat().st_mode & 0o777 == 0o700
        with shared_metrics_dir() as second:
            assert second != first
        (Path(first) / "counter_1.db").write_bytes(b"left over")
    assert not Path(first).exists() and not Path(second).exists()
    assert os.environ[MULTIPROC_ENV] == "/somewhere/else"


def test_shared_dir_is_removed_and_the_environment_restored_after_an_error(monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with pytest.raises(KeyboardInterrupt), shared_metrics_dir() as path:
        raise KeyboardInterrupt
    assert not Path(path).exists() and MULTIPROC_ENV not in os.environ


def test_multiprocess_mode_refuses_a_missing_directory(tmp_path):
    with pytest.raises(InternalError, match=r"metrics directory .*nowhere .*does not exist; the "
                                            r"process that starts the workers must create it"):
        ServerMetrics("m", "v", str(tmp_path / "nowhere"))


def test_multiprocess_mode_refuses_a_directory_set_too_late(tmp_path):
    # This process imported prometheus-client without the variable: its values stay in
    # memory, so files of other workers would be merged without this one's.
    with pytest.raises(InternalError, match="PROMETHEUS_MULTIPROC_DIR was set after "
                                            "prometheus-client was imported in this process"):
        ServerMetrics("m", "v", str(tmp_path))


# -- worker processes sharing a directory ----------------------------------------------------------

WORKER = """
import os, signal, sys
from core.serving.metrics import ServerMetrics
metrics = ServerMetrics("m", "v", os.environ["PROMETHEUS_MULTIPROC_DIR"])
requests, ending = int(sys.argv[1]), sys.argv[2]
for _ in range(requests):
    metrics.observe("/predict", 200, 0.02)
    metrics.rows.labels("predict").inc(2)
metrics.observe("/predict", 422, 0.001)
metrics.errors.labels("predict", "invalid_input").inc()
if ending == "close":
    metrics.close()
elif ending == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
else:
    sys.stdout.write(metrics.render().decode())
"""


def _worker(directory: Path, requests: int, ending: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), MULTIPROC_ENV: str(directory)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(WORKER), str(requests), ending],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_workers_add_up_and_ended_ones_leave_only_their_totals(tmp_path):
    closed = _worker(tmp_path, 3, "close")
    assert closed.returncode == 0, closed.stderr
    killed = _worker(tmp_path, 4, "kill")
    assert killed.returncode == -9, killed.stderr
    # The killed worker's live gauges are still on disk until a scrape finds it gone.
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 1
    scraper = _worker(tmp_path, 5, "render")
    assert scraper.returncode == 0, scraper.stderr
    text = scraper.stdout
    value = metrics_helpers.value
    assert value(text, "fixative_requests_total", route="/predict", status="200") == 12
    assert value(text, "fixative_requests_total", route="/predict", status="422") == 3
    assert value(text, "fixative_rows_predicted_total", route="predict") == 24
    assert value(text, "fixative_errors_total", code="invalid_input") == 3
    assert value(text, "fixative_request_duration_seconds_count", route="/predict") == 15
    buckets = {le: value(text, "fixative_request_duration_seconds_bucket", route="/predict",
                         le=le) for le in ("0.002", "0.01", "0.025")}
    assert buckets == {"0.002": 3, "0.01": 3, "0.025": 15}  # cumulative over all workers
    # Live gauges: only the worker that is still running counts.
    assert value(text, "fixative_worker_processes") == 1
    assert value(text, "fixative_model_info", model="m", version="v") == 1
    assert 'pid="' not in text
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 1  # the scraper's own
    assert len(list(tmp_path.glob("counter_*.db"))) == 3
