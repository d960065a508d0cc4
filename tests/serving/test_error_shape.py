"""One error shape on the wire, for every route and every kind of failure.

Every failure is ``{"error": {"code": str, "message": str, "details": list}}`` with the
status the code stands for, and no response carries a traceback or a server path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from core.model.bundle import bundle
from core.serving.app import create_app

LIMIT = 4096
TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def house(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]), name="house")


@pytest.fixture(scope="module")
def client(house):
    with TestClient(create_app(house, tokens=[TOKEN], max_body_bytes=LIMIT),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def record(house):
    return house.prototype.example_record()


def assert_error_shape(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"]
    err = body["error"]
    assert sorted(err) == ["code", "details", "message"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    assert isinstance(err["details"], list)
    assert r.headers["x-request-id"]
    assert_no_leak(r.text)
    return err


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    for fragment in ("/work/", "/usr/", "site-packages", "/tmp/", ".py\"", ".py,", ".py:"):
        assert fragment not in text, fragment


def chunks(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


POST_ROUTES = ["/predict", "/invocations"]


@pytest.mark.parametrize("path", POST_ROUTES + ["/predict_proba"])
def test_401_without_a_token(client, path, record):
    r = client.post(path, json=[record])
    assert_error_shape(r, 401, "unauthorized")


@pytest.mark.parametrize("path", ["/", "/openapi.json", "/metadata", "/prototype", "/pin-url",
                                  "/metrics"])
def test_401_on_get_routes(client, path):
    assert_error_shape(client.get(path), 401, "unauthorized")


@pytest.mark.parametrize("method, path", [("GET", "/nope"), ("POST", "/predict/extra/x"),
                                          ("GET", "/%2e%2e/etc/passwd"), ("DELETE", "/x")])
def test_404_unknown_route(client, method, path):
    err = assert_error_shape(client.request(method, path, headers=AUTH), 404, "not_found")
    assert "There is no route" in err["message"]


@pytest.mark.parametrize("method, path", [("GET", "/predict"), ("PUT", "/predict"),
                                          ("DELETE", "/invocations"), ("POST", "/ping"),
                                          ("POST", "/metadata"), ("PATCH", "/")])
def test_405_wrong_method(client, method, path):
    err = assert_error_shape(client.request(method, path, headers=AUTH), 405,
                             "method_not_allowed")
    assert "is not allowed on" in err["message"]


def test_404_pin_url_and_proba_on_a_regressor(client, record):
    assert_error_shape(client.get("/pin-url", headers=AUTH), 404, "not_found")
    assert_error_shape(client.post("/predict_proba", json=[record], headers=AUTH), 404,
                       "not_found")


@pytest.mark.parametrize("path", POST_ROUTES)
def test_413_from_content_length(client, path, record):
    body = json.dumps([record] * 200).encode()
    assert len(body) > LIMIT
    err = assert_error_shape(client.post(path, content=body, headers=AUTH), 413,
                             "payload_too_large")
    assert "limit of" in err["message"]


@pytest.mark.parametrize("path", POST_ROUTES)
def test_413_when_streamed_without_content_length(client, path, record):
    body = json.dumps([record] * 200).encode()
    r = client.post(path, content=chunks(body), headers=AUTH)  # chunked: no length
    assert_error_shape(r, 413, "payload_too_large")


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("ctype", ["application/xml", "multipart/form-data; boundary=x",
                                   "image/png"])
def test_415_wrong_content_type(client, path, ctype, record):
    r = client.post(path, content=json.dumps([record]), headers={**AUTH, "content-type": ctype})
    err = assert_error_shape(r, 415, "unsupported_media_type")
    assert "application/json" in err["message"]


HOSTILE = [
    b"",
    b"[{",
    b"[NaN]",
    b"[{\"bedrooms\": Infinity}]",
    b"[" * 100_000,
    b"\xff\xfe\xfd",
    b"\"just a string\"",
    b"true",
    b"[1, 2]",
    b"{\"columns\": [\"a\", \"a\"], \"data\": [[1, 2]]}",
]


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
def test_400_malformed(client, path, body):
    big = len(body) > LIMIT
    r = client.post(path, content=body, headers=AUTH)
    if big:
        assert_error_shape(r, 413, "payload_too_large")
    else:
        assert_error_shape(r, 400, "bad_request")


def test_deep_nesting_is_413_before_parsing(house):
    with TestClient(create_app(house, tokens=[])) as c:
        r = c.post("/predict", content=b"[" * 100_000 + b"]" * 100_000)
        err = assert_error_shape(r, 413, "payload_too_large")
        assert "nested 100000 levels deep" in err["message"]
        r = c.post("/invocations", content=b"{\"inputs\": " + b"[" * 50_000)
        assert_error_shape(r, 413, "payload_too_large")


def test_csv_malformed_is_400(client):
    r = client.post("/invocations", content=b"", headers={**AUTH, "content-type": "text/csv"})
    assert_error_shape(r, 400, "bad_request")


@pytest.mark.parametrize("path", POST_ROUTES)
def test_422_validation(client, path, record):
    rows = [dict(record, bedrooms="lots"), dict(record, bathrooms=None)]
    body = rows if path == "/predict" else {"dataframe_records": rows}
    err = assert_error_shape(client.post(path, json=body, headers=AUTH), 422, "invalid_input")
    assert {d["column"] for d in err["details"]} == {"bedrooms", "bathrooms"}


@pytest.mark.parametrize("path", POST_ROUTES)
def test_422_empty(client, path):
    body = [] if path == "/predict" else {"inputs": []}
    err = assert_error_shape(client.post(path, json=body, headers=AUTH), 422, "invalid_input")
    assert "no rows" in err["message"]


def test_422_huge_integer(client, record):
    text = json.dumps(record)[:-1] + ', "bedrooms": 99999999999999999999999999}'
    r = client.post("/predict", content=("[" + text + "]").encode(), headers=AUTH)
    assert_error_shape(r, 422, "invalid_input")


class Raising:
    """A model whose predict raises with a server path in the message."""

    def __init__(self, inner):
        self.inner = inner
        self.feature_names_in_ = inner.feature_names_in_

    def predict(self, X):
        raise ValueError("could not read /srv/models/house/v1/model.joblib at line 3")


class Unserialisable:
    def __init__(self, inner):
        self.inner = inner
        self.feature_names_in_ = inner.feature_names_in_

    def predict(self, X):
        return np.array([object() for _ in range(len(X))], dtype=object)


class WrongLength(Unserialisable):
    def predict(self, X):
        return np.zeros(len(X) + 3)


def test_422_when_the_model_raises(house, record):
    b = bundle(house.model, None, name="raising")
    b.meta = house.meta
    b.model = Raising(house.model)
    with TestClient(create_app(b, tokens=[])) as c:
        err = assert_error_shape(c.post("/predict", json=[record]), 422, "prediction_failed")
    assert "ValueError" in err["message"] and "/srv/" not in err["message"]


@pytest.mark.parametrize("cls", [Unserialisable, WrongLength])
def test_500_keeps_the_shape_and_hides_internals(house, record, cls):
    b = bundle(house.model, None, name="broken")
    b.meta = house.meta
    b.model = cls(house.model)
    with TestClient(create_app(b, tokens=[]), raise_server_exceptions=False) as c:
        r = c.post("/predict", json=[record])
        err = assert_error_shape(r, 500, "internal_error")
        assert r.headers["x-request-id"] in err["message"] or cls is WrongLength
        assert c.get("/ping").status_code == 200  # the server keeps serving


def test_success_responses_leak_nothing_either(client, record):
    for path in ["/", "/openapi.json", "/metadata", "/prototype", "/metrics"]:
        r = client.get(path, headers=AUTH)
        assert r.status_code == 200
        assert "Traceback" not in r.text


# -- any bytes, any content type, any POST route: never a 5xx ---------------------------------

CONTENT_TYPES = [None, "application/json", "text/csv", "application/csv", "text/plain",
                 "text/json", "application/x-www-form-urlencoded", "application/vnd.a+json",
                 "text/csv; charset=latin-1", "application/json; charset=utf-16",
                 "multipart/form-data; boundary=x", "image/png", b"\xe9/\xe9"]
FRAGMENTS = [b"bedrooms", b"zipcode", b",", b"\n", b"\r\n", b'"', b"[", b"]", b"{", b"}",
             b":", b"1", b"-1e999", b"null", b"\x80", b"\xff\xfe", b"\xc3", b"\x00",
             b"\\u0000", b"\\", b"NaN", b"dataframe_split", b"columns", b"data", b"inputs"]
bodies = st.one_of(st.binary(max_size=300),
                   st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join))


@pytest.fixture(scope="module")
def churn_open(churn_model, churn_data):
    b = bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn")
    with TestClient(create_app(b, tokens=[], log=False),
                    raise_server_exceptions=False) as c:
        yield c


def test_the_csv_that_was_a_500_is_a_400(client, churn_open):
    body = b"bedrooms\n1\n1,2\n\x80\n"
    for c, headers in ((client, AUTH), (churn_open, {})):
        for path in POST_ROUTES:
            r = c.post(path, content=body, headers={**headers, "content-type": "text/csv"})
            err = assert_error_shape(r, 400, "bad_request")
            assert err["message"].startswith("The CSV body is not valid UTF-8 text")


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(body=bodies, ctype=st.sampled_from(CONTENT_TYPES),
       path=st.sampled_from(["/predict", "/invocations", "/predict_proba"]))
def test_random_bytes_never_get_a_5xx(churn_open, body, ctype, path):
    headers = {} if ctype is None else {"content-type": ctype}
    r = churn_open.post(path, content=body, headers=headers)
    assert r.status_code < 500, (body, ctype, r.text)
    if r.status_code >= 400:
        assert r.status_code in (400, 404, 413, 415, 422), r.status_code
        assert sorted(r.json()["error"]) == ["code", "details", "message"]
        assert_no_leak(r.text)
