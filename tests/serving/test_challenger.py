"""Champion and challenger in-process (TestClient): canary shares and stickiness, shadow
logging under one request id, /metadata, and the checks on a pair."""

from __future__ import annotations

import asyncio
import json
import time

import duckdb
import httpx
import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from starlette.testclient import TestClient

from core.errors import InvalidArgument
from core.model.bundle import bundle
from core.serving.app import create_app
from core.serving.challenger import canary_pick, check_pair, pair_app, parse_canary, parse_share
from core.store.predlog import log_relation
from core.store.versionstore import VersionStore


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    s = VersionStore(str(tmp_path_factory.mktemp("pair") / "board"))
    x = house_data.drop(columns=["price"])
    # cheap models, so that 10,000 requests stay quick: champion says 1, challenger 2
    for constant in (1.0, 2.0):
        model = DummyRegressor(strategy="constant", constant=constant).fit(x, house_data.price)
        s.write(bundle(model, x, name="flat"))
    s.write(bundle(house_model, x, name="house"))
    s.write(bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn"))
    return s


@pytest.fixture(scope="module")
def versions(store):
    return [v.version for v in store.versions("flat")]


def _pair(store, versions, mode, share=None, log=False, **kw):
    a, b = store.read("flat", versions[0]), store.read("flat", versions[1])
    champ = create_app(a, store=store, log=log, tokens=[], flush_interval=0.2)
    chall = create_app(b, store=store, log=log, tokens=[], flush_interval=0.2)
    return pair_app(champ, chall, a, b, mode=mode, share=share, **kw)


ROW = {"bedrooms": 3, "bathrooms": 2.0, "sqft_living": 1800, "grade": 7, "yr_built": 1990,
       "zipcode": "98115"}


@pytest.mark.parametrize("text", ["0%", "100%", "150%", "-1", "abc", "", "nan", "inf", "0",
                                  "1e-400", "-5%", "%", "1e400", "\u0661\u0660%", "1_0", "0x10",
                                  "10%%", "9" * 5000, "\uff11\uff10", True, False])
def test_bad_canary_shares_are_refused(text):
    with pytest.raises(InvalidArgument, match="canary share"):
        parse_share(text)


@pytest.mark.parametrize("text", ["flat@v2", "flat@v2:", ":10%", "", "abc"])
def test_canary_without_ref_and_share_is_refused(text):
    with pytest.raises(InvalidArgument, match="REF:SHARE"):
        parse_canary(text)


def test_canary_spec_reads_percent_and_fraction():
    assert parse_canary("flat@v2:10%") == ("flat@v2", 0.1)
    assert parse_canary("flat:25") == ("flat", 0.25)
    assert parse_canary("s3://x/flat@v2:0.5") == ("s3://x/flat@v2", 0.5)
    # a bundle's settings keep the fraction as a JSON number, however small
    assert parse_share(0.1) == 0.1 and parse_share(1e-05) == 1e-05
    assert parse_share(" 12.5 % ") == 0.125


def test_a_challenger_with_other_inputs_or_task_is_refused(store, versions):
    flat, churn = store.read("flat", versions[0]), store.read("churn")
    with pytest.raises(InvalidArgument, match="regression model and the champion a "
                                              "classification model|same task"):
        check_pair(churn, flat, "shadow")
    with pytest.raises(InvalidArgument, match="is the champion itself"):
        check_pair(flat, store.read("flat", versions[0]), "shadow")
    with pytest.raises(InvalidArgument, match="mode must be one of shadow, canary"):
        check_pair(flat, store.read("flat", versions[1]), "blue-green")


def test_other_prototype_is_refused(store, versions, house_data):
    x = house_data.drop(columns=["price", "zipcode"])
    other = bundle(DummyRegressor().fit(x, house_data.price), x, name="flat")
    with pytest.raises(InvalidArgument, match=r"does not take the champion's inputs \(columns "
                                              r"only in one: zipcode\)"):
        check_pair(store.read("flat", versions[0]), other, "canary")


async def _many(app, n: int, at_once: int = 100) -> list[httpx.Response]:
    out: list[httpx.Response] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for start in range(0, n, at_once):
                out += await asyncio.gather(*(client.post("/predict", json=[ROW])
                                              for _ in range(min(at_once, n - start))))
    return out


def test_canary_share_over_ten_thousand_requests(store, versions):
    answered = {"champion": 0, "challenger": 0}
    for r in asyncio.run(_many(_pair(store, versions, "canary", 0.1), 10_000)):
        assert r.status_code == 200
        role = r.headers["x-fixative-role"]
        # the role header says who answered, and the answer agrees
        assert r.json()["predict"] == [2.0 if role == "challenger" else 1.0]
        answered[role] += 1
    # binomial(10000, 0.1): sd 30; 5 sd either way
    assert 850 <= answered["challenger"] <= 1150, answered


def test_canary_keys_are_sticky_and_split_by_share(store, versions):
    with TestClient(_pair(store, versions, "canary", "30%")) as client:
        first = {}
        for i in range(300):
            key = f"customer-{i}"
            r = client.post("/predict", json=[ROW], headers={"X-Fixative-Key": key})
            first[key] = r.headers["x-fixative-role"]
        for key, role in first.items():
            for _ in range(2):
                r = client.post("/predict", json=[ROW], headers={"X-Fixative-Key": key})
                assert r.headers["x-fixative-role"] == role
        share = sum(v == "challenger" for v in first.values()) / len(first)
        assert 0.2 < share < 0.4
        meta = client.get("/metadata").json()
        assert meta["challenger"]["mode"] == "canary"
        assert meta["challenger"]["share"] == 0.3
        assert meta["challenger"]["version"] == versions[1]
        assert meta["challenger"]["champion"] == f"flat@{versions[0]}"
        assert meta["version"] == versions[0]


def test_canary_pick_by_key_matches_share():
    keys = [f"k{i}" for i in range(10_000)]
    picked = sum(canary_pick(k, 0.1) for k in keys)
    assert 850 <= picked <= 1150
    assert [canary_pick(k, 0.1) for k in keys[:50]] == [canary_pick(k, 0.1) for k in keys[:50]]
    # a larger share keeps every key the smaller one sent to the challenger
    assert all(canary_pick(k, 0.5) for k in keys if canary_pick(k, 0.1))


def test_shadow_logs_both_versions_under_one_request_id(store, versions):
    app = _pair(store, versions, "shadow", log=True)
    with TestClient(app) as client:
        ids = []
        for i in range(5):
            r = client.post("/predict", json=[ROW, ROW], headers={"X-Request-ID": f"req-{i}"})
            assert r.status_code == 200 and r.json() == {"predict": [1.0, 1.0]}
            assert "x-fixative-role" not in r.headers
            ids.append(r.headers["x-request-id"])
        r = client.post("/predict", json=[ROW])  # no id of its own: one is made for both
        ids.append(r.headers["x-request-id"])
        assert client.post("/predict", json=[{"bedrooms": "x"}]).status_code == 422
        meta = client.get("/metadata").json()["challenger"]
        assert meta["mode"] == "shadow" and meta["share"] is None
    # after shutdown the queue was drained and both logs flushed
    assert app.state.pair.shadow.counts()["scored"] == 6
    con = duckdb.connect()
    rel = log_relation(store, con, "flat").filter("status = 200")
    df = rel.select("request_id, row, version, serving_role, prediction").df()
    champ = df[df.serving_role == "champion"]
    chall = df[df.serving_role == "challenger"]
    assert set(champ.version) == {versions[0]} and set(chall.version) == {versions[1]}
    assert sorted(champ.request_id.unique()) == sorted(ids)
    assert sorted(zip(champ.request_id, champ.row)) == sorted(zip(chall.request_id, chall.row))
    assert np.all(chall.prediction == 2.0) and np.all(champ.prediction == 1.0)


def test_shadow_queue_is_bounded_and_drops_are_counted(store, versions):
    app = _pair(store, versions, "shadow", queue_size=1, workers=1)
    with TestClient(app) as client:
        shadow = app.state.pair.shadow
        shadow.tasks[0].cancel()  # a challenger that never takes work
        for _ in range(5):
            assert client.post("/predict", json=[ROW]).json() == {"predict": [1.0]}
        counts = client.get("/metadata").json()["challenger"]
        assert counts["dropped"] == 4 and counts["queued"] == 1


def test_shadow_queue_holds_a_bounded_number_of_body_bytes(store, versions):
    """Large bodies fill the byte bound long before the count: a stalled challenger never
    holds more than queue_bytes of request bodies, whatever their size."""
    body, one = json.dumps([ROW] * 50).encode(), json.dumps([ROW]).encode()
    app = _pair(store, versions, "shadow", queue_size=100, workers=1,
                queue_bytes=3 * len(body) + len(one))
    with TestClient(app) as client:
        shadow = app.state.pair.shadow
        shadow.tasks[0].cancel()  # a challenger that never takes work
        for _ in range(6):
            r = client.post("/predict", content=body,
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 200 and r.json() == {"predict": [1.0] * 50}
        small = client.post("/predict", content=one,  # still fits beside the three
                            headers={"Content-Type": "application/json"})
        assert small.status_code == 200
        counts = client.get("/metadata").json()["challenger"]
        assert (counts["queued"], counts["dropped"]) == (4, 3)
        assert shadow.held == 3 * len(body) + len(one)


def test_shadow_gives_back_the_bytes_of_what_it_scored(store, versions):
    body = json.dumps([ROW] * 20).encode()
    app = _pair(store, versions, "shadow", queue_bytes=2 * len(body))
    with TestClient(app) as client:
        for _ in range(6):  # one after another: each is scored before the next arrives
            assert client.post("/predict", content=body,
                               headers={"Content-Type": "application/json"}).status_code == 200
            shadow = app.state.pair.shadow
            deadline = time.monotonic() + 30
            while shadow.counts()["queued"] and time.monotonic() < deadline:
                time.sleep(0.02)
    counts = shadow.counts()  # shutdown finished what was queued
    assert counts["dropped"] == 0 and counts["scored"] == 6 and shadow.held == 0


def test_pair_app_refuses_bad_settings(store, versions):
    with pytest.raises(InvalidArgument, match="canary needs its share"):
        _pair(store, versions, "canary")
    with pytest.raises(InvalidArgument, match="outside 0%-100%"):
        _pair(store, versions, "canary", 1.5)
    with pytest.raises(InvalidArgument, match="at least 1"):
        _pair(store, versions, "shadow", queue_size=0)
    with pytest.raises(InvalidArgument, match="at least 1"):
        _pair(store, versions, "shadow", queue_bytes=0)


def test_shadow_replaces_a_bad_request_id_with_one_shared_by_both(store, versions):
    app = _pair(store, versions, "shadow", log=True)
    with TestClient(app) as client:
        r = client.post("/predict", json=[ROW], headers={"X-Request-ID": "bad id; DROP"})
        rid = r.headers["x-request-id"]
        assert r.status_code == 200 and rid != "bad id; DROP"
    con = duckdb.connect()
    rows = log_relation(store, con, "flat").filter(f"request_id = '{rid}'").project(
        "serving_role").fetchall()
    assert sorted(r[0] for r in rows) == ["challenger", "champion"]


def test_canary_with_tokens_keeps_both_versions_closed(store, versions):
    a, b = store.read("flat", versions[0]), store.read("flat", versions[1])
    token = "t" * 20
    champ = create_app(a, log=False, tokens=[token])
    chall = create_app(b, log=False, tokens=[token])
    app = pair_app(champ, chall, a, b, mode="canary", share=0.5)
    with TestClient(app) as client:
        for i in range(20):
            r = client.post("/predict", json=[ROW], headers={"X-Fixative-Key": f"k{i}"})
            assert r.status_code == 401 and "predict" not in r.text
        meta = client.get("/metadata")
        assert meta.status_code == 401 and "challenger" not in meta.text
        ok = client.get("/metadata", headers={"Authorization": f"Bearer {token}"})
        assert ok.json()["challenger"]["share"] == 0.5


@pytest.mark.parametrize("key", ["", " ", "é" * 3, "x" * 8000, "../../etc/passwd", "' OR 1=1"])
def test_odd_canary_keys_are_sticky_too(store, versions, key):
    with TestClient(_pair(store, versions, "canary", 0.5)) as client:
        header = key.encode("utf-8")  # raw bytes on the wire
        roles = set()
        for _ in range(3):
            r = client.post("/predict", json=[ROW], headers={"X-Fixative-Key": header})
            assert r.status_code == 200
            roles.add(r.headers["x-fixative-role"])
        assert len(roles) == 1
