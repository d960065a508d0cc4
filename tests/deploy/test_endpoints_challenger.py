"""A local endpoint with a challenger: started in the background, pinned to versions,
refused before any process starts when the challenger is wrong."""

from __future__ import annotations

import json
import urllib.request

import pytest
from deploy_helpers import deploy_store

from core.deploy import endpoints as deploy
from core.errors import InvalidArgument, NotFound, UnsafeModel
from core.model.bundle import bundle
from core.serving.netcheck import free_port

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    s = deploy_store(tmp_path_factory.mktemp("deploy-ch"), house_model, house_data)
    s.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    return s


def test_endpoint_with_a_shadow_challenger(store):
    versions = [v.version for v in store.versions("house")]
    ep = deploy.start_endpoint(store, "house:production", port=free_port(),
                               shadow=f"house@{versions[-1]}")
    try:
        with urllib.request.urlopen(f"{ep.url}/metadata", timeout=10) as r:
            meta = json.loads(r.read())
        assert meta["version"] == store.aliases("house")["production"]
        assert meta["challenger"]["mode"] == "shadow"
        assert meta["challenger"]["version"] == versions[-1]
        assert ep.options["challenger"] == ["shadow", f"house@{versions[-1]}"]
    finally:
        deploy.stop_endpoint(store, ep.id, grace=5)


def test_serve_command_pins_the_canary():
    cmd = deploy.serve_command("house@v1", store_url="/b", host="127.0.0.1", port=1,
                               challenger=("canary", "house@v2:10%"))
    assert cmd[-2:] == ["--canary", "house@v2:10%"]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"canary": "house:150%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "house"}, InvalidArgument, "REF:SHARE"),
    ({"shadow": "nope"}, NotFound, "nope"),
    ({"shadow": "handmade"}, UnsafeModel, "outside the safety allowlist"),
    ({"shadow": "house", "canary": "house:5%"}, InvalidArgument, "not both"),
])
def test_a_wrong_challenger_is_refused_before_any_process_starts(store, kwargs, error,
                                                                 message):
    before = set(deploy.run_dir(store).glob("*"))
    with pytest.raises(error, match=message):
        deploy.start_endpoint(store, "house:production", port=free_port(), **kwargs)
    assert set(deploy.run_dir(store).glob("*")) == before
