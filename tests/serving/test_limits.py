"""Limits on what one request may cost: rows, columns, nesting, large bodies at once,
every check linear in the body, and the settings that set them."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from starlette.testclient import TestClient

from core.errors import BadRequest
from core.model.bundle import bundle
from core.serving import limits as lim
from core.serving.app import create_app
from core.serving.limits import Limits


@pytest.fixture(scope="module")
def house(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]), name="house")


@pytest.fixture(scope="module")
def record(house):
    return house.prototype.example_record()


def wide_csv(n: int, duplicate: bool) -> bytes:
    names = [f"c{i}" for i in range(n)]
    if duplicate:
        names[-1] = "c0"
    return (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()


def wide_split(n: int, duplicate: bool) -> bytes:
    names = [f"c{i}" for i in range(n)]
    if duplicate:
        names[-1] = "c0"
    return json.dumps({"columns": names, "data": [[1] * n]}).encode()


def envelope(key: str, make):
    """``make``'s body wrapped in MLflow's envelope ``key``, for /invocations."""
    return lambda n, dup: b'{"' + key.encode() + b'": ' + make(n, dup) + b"}"


def records(n, _):
    return json.dumps([{f"c{i}": 1 for i in range(n)}]).encode()


def mapping(n, _):
    return json.dumps({f"c{i}": [1] for i in range(n)}).encode()


HOSTILE = {  # 50,000 columns in every shape that names columns: (type, /predict, /invocations)
    "csv": ("text/csv", wide_csv, wide_csv),
    "split": ("application/json", wide_split, envelope("dataframe_split", wide_split)),
    "records": ("application/json", records, envelope("dataframe_records", records)),
    "mapping": ("application/json", mapping, envelope("inputs", mapping)),
}


async def _hostile_and_ping(app, path: str, body: bytes, ctype: str) -> tuple:
    """The hostile request, and /ping sent while it is being handled."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
        task = asyncio.create_task(c.post(path, content=body,
                                          headers={"content-type": ctype}))
        await asyncio.sleep(0.01)
        ping = await c.get("/ping")
        r = await task
        return r, ping


@pytest.mark.parametrize("shape", sorted(HOSTILE))
@pytest.mark.parametrize("duplicate", [False, True])
def test_fifty_thousand_columns_are_a_4xx_naming_the_limit_and_ping_still_answers(house, shape,
                                                                         duplicate):
    ctype, *makers = HOSTILE[shape]
    # a limit high enough that every column is really looked at: the checks are linear
    runs = [(Limits(), 413)]
    if shape in ("csv", "split"):  # names that can repeat (JSON objects keep one of each)
        runs.append((Limits(max_columns=100_000), None))
    for limits, status in runs:
        app = create_app(house, tokens=[], limits=limits, log=False)
        for path, make in zip(("/predict", "/invocations"), makers):
            body = make(50_000, duplicate)
            r, ping = asyncio.run(_hostile_and_ping(app, path, body, ctype))
            assert 400 <= r.status_code < 500, r.text[:300]
            if status is not None:
                assert r.status_code == status
                assert "columns per request" in r.json()["error"]["message"]
            elif duplicate and shape in ("csv", "split"):
                assert "twice: c0" in r.json()["error"]["message"]
            assert ping.status_code == 200 and ping.text.strip() != "", ping.text


def test_rows_past_the_limit_are_a_413(house, record):
    with TestClient(create_app(house, tokens=[], limits=Limits(max_rows=50))) as c:
        assert c.post("/predict", json=[record] * 50).status_code == 200
        for path, body in [("/predict", [record] * 51),
                           ("/predict", {"columns": list(record), "data": [
                               list(record.values())] * 51}),
                           ("/predict", {k: [v] * 51 for k, v in record.items()}),
                           ("/invocations", {"dataframe_records": [record] * 51}),
                           ("/invocations", {"inputs": [list(record.values())] * 51})]:
            r = c.post(path, json=body)
            assert r.status_code == 413, (path, r.text)
            assert r.json()["error"]["message"] == (
                "The request has 51 rows; this server takes at most 50 rows per request. "
                "Send fewer rows per request, or start the server with a larger --max-rows.")
        csv = ",".join(record) + "\n" + (",".join(map(str, record.values())) + "\n") * 51
        r = c.post("/predict", content=csv, headers={"content-type": "text/csv"})
        assert r.status_code == 413
        assert r.json()["error"]["message"].startswith("The request has more than 50 rows;")


