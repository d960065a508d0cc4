"""Fuzz /predict and /invocations with schemathesis, driven by our own /openapi.json.

Valid (positive) and invalid (negative) bodies generated from the spec must never get a
5xx, and every failure must carry the one error shape.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from starlette.testclient import TestClient

from core.model.bundle import bundle
from core.serving.app import create_app

# per operation and mode: 4 x 130 = 520 cases at least
EXAMPLES = 130


@pytest.fixture(scope="module")
def app(house_model, house_data):
    b = bundle(house_model, house_data.drop(columns=["price"]), name="house")
    return create_app(b, tokens=[], max_body_bytes=256 * 1024)


@pytest.fixture(scope="module")
def schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:  # one client: fast calls
        yield c


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_no_server_errors(schema, client, path, mode):
    operation = schema[path]["POST"]
    statuses: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        if isinstance(kwargs.get("data"), (bytes, str)):
            kwargs["content"] = kwargs.pop("data")
        response = client.request(**{k: v for k, v in kwargs.items()
                                     if k in ("method", "url", "headers", "params", "content",
                                              "json", "data", "files")})
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert sorted(body["error"]) == ["code", "details", "message"]
            assert "Traceback" not in response.text

    run()
    assert len(statuses) >= EXAMPLES
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses  # the spec's own shapes are accepted
