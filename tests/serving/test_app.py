"""The prediction server in-process (Starlette's TestClient inside ``with``: lifespan runs)."""

from __future__ import annotations

import asyncio
import json
import re

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from core import settings
from core.errors import BadRequest
from core.model.bundle import bundle
from core.serving.app import create_app
from core.serving.engine import OnnxEngine
from core.store.predlog import log_relation
from core.store.versionstore import VersionStore


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    s = VersionStore(str(tmp_path_factory.mktemp("srv") / "board"))
    # compiled when written, so the contract tests run on both engines
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.COMPILE_ENV, "1")
        s.write(bundle(house_model, house_data.drop(columns=["price"]), name="house",
                       description="House prices", metrics={"rmse": 41000.0}))
        s.write(bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn"))
    return s


@pytest.fixture(scope="module")
def house(store):
    return store.read("house")


@pytest.fixture(scope="module")
def churn(store):
    return store.read("churn")


def engine_app(board, name, engine, **kwargs):
    """The app of ``name``'s latest version on ``engine``: the onnx one is built from the
    compiled graph alone (its bundle has no model object)."""
    kwargs.setdefault("tokens", [])
    if engine == "sklearn":
        return create_app(board.read(name), **kwargs)
    version = board.versions(name)[-1].version
    graph_bundle, report, graph = board.read_graph(name, version)
    assert graph_bundle.model is None
    onnx = OnnxEngine(graph, report, graph_bundle.meta.classes)
    return create_app(graph_bundle, engine=onnx, **kwargs)


@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def client(request, store):
    with TestClient(engine_app(store, "house", request.param)) as c:
        assert c.app.state.svc.engine.name == request.param
        # the graph is fed validated arrays: no per-request DataFrame on its fast path
        assert c.app.state.svc.converter.columns is (request.param == "onnx")
        yield c


@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def churn_client(request, store):
    with TestClient(engine_app(store, "churn", request.param)) as c:
        assert c.app.state.svc.engine.name == request.param
        yield c


@pytest.fixture(scope="module")
def features(house_data):
    return house_data.drop(columns=["price"]).head(6).reset_index(drop=True)


def records(frame):
    return json.loads(frame.to_json(orient="records"))


# -- vetiver format --------------------------------------------------------------------------


def test_predict_records(client, house, features):
    r = client.post("/predict", json=records(features))
    assert r.status_code == 200
    assert list(r.json()) == ["predict"]
    np.testing.assert_allclose(r.json()["predict"], house.predict(features))
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    assert "x-fixative-warnings" not in r.headers


def test_predict_without_content_type_as_vetivers_client_sends(client, house, features):
    r = client.post("/predict", content=features.to_json(orient="records"),
                    headers={"content-type": ""})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predict"], house.predict(features))


def test_predict_columnar_and_csv(client, house, features):
    expected = house.predict(features)
    split = json.loads(features.to_json(orient="split", index=False))
    r = client.post("/predict", json=split)
    np.testing.assert_allclose(r.json()["predict"], expected)
    r = client.post("/predict", content=features.to_csv(index=False),
                    headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predict"], expected)


def test_client_request_id_is_kept_when_sane(client, features):
    body = records(features.head(1))
    r = client.post("/predict", json=body, headers={"X-Request-ID": "order-42:a.b"})
    assert r.headers["x-request-id"] == "order-42:a.b"
    r = client.post("/predict", json=body, headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    r = client.post("/predict", json=body, headers={"X-Request-ID": "x" * 200})
    assert len(r.headers["x-request-id"]) == 32


def test_warnings_travel_in_a_header(client, features):
    rec = records(features.head(2))
    rec[0]["zipcode"] = "99999"
    rec[1]["note"] = "extra"
    r = client.post("/predict", json=rec)
    assert r.status_code == 200
    assert list(r.json()) == ["predict"]
    warnings = json.loads(r.headers["x-fixative-warnings"])
    assert any("extra columns dropped: 'note'" in w for w in warnings)
    assert any("zipcode" in w and "never seen in training (99999)" in w for w in warnings)


def test_non_ascii_warnings_are_escaped(client, features):
    rec = records(features.head(1))
    rec[0]["größe"] = 1
    r = client.post("/predict", json=rec)
    assert r.status_code == 200
    assert "größe" in json.loads(r.headers["x-fixative-warnings"])[0]


def test_validation_lists_every_problem(client, features):
    rec = records(features.head(3))
    rec[0]["bedrooms"] = "many"
    rec[2]["bathrooms"] = None
    del rec[1]["grade"]
    r = client.post("/predict", json=rec)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    cols = {(d["column"], d["problem"]) for d in err["details"]}
    assert {("bedrooms", "wrong_type"), ("bathrooms", "null"), ("grade", "null")} <= cols


# -- MLflow format ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances", "inputs",
                                 "inputs_rows", "columns"])
def test_invocations_formats(client, house, features, fmt):
    split = json.loads(features.to_json(orient="split", index=False))
    body = {
        "dataframe_split": {"dataframe_split": split},
        "dataframe_records": {"dataframe_records": records(features)},
        "instances": {"instances": records(features)},
        "inputs": {"inputs": records(features)},
        "inputs_rows": {"inputs": split["data"]},
        "columns": {"inputs": {c: features[c].tolist() for c in features.columns}},
    }[fmt]
    r = client.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["predictions"]
    np.testing.assert_allclose(r.json()["predictions"], house.predict(features))


def test_invocations_csv(client, house, features):
    r = client.post("/invocations", content=features.to_csv(index=False).encode(),
                    headers={"content-type": "text/csv"})
    np.testing.assert_allclose(r.json()["predictions"], house.predict(features))


def test_invocations_predict_proba_param(churn_client, churn, churn_data):
    feats = churn_data.drop(columns=["churned"]).head(4)
    r = churn_client.post("/invocations", json={"dataframe_records": records(feats),
                                                "params": {"predict_method": "predict_proba"}})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predictions"], churn.predict_proba(feats))
    r = churn_client.post("/invocations", json={"inputs": records(feats),
                                                "params": {"predict_method": "explain"}})
    assert r.status_code == 400
    assert "must be 'predict' or 'predict_proba'" in r.json()["error"]["message"]


# -- classifiers -------------------------------------------------------------------------------


def test_classifier_predict_and_proba(churn_client, churn, churn_data):
    feats = churn_data.drop(columns=["churned"]).head(5)
    r = churn_client.post("/predict", json=records(feats))
    assert r.json()["predict"] == churn.predict(feats).tolist()
    r = churn_client.post("/predict_proba", json=records(feats))
    body = r.json()
    assert body["classes"] == churn.meta.classes
    np.testing.assert_allclose(body["predict_proba"], churn.predict_proba(feats))
    np.testing.assert_allclose(np.sum(body["predict_proba"], axis=1), 1.0)


def test_predict_proba_on_a_regressor_is_a_clear_404(client, features):
    r = client.post("/predict_proba", json=records(features.head(1)))
    assert r.status_code == 404
    assert "has no predict_proba" in r.json()["error"]["message"]
    assert "POST /predict" in r.json()["error"]["message"]
    # on /invocations the route exists: the parameter is what is wrong
    r = client.post("/invocations", json={"inputs": records(features.head(1)),
                                          "params": {"predict_method": "predict_proba"}})
    assert r.status_code == 400
    assert "params.predict_method is 'predict_proba', but model 'house'" in \
        r.json()["error"]["message"]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_compressed_bodies_are_a_clear_415(client, features, encoding):
    import gzip

    body = gzip.compress(json.dumps(records(features.head(2))).encode())
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json",
                                                       "Content-Encoding": encoding})
    assert r.status_code == 415
    assert f"Content-Encoding '{encoding}' is not supported; send the body uncompressed" in \
        r.json()["error"]["message"]