def test_empty_records_are_refused_before_they_become_objects(house):
    """18 MiB of ``[{},{},...]``: refused on its bytes (the count of brackets), before
    any row becomes an object."""
    body = b"[" + b"{}," * (6 * 2**20) + b"{}]"
    with TestClient(create_app(house, tokens=[], log=False)) as c:
        r = c.post("/predict", content=body)
    assert r.status_code == 413
    assert r.json()["error"]["message"].startswith(
        "The request has 6,291,458 JSON arrays or objects (one per row); this server takes "
        "at most 100,000 rows per request.")


def test_empty_records_under_the_limit_name_the_first_bad_row(house, record):
    with TestClient(create_app(house, tokens=[], log=False)) as c:
        r = c.post("/predict", json=[record, {}, {}])
    assert r.status_code == 422
    assert "is null or absent in 2 rows (1, 2)" in r.json()["error"]["message"]


def test_limits_resolve_flags_then_environment_then_defaults():
    env = {lim.MAX_ROWS_ENV: "20", lim.BODY_TIMEOUT_ENV: "2.5", lim.MAX_COLUMNS_ENV: " "}
    got = lim.resolve({"max_rows": "7", "max_parsing": None}, env)
    assert got == Limits(max_rows=7, body_timeout=2.5)
    assert lim.resolve(None, {}) == Limits()
    assert Limits().max_rows == 100_000 and Limits().max_parsing == 4


@pytest.mark.parametrize("name, value", [("max_rows", 0), ("max_rows", "1.5"),
                                         ("max_columns", True), ("body_timeout", "inf"),
                                         ("header_timeout", -1), ("max_parsing", "many")])
def test_bad_limits_name_their_flag_and_variable(name, value):
    with pytest.raises(BadRequest, match=f"^{name} must be .* got .* \\(set it with --"):
        Limits(**{name: value})


def test_create_app_takes_its_body_timeout_from_limits_or_the_argument(house):
    app = create_app(house, tokens=[], limits=Limits(body_timeout=3))
    assert app.state.svc.limits.body_timeout == 3
    app = create_app(house, tokens=[], limits=Limits(body_timeout=3), body_timeout=1.5)
    assert app.state.svc.limits.body_timeout == 1.5


def test_where_a_body_is_parsed_depends_on_what_parsing_it_may_cost(house, record):
    """Parsing holds the GIL wherever it runs. Typed records decode in a few ms per MiB:
    on the event loop up to 1 MiB, in a worker thread past it. The general parser takes
    up to ~80 ms per MiB: on the loop up to 256 KiB, in a thread past it (after the typed
    decoder, on the loop, declined the body)."""
    from core.serving.body import LOOP_DECODE_BYTES, LOOP_PARSE_BYTES

    app = create_app(house, tokens=[], log=False)
    svc = app.state.svc
    seen: list[tuple[str, int]] = []
    records, convert = svc.converter.records, svc.converter.convert

    def watched_records(body, max_rows):
        seen.append(("typed", threading.get_ident()))
        return records(body, max_rows)

    def watched_convert(payload):
        seen.append(("general", threading.get_ident()))
        return convert(payload)

    svc.converter.records = watched_records
    svc.converter.convert = watched_convert

    def body(size: int, extra: bool) -> bytes:
        row = json.dumps({**record, "note": "x"} if extra else record).encode()
        return b"[" + b",".join([row] * (size // (len(row) + 1))) + b"]"

    sizes = [LOOP_PARSE_BYTES - 2000, LOOP_DECODE_BYTES - 2000, LOOP_DECODE_BYTES + 2000]
    assert LOOP_PARSE_BYTES - 2000 < 2 * LOOP_PARSE_BYTES < LOOP_DECODE_BYTES - 2000

    async def post_all() -> tuple[int, list[list[tuple[str, int]]]]:
        transport = httpx.ASGITransport(app=app)
        steps = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     timeout=60) as c:
            for size in sizes:
                for extra in (False, True):
                    seen.clear()
                    r = await c.post("/predict", content=body(size, extra))
                    assert r.status_code == 200, r.text[:300]
                    assert ("note" in r.headers.get("X-Fixative-Warnings", "")) == extra
                    steps.append(list(seen))
        return threading.get_ident(), steps

    loop, steps = asyncio.run(post_all())
    where = [[(what, "loop" if ident == loop else "thread") for what, ident in step]
             for step in steps]
    assert where == [
        [("typed", "loop")],                                   # up to 256 KiB
        [("typed", "loop"), ("general", "loop")],
        [("typed", "loop")],                                   # up to 1 MiB
        [("typed", "loop"), ("general", "thread")],
        [("typed", "thread")],                                 # past 1 MiB
        [("typed", "thread"), ("general", "thread")],
    ]
    assert svc.slots.used == 0  # every body gave its parsing slot back
