"""The store across real processes: concurrent writers, a killed writer, a held index lock."""

from __future__ import annotations

import json
import os
import select
import shutil

import pytest
from store_fixtures import argv_code, board_versions, kill_mid_write, run_python

from core.errors import NotFound
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process

WRITER = """
import json, sys
import numpy as np, pandas as pd
from sklearn.linear_model import LinearRegression
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

board, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(len(tag))
X = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
b = bundle(LinearRegression().fit(X, X.a + X.b), X, name="shared", tags=[tag])
store = VersionStore(board)
written, errors = [], []
for i in range(n):
    try:
        info = store.write(b)
        written.append(info.version)
        seen = {v.version for v in store.versions("shared")}
        if info.version not in seen:
            errors.append(f"own version {info.version} not listed")
        if i % 10 == 9:
            store.set_alias("shared", tag, info.version, user=tag)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"written": written, "errors": errors}))
"""

LISTER = """
import json, os, sys, time
from core.store.versionstore import VersionStore
from core.errors import NotFound

board, stop = sys.argv[1], sys.argv[2]
store = VersionStore(board)
counts, errors = [], []
while not os.path.exists(stop):
    try:
        models = store.list_models()
        counts.append(len(store.versions("shared")) if models else 0)
        store.aliases("shared") if models else None
    except NotFound:
        counts.append(0)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.005)
print(json.dumps({"counts": counts, "errors": errors}))
"""


def test_two_writers_and_a_lister(tmp_path):
    board = str(tmp_path / "board")
    VersionStore(board)
    stop = tmp_path / "stop"
    lister = run_python(argv_code(LISTER, board, str(stop)))
    writers = [run_python(argv_code(WRITER, board, tag, "30")) for tag in ("w1", "w2")]
    results = []
    for proc in writers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    stop.touch()
    out, err = lister.communicate(timeout=60)
    assert lister.returncode == 0, err
    listing = json.loads(out)

    assert [r["errors"] for r in results] == [[], []]
    assert listing["errors"] == []
    assert listing["counts"] == sorted(listing["counts"])  # never saw a version vanish
    written = results[0]["written"] + results[1]["written"]
    assert len(set(written)) == 60

    store = VersionStore(board)
    indexed = [v.version for v in store.versions("shared")]
    assert sorted(indexed) == sorted(written)
    assert indexed == sorted(indexed)  # ids sort by time
    assert set(indexed) == board_versions(store, "shared")
    assert store.aliases("shared") == {"w1": results[0]["written"][-1],
                                       "w2": results[1]["written"][-1]}
    before = [v.to_dict() for v in store.versions("shared")]
    store.reindex()
    assert [v.to_dict() for v in store.versions("shared")] == before
    assert store.verify() == []


def test_writer_killed_mid_write_leaves_no_version(tmp_path):
    board = str(tmp_path / "board")
    kill_mid_write(board)
    staging = os.listdir(os.path.join(board, ".fixative", "tmp"))
    assert len(staging) == 1  # the half-written model is there, out of sight
    half = os.path.join(board, ".fixative", "tmp", staging[0], "houses.joblib")
    assert os.path.getsize(half) > 1_000_000

    store = VersionStore(board)
    assert store.list_models() == []
    with pytest.raises(NotFound):
        store.read("houses")
    assert store.reindex()["removed_staging"] == 1
    assert os.listdir(os.path.join(board, ".fixative", "tmp")) == []
    assert store.verify() == []
    assert not os.path.exists(os.path.join(board, "houses"))


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
print("releasing", flush=True)
con.close()
"""


def test_a_held_index_lock_is_never_surfaced(tmp_path, house_model, house_data):
    from core.model.bundle import bundle

    board = str(tmp_path / "board")
    store = VersionStore(board)
    info = store.write(bundle(house_model, house_data.head(50), name="houses"))
    assert [v.version for v in store.versions("houses")] == [info.version]

    # The listing kept on disk would answer without the index (core.store.snapshot).
    shutil.rmtree(store.index_path + ".listings")
    holder = run_python(argv_code(HOLDER, store.index_path, "1.5"))
    assert holder.stdout.readline().strip() == "holding"
    # Waits (with backoff) until the other process lets go, then answers.
    waiting = VersionStore(board)
    assert [v.version for v in waiting.versions("houses")] == [info.version]
    # it answered only once the holder had let go (it says so before closing)
    assert select.select([holder.stdout], [], [], 0)[0], "answered while the lock was held"
    assert holder.stdout.readline().strip() == "releasing"
    holder.communicate(timeout=30)

    holder = run_python(argv_code(HOLDER, store.index_path, "20"))
    try:
        assert holder.stdout.readline().strip() == "holding"
        # Gives up on the file quickly and answers from the board instead.
        impatient = VersionStore(board, lock_timeout=0.3)
        second = impatient.write(bundle(house_model, house_data.head(50), name="houses"))
        assert [v.version for v in impatient.versions("houses")] == [info.version,
                                                                      second.version]
        assert impatient.read("houses").version == second.version
    finally:
        holder.kill()
        holder.communicate(timeout=30)
