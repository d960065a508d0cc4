"""The workbench in a real browser: upload a model file, find the version on Models."""

from __future__ import annotations

import re

import joblib
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.process]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, house_model, house_data):
    folder = tmp_path_factory.mktemp("files")
    model = folder / "house-e2e.joblib"
    joblib.dump(house_model, model)
    sample = folder / "train.csv"
    house_data.head(200).to_csv(sample, index=False)
    return model, sample


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

    page.get_by_role("link", name=re.compile(r"Open house-e2e@")).click()
    page.get_by_role("heading", name="house-e2e").wait_for()
    page.wait_for_url(re.compile(r"/models\?.*model=house-e2e"))
    assert f"version={version}" in page.url
    page.get_by_text(f"house-e2e@{version}").wait_for()
    page.get_by_text("Input prototype").wait_for()
    path = screenshot(page, "workbench-models")
    assert path.stat().st_size > 10_000
    # The version is really in the store the server opened.
    assert (workbench.store / "house-e2e" / version / "data.txt").exists()


def test_password_gate(workbench_factory, page, screenshot):
    bench = workbench_factory(env={"FIXATIVE_PASSWORD": "correct horse"})
    page.goto(f"{bench.url}/upload")
    page.get_by_text("protected by a password").first.wait_for()
    assert page.get_by_text("Upload a model").count() == 0
    field = page.get_by_label("Password")
    field.fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong password").wait_for()
    field.fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Fixative").wait_for()
    page.get_by_text("The store is empty").wait_for()
    screenshot(page, "workbench-signed-in")
    assert "correct horse" not in bench.log.read_text(errors="replace")
