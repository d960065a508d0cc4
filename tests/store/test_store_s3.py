"""The store on S3 (s3fs against a moto server on loopback): what differs from a folder.

The shared store tests (write, read, list, aliases, delete, prune, records, corruption)
run on S3 too, through the ``any_store`` fixture in test_store.py.
"""

from __future__ import annotations

import os

import pytest
import store_fixtures
from store_fixtures import board_versions, kill_mid_write

from core.errors import NotFound
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.s3
s3_server, s3_env, s3_store = store_fixtures.s3_server, store_fixtures.s3_env, \
    store_fixtures.s3_store


@pytest.fixture(scope="module")
def small(house_data, house_model):
    return bundle(house_model, house_data.head(100), name="houses")


def test_versions_land_in_the_pins_layout_and_the_index_stays_local(s3_store, s3_env, small):
    info = s3_store.write(small)
    files = sorted(p.rsplit("/", 1)[-1] for p in
                   s3_store.fs.ls(s3_store.path("houses", info.version)))
    assert files == ["data.txt", "data.txt.sha256", "fixative.json", "houses.joblib",
                     "sample.parquet"]
    assert s3_store.fs.find(s3_store.path(".fixative", "tmp")) == []  # staging cleaned up
    assert s3_store.index_path.startswith(s3_env["FIXATIVE_INDEX_DIR"])
    assert [v.version for v in s3_store.versions("houses")] == [info.version]


def test_a_version_folder_without_data_txt_is_invisible(s3_store, small):
    info = s3_store.write(small)
    fs = s3_store.fs
    partial = s3_store.path("houses", "20300101T000000Z-00001")
    fs.copy(s3_store.path("houses", info.version, "houses.joblib"), f"{partial}/houses.joblib")
    fs.copy(s3_store.path("houses", info.version, "fixative.json"), f"{partial}/fixative.json")
    assert [v.version for v in s3_store.versions("houses")] == [info.version]
    assert s3_store.read("houses").version == info.version
    assert any("no data.txt" in p for p in s3_store.verify())


def test_a_writer_killed_mid_upload_leaves_no_version(s3_store, s3_env):
    env = {k: v for k, v in s3_env.items() if k != "BUCKET"}
    kill_mid_write(s3_store.url, env)
    assert s3_store.list_models() == []
    with pytest.raises(NotFound):
        s3_store.read("houses")
    assert board_versions(s3_store, "houses") == set()
    s3_store.reindex()
    assert s3_store.fs.find(s3_store.path(".fixative", "tmp")) == []
    assert s3_store.verify() == []


def test_two_clients_see_each_others_changes(s3_store, small, tmp_path, monkeypatch):
    first = s3_store.write(small)
    assert len(s3_store.versions("houses")) == 1
    # another machine: its own index cache
    monkeypatch.setenv("FIXATIVE_INDEX_DIR", str(tmp_path / "elsewhere"))
    other = VersionStore(s3_store.url)
    assert other.index_path != s3_store.index_path
    second = other.write(small)
    other.set_alias("houses", "production", first.version, user="ops")
    assert [v.version for v in s3_store.versions("houses")] == [first.version, second.version]
    assert s3_store.aliases("houses") == {"production": first.version}
    assert s3_store.prune("houses", keep=1) == []  # newest and aliased are kept
    os.unlink(s3_store.index_path)
    assert [v.version for v in s3_store.versions("houses")] == [first.version, second.version]


def test_missing_bucket_is_a_clear_error(s3_env):
    with pytest.raises(NotFound, match="The bucket 'no-such-bucket' at http://127.0.0.1:\\d+ "
                                       "does not exist. Create it first"):
        VersionStore("s3://no-such-bucket/board")