def test_a_trailing_slash_is_not_redirected_by_the_host_header(client, features):
    r = client.post("/predict/", json=records(features.head(1)),
                    headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers
    assert r.json()["error"]["code"] == "not_found"


# -- GET routes ---------------------------------------------------------------------------------


def test_ping_and_healthz(client, house):
    assert client.get("/ping").json() == {"ping": "pong"}
    r = client.get("/healthz")
    assert r.json() == {"status": "ready", "model": "house", "version": house.version}


def test_healthz_is_503_outside_the_lifespan(house):
    c = TestClient(create_app(house, tokens=[]))  # no ``with``: never started
    r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"


def test_metadata_has_vetivers_shape(store, house):
    with TestClient(create_app(house, store=store, log=False, tokens=[])) as c:
        meta = c.get("/metadata").json()
        assert set(meta) == {"user", "version", "url", "required_pkgs", "python_version"}
        assert meta["version"] == house.version
        assert meta["url"] == f"{store.url}/house/{house.version}/"
        assert any(p.startswith("scikit-learn==") for p in meta["required_pkgs"])
        assert meta["python_version"][:2] == list(house.meta.environment["python_version"][:2])
        assert meta["user"]["description"] == "House prices"
        assert c.get("/pin-url").json() == repr(f"{store.url}/house/{house.version}/")


def test_pin_url_without_a_store_is_404(client):
    r = client.get("/pin-url")
    assert r.status_code == 404
    assert "not in a store" in r.json()["error"]["message"]


def test_prototype_has_vetivers_shape(client, house):
    proto = client.get("/prototype").json()
    assert proto["title"] == "prototype" and proto["type"] == "object"
    assert proto["required"] == house.prototype.names
    assert proto["properties"]["bedrooms"]["type"] == "integer"
    assert proto["properties"]["zipcode"]["type"] == "string"
    assert proto["properties"]["bathrooms"]["example"] == house.prototype.column(
        "bathrooms").example


def test_docs_page_is_offline_and_complete(client, house):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    for name in house.prototype.names:
        assert f'data-column="{name}"' in page
    assert "<form" in page and 'fetch("predict"' in page
    # no public URL: the browser's own address fills the examples in (the page's script)
    assert 'curl -X POST <span class="base-url"></span>/predict' in page
    assert 'requests.post(&quot;<span class="base-url"></span>/predict&quot;' in page
    assert 'vetiver.vetiver_endpoint(&quot;<span class="base-url"></span>/predict' in page
    assert "testserver" not in page
    assert "library(httr2)" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?://", page)
    assert "__FIXATIVE_BASE_URL__" not in page
    assert "House prices" in page and "rmse" in page


def test_docs_page_never_copies_the_host_header(house):
    with TestClient(create_app(house, tokens=[])) as c:
        page = c.get("/", headers={"Host": "evil.example:666"}).text
    assert "evil.example" not in page
    app = create_app(house, tokens=[], public_url="https://models.example.com/house/")
    with TestClient(app) as c:
        page = c.get("/", headers={"Host": "evil.example"}).text
    assert "evil.example" not in page
    assert ('curl -X POST <span class="base-url">https://models.example.com/house</span>'
            '/predict') in page
    with pytest.raises(BadRequest, match="is not a plain http\\(s\\) URL"):
        create_app(house, tokens=[], public_url="javascript:alert(1)")


def test_docs_page_escapes_model_text(house_model, house_data):
    b = bundle(house_model, house_data.drop(columns=["price"]), name="evil",
               description="<script>alert(1)</script>")
    with TestClient(create_app(b, tokens=[])) as c:
        page = c.get("/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_openapi_describes_every_route(client, churn_client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    for path in ["/", "/ping", "/healthz", "/metadata", "/prototype", "/pin-url", "/metrics",
                 "/predict", "/invocations"]:
        assert path in spec["paths"], path
    assert "/predict_proba" not in spec["paths"]  # a regressor has none
    assert "/predict_proba" in churn_client.get("/openapi.json").json()["paths"]
    predict = spec["paths"]["/predict"]["post"]
    assert predict["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    record = spec["components"]["schemas"]["Record"]
    assert record["required"] == client.get("/prototype").json()["required"]
    example = predict["requestBody"]["content"]["application/json"]["examples"]["records"]
    r = client.post("/predict", json=example["value"])
    assert r.status_code == 200
    assert "securitySchemes" not in spec["components"]


def test_metrics_count_requests_rows_errors_and_batches(house, features):
    with TestClient(create_app(house, tokens=[])) as c:
        c.post("/predict", json=records(features))
        c.post("/predict", json=records(features.head(2)))
        c.post("/predict", content=b"[{")
        c.get("/nowhere")
        text = c.get("/metrics").text
    assert 'fixative_requests_total{route="/predict",status="200"} 2.0' in text
    assert 'fixative_requests_total{route="/predict",status="400"} 1.0' in text
    assert 'fixative_requests_total{route="other",status="404"} 1.0' in text
    assert 'fixative_rows_predicted_total{route="predict"} 8.0' in text
    assert 'fixative_errors_total{code="bad_request",route="predict"} 1.0' in text
    assert "fixative_batch_rows_count 2.0" in text
    assert 'fixative_request_duration_seconds_count{route="/predict"} 3.0' in text
    assert f'version="{house.version}"' in text


def test_each_app_has_its_own_metrics(house, features):
    a, b = create_app(house, tokens=[]), create_app(house, tokens=[])
    with TestClient(a) as ca, TestClient(b) as cb:
        ca.post("/predict", json=records(features.head(1)))
        assert 'route="/predict"' not in cb.get("/metrics").text


# -- auth -----------------------------------------------------------------------------------------


def test_tokens_from_the_environment(house, features, monkeypatch):
    monkeypatch.setenv("FIXATIVE_API_TOKENS", " alpha , beta,,")
    with TestClient(create_app(house, allow_short_tokens=True)) as c:
        assert c.get("/ping").status_code == 200
        assert c.get("/healthz").status_code == 200
        for path in ["/", "/metadata", "/prototype", "/metrics", "/openapi.json", "/nowhere"]:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        body = records(features.head(1))
        assert c.post("/predict", json=body).status_code == 401
        for token in ("alpha", "beta"):
            r = c.post("/predict", json=body, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        for header in ("Bearer ", "Basic alpha", "alpha"):
            r = c.post("/predict", json=body, headers={"Authorization": header})
            assert r.status_code == 401, header
            assert "Authorization: Bearer <token>" in r.json()["error"]["message"]
        for header in ("Bearer gamma", "Bearer alph", "bearer ALPHA"):
            r = c.post("/predict", json=body, headers={"Authorization": header})
            assert r.status_code == 401, header
            assert r.json()["error"]["message"].startswith(
                "The bearer token was not accepted: it is none of the server's tokens")
        spec = c.get("/openapi.json", headers={"Authorization": "Bearer beta"}).json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/ping"]["get"]["security"] == []
    assert "401" in spec["paths"]["/predict"]["post"]["responses"]


def test_no_tokens_mean_open(house, monkeypatch):
    monkeypatch.setenv("FIXATIVE_API_TOKENS", "a-long-enough-secret")
    with TestClient(create_app(house, tokens=[])) as c:
        assert c.get("/metadata").status_code == 200
    monkeypatch.delenv("FIXATIVE_API_TOKENS")
    with TestClient(create_app(house)) as c:
        assert c.get("/metadata").status_code == 200


@pytest.mark.parametrize("value", ["", "   ", " , ", ",,,", " ,\t, "])
def test_a_token_list_that_names_no_token_refuses_to_start(house, monkeypatch, value):
    monkeypatch.setenv("FIXATIVE_API_TOKENS", value)
    with pytest.raises(BadRequest, match=r"^FIXATIVE_API_TOKENS is set but names no token "
                                         r"\(it is blank, spaces or commas\); give one"):
        create_app(house)
    with pytest.raises(BadRequest, match="^the token list is set but names no token"):
        create_app(house, tokens=[" ", ""])


def test_a_short_token_refuses_to_start_unless_allowed(house, monkeypatch):
    monkeypatch.setenv("FIXATIVE_API_TOKENS", "a-long-enough-secret,short")
    with pytest.raises(BadRequest, match=r"^FIXATIVE_API_TOKENS has a token of 5 characters; "
                                         r"tokens need at least 16") as err:
        create_app(house)
    assert "short" not in str(err.value).replace("--allow-short-tokens", "").replace(
        "SHORT_TOKENS", "")  # the token itself is never echoed
    app = create_app(house, allow_short_tokens=True)
    with TestClient(app) as c:
        assert c.get("/metadata", headers={"Authorization": "Bearer short"}).status_code == 200


# -- logging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sklearn", "onnx"])
def test_every_prediction_request_is_logged(store, house, features, engine):
    app = engine_app(store, "house", engine, store=store, tokens=["t"], allow_short_tokens=True)
    with TestClient(app) as c:
        auth = {"Authorization": "Bearer t"}
        ok = c.post("/predict", json=records(features.head(3)), headers=auth)
        bad = c.post("/invocations", json={"inputs": [{"bedrooms": 1}]}, headers=auth)
        c.post("/predict", json=records(features.head(1)))  # 401: not logged
        c.get("/metadata", headers=auth)  # not a prediction
    con = duckdb.connect()
    log = log_relation(store, con, "house", versions=[house.version]).fetchdf()
    mine = log[log["request_id"].isin([ok.headers["x-request-id"],
                                       bad.headers["x-request-id"]])]
    assert len(mine) == 4
    good = mine[mine["status"] == 200].sort_values("row")
    assert good["row"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(good["prediction"], ok.json()["predict"])
    assert good["bedrooms"].tolist() == features["bedrooms"].head(3).tolist()
    assert good["route"].unique().tolist() == ["predict"]
    failed = mine[mine["status"] == 422].iloc[0]
    assert failed["error_code"] == "invalid_input" and failed["route"] == "invocations"
    assert pd.isna(failed["row"]) and pd.isna(failed["bedrooms"])
    assert (mine["latency_ms"] > 0).all()
    assert 401 not in set(log["status"])


class _Unserialisable:
    """Predicts objects the JSON encoder cannot write: a server bug, not bad input."""

    feature_names_in_ = np.array(["a"], dtype=object)

    def predict(self, frame):
        return np.array([object() for _ in range(len(frame))], dtype=object)


def test_a_request_that_fails_inside_the_server_is_still_logged(tmp_path):
    store = VersionStore(str(tmp_path / "board"))
    broken = bundle(_Unserialisable(), name="broken")
    broken.version = "20260101T000000Z-00000"
    with TestClient(create_app(broken, store=store, tokens=[]),
                    raise_server_exceptions=False) as c:
        r = c.post("/predict", json=[{"a": 1}])
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in r.text and str(tmp_path) not in r.text
    con = duckdb.connect()
    log = log_relation(store, con, "broken").fetchdf()
    (row,) = log.itertuples()
    assert (row.request_id, row.status, row.error_code) == (r.headers["x-request-id"], 500,
                                                              "internal_error")


def test_log_false_writes_nothing(tmp_path, house, features):
    s = VersionStore(str(tmp_path / "b"))
    with TestClient(create_app(house, store=s, log=False, tokens=[])) as c:
        c.post("/predict", json=records(features.head(1)))
    assert not s.fs.exists(s.path(".fixative", "logs"))


# -- concurrency in-process ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sklearn", "onnx"])
@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_each_get_their_own_rows(store, house, house_data, batching,
                                                      engine):
    app = engine_app(store, "house", engine, batching=batching, max_batch_rows=50)
    feats = house_data.drop(columns=["price"]).reset_index(drop=True)
    parts = [feats.iloc[i * 7:i * 7 + 1 + i % 5] for i in range(40)]

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = [records(p) for p in parts]
            bodies[13] = [{"bedrooms": "x"}]  # a bad request among good ones
            return await asyncio.gather(*(c.post("/predict", json=b) for b in bodies))

    responses = asyncio.run(main())
    for i, (part, r) in enumerate(zip(parts, responses)):
        if i == 13:
            assert r.status_code == 422
            continue
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["predict"], house.predict(part))


def test_create_app_rejects_a_bad_body_limit(house):
    with pytest.raises(Exception, match="max_body_bytes must be a positive"):
        create_app(house, max_body_bytes=0)


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan")])
def test_create_app_rejects_a_bad_body_timeout(house, seconds):
    with pytest.raises(BadRequest, match="body_timeout must be a positive number of seconds"):
        create_app(house, body_timeout=seconds, tokens=[])


# -- readiness of a deleted version ------------------------------------------------------------


def test_a_deleted_versions_server_is_not_ready_and_keeps_logging_its_version(
        tmp_path, house_model, house_data, features, monkeypatch, caplog):
    from core.serving import app as app_module

    monkeypatch.setattr(app_module, "VERSION_CHECK_INTERVAL", 0.0)
    s = VersionStore(str(tmp_path / "board"))
    s.write(bundle(house_model, house_data.drop(columns=["price"]), name="house"))
    keep = s.write(bundle(house_model, house_data.drop(columns=["price"]), name="house"))
    served = s.read("house", s.versions("house")[0].version)
    assert served.version != keep.version
    with TestClient(create_app(served, store=s, tokens=[], flush_interval=0.05)) as c:
        assert c.get("/healthz").status_code == 200
        s.delete("house", served.version)
        with caplog.at_level("WARNING", logger="fixative.server"):
            r = c.get("/healthz")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "unavailable"
        assert err["message"].startswith(f"Version {served.version} of 'house' was deleted "
                                         "from the store")
        assert err["details"] == [{"reason": "version_deleted", "model": "house",
                                   "version": served.version}]
        assert served.version in caplog.text
        assert c.get("/ping").status_code == 200
        ok = c.post("/predict", json=records(features.head(2)))
        assert ok.status_code == 200
    log = log_relation(s, duckdb.connect(), "house", versions=[served.version]).fetchdf()
    assert set(log.loc[log["request_id"] == ok.headers["x-request-id"], "version"]) == {
        served.version}


def test_a_version_served_from_elsewhere_is_not_watched(tmp_path, house, monkeypatch):
    """A Docker bundle's version lives in its folder; the board only takes its log."""
    from core.serving import app as app_module

    monkeypatch.setattr(app_module, "VERSION_CHECK_INTERVAL", 0.0)
    logs_only = VersionStore(str(tmp_path / "logs"))
    with TestClient(create_app(house, store=logs_only, tokens=[], log=False)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz").status_code == 200


def test_batched_requests_on_the_graph_are_logged_with_their_own_rows(tmp_path, store,
                                                                      house_data):
    log_board = VersionStore(str(tmp_path / "logs"))
    app = engine_app(store, "house", "onnx", store=log_board, max_batch_rows=50)
    feats = house_data.drop(columns=["price"]).reset_index(drop=True)
    parts = [feats.iloc[i * 3:i * 3 + 1 + i % 3] for i in range(24)]

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await asyncio.gather(*(c.post("/predict", json=records(p))
                                              for p in parts))

    responses = asyncio.run(main())
    calls = app.state.svc.metrics.batch_requests.collect()[0].samples
    n_calls = next(x.value for x in calls if x.name.endswith("_count"))
    assert n_calls < len(parts)  # some requests shared a graph run
    con = duckdb.connect()
    log = log_relation(log_board, con, "house").fetchdf()
    for part, r in zip(parts, responses):
        assert r.status_code == 200
        mine = log[log["request_id"] == r.headers["x-request-id"]].sort_values("row")
        assert mine["bedrooms"].tolist() == part["bedrooms"].tolist()
        np.testing.assert_allclose(mine["prediction"], r.json()["predict"])
