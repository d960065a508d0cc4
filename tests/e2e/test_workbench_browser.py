"""The workbench in a real browser: upload a model file, find the version on Models."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.process]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, house_model, house_data):
    folder = tmp_path_factory.mktemp("files")
    model = folder / "house-e2e.joblib"
    joblib.dump(house_model, model)
    sample = folder / "train.csv"
    house_data.head(200).to_csv(sample, index=False)
    return model, sample


@pytest.mark.browser
def test_upload_then_browse(workbench, page, model_files, screenshot):
    model, sample = model_files
    page.goto(f"{workbench.url}/upload")
    page.get_by_role("heading", name="Upload a model").wait_for()
    inputs = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    inputs.nth(0).set_input_files(str(model))
    page.get_by_text("Every import in this file is on the allowlist").wait_for()
    inputs.nth(1).set_input_files(str(sample))
    page.get_by_text("Creates the model").wait_for()
    page.get_by_role("button", name="Store version").click()
    stored = page.get_by_text(re.compile(r"Stored house-e2e version"))
    stored.wait_for(timeout=60_000)
    version = re.search(r"version (\S+)\.", stored.inner_text()).group(1)
    screenshot(page, "workbench-upload")

    screenshot(page, "workbench-stored")
    page.get_by_role("link", name=re.compile(r"Open house-e2e@")).click()
    page.get_by_role("heading", name="house-e2e", exact=True).wait_for()
    page.wait_for_url(re.compile(r"/models\?.*model=house-e2e"))
    assert f"version={version}" in page.url
    page.get_by_text(f"house-e2e@{version}").wait_for()
    page.get_by_text("Input columns", exact=True).first.wait_for()
    # The app's frame is there too: the shared picker shows the new model.
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value("house-e2e")
    page.locator(".js-plotly-plot").first.wait_for()
    path = screenshot(page, "workbench-models")
    assert path.stat().st_size > 10_000
    # The version is really in the store the server opened.
    assert (workbench.store / "house-e2e" / version / "data.txt").exists()


@pytest.mark.browser
def test_password_gate(workbench_factory, page, screenshot):
    bench = workbench_factory(env={"FIXATIVE_PASSWORD": "correct horse"})
    # A fresh server, and a link straight to a page: the gate still comes first.
    page.goto(f"{bench.url}/upload")
    field = page.get_by_label("Password", exact=True)
    field.wait_for()
    screenshot(page, "workbench-password")
    assert page.get_by_text("Upload a model").count() == 0
    field.fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong password").wait_for()
    field.fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    # the page the link asked for, not Home
    page.get_by_role("heading", name="Upload a model").wait_for()
    assert page.url.endswith("/upload")
    screenshot(page, "workbench-signed-in")
    assert "correct horse" not in bench.log.read_text(errors="replace")


def test_dockerfile_healthcheck_probe_works(workbench):
    # The image's HEALTHCHECK command, pointed at this server's port.
    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    check = text[text.index("HEALTHCHECK"):].replace("\\\n", " ").splitlines()[0]
    argv = json.loads(check[check.index("CMD") + 3:].strip())
    port = workbench.url.rsplit(":", 1)[1]
    argv = [sys.executable if a == "python" else a.replace(":8501/", f":{port}/") for a in argv]
    assert subprocess.run(argv, timeout=30).returncode == 0
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    argv[-1] = argv[-1].replace(f":{port}/", f":{closed}/")
    assert subprocess.run(argv, timeout=30, capture_output=True).returncode != 0


@pytest.mark.browser
def test_a_custom_metric_error_stays_in_view(workbench, page, house_model, house_data,
                                             screenshot):
    from core.model.bundle import bundle
    from core.store.versionstore import VersionStore

    VersionStore(str(workbench.store)).write(
        bundle(house_model, house_data.drop(columns=["price"]).head(200), name="house-mon"))
    page.goto(f"{workbench.url}/monitor?model=house-mon")
    page.get_by_role("heading", name="Monitor · house-mon").wait_for()
    page.get_by_role("tab", name="Custom metrics").click()
    form = page.locator('[data-testid="stForm"]')
    form.get_by_label("Name").fill("sneaky")
    form.get_by_label("SQL aggregate over the logged rows of a window").fill(
        "(SELECT count(*) FROM read_csv('/etc/passwd'))")
    form.get_by_role("button", name="Save custom metric").click()
    error = page.get_by_text(re.compile("subquer"))
    error.wait_for(timeout=30_000)
    # the page did not jump back to the first tab: the message and the form are in view
    expect(page.get_by_role("tab", name="Custom metrics")).to_have_attribute(
        "aria-selected", "true")
    expect(error).to_be_visible()
    expect(form.get_by_label("SQL aggregate over the logged rows of a window")).to_have_value(
        "(SELECT count(*) FROM read_csv('/etc/passwd'))")
    screenshot(page, "monitor-custom-metric-error")
