"""Kubernetes manifests of a Docker bundle: valid against the Kubernetes schemas (offline),
safe (non-root, read-only root, Secret references only), and true to the server: the
probe paths, port and environment variables are checked against a real server run from
the bundle's own folder. Also the hash-pinned requirements.lock."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from deploy_helpers import deploy_store

from core import settings
from core.deploy import docker as dockerbundle
from core.deploy import k8s
from core.deploy import lock as locking
from core.errors import InvalidArgument
from core.serving import heartbeat
from core.serving.netcheck import free_port
from core.serving.process import GRACEFUL_SHUTDOWN

K8S_VERSION = "1.37.0"
TOKEN = "k8s-test-token-0123456789abcdef"
AWS_SECRET = "aws-secret-value-never-in-files"
SETTINGS_NAMES = {v for k, v in vars(settings).items() if k.endswith("_ENV")}
# read by botocore (s3fs), not by Fixative
CLOUD_NAMES = set(k8s.S3_KEYS)


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    return deploy_store(tmp_path_factory.mktemp("k8s"), house_model, house_data)


@pytest.fixture(scope="module")
def bundle_dir(store, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIXATIVE_API_TOKENS", TOKEN)
        mp.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        return dockerbundle.write_bundle(store, "house:production",
                                         tmp_path_factory.mktemp("kb") / "house", port=9090,
                                         workers=2, k8s=True)


def docs(bundle_dir: Path, name: str) -> dict:
    return yaml.safe_load((bundle_dir / "k8s" / name).read_text())


@pytest.fixture(scope="module")
def deployment(bundle_dir) -> dict:
    return docs(bundle_dir, "deployment.yaml")


@pytest.fixture(scope="module")
def container(deployment) -> dict:
    [one] = deployment["spec"]["template"]["spec"]["containers"]
    return one


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_layout_is_kustomize(bundle_dir):
    files = sorted(p.name for p in (bundle_dir / "k8s").iterdir())
    assert files == ["deployment.yaml", "hpa.yaml", "kustomization.yaml", "pdb.yaml",
                     "service.yaml", "servicemonitor.yaml"]
    kz = docs(bundle_dir, "kustomization.yaml")
    assert kz["kind"] == "Kustomization"
    assert kz["resources"] == list(k8s.RESOURCE_FILES)
    assert all((bundle_dir / "k8s" / f).is_file() for f in kz["resources"])
    [image] = kz["images"]
    assert image["name"] == "house" and image["newTag"] == json.loads(
        (bundle_dir / "serve.json").read_text())["version"].lower()
    # readable: comments saying what to do, block YAML, no JSON blobs
    text = (bundle_dir / "k8s" / "kustomization.yaml").read_text()
    assert text.startswith("# house ") and "kubectl create secret generic house-api-tokens" in text


def test_every_manifest_is_valid_kubernetes_offline(bundle_dir, no_network):
    import kubernetes_validate

    for name in k8s.RESOURCE_FILES:
        doc = docs(bundle_dir, name)
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    broken = docs(bundle_dir, "deployment.yaml")
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomize_renders_valid_objects(bundle_dir):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here (kustomize is built into it)")
    import kubernetes_validate

    done = subprocess.run([kubectl, "kustomize", str(bundle_dir / "k8s")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    kinds = {o["kind"]: o for o in objects}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                          "PodDisruptionBudget"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    # the generated ConfigMap's hashed name reaches the Deployment's references
    board = kinds["ConfigMap"]["metadata"]["name"]
    env = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["valueFrom"]["configMapKeyRef"]["name"] for e in env
            if "configMapKeyRef" in e.get("valueFrom", {})}
    assert refs == {board} and board.startswith("house-board-")
    assert kinds["ConfigMap"]["data"][settings.STORE_ENV] == k8s.BOARD_PLACEHOLDER


def test_the_pod_is_locked_down(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == k8s.UID != 0
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # the only writable place is an emptyDir at /tmp, where the caches point
    [mount] = container["volumeMounts"]
    [volume] = pod["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/tmp"} and "emptyDir" in volume
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[settings.INDEX_DIR_ENV].startswith("/tmp/")
    assert env[settings.RUN_DIR_ENV].startswith("/tmp/")
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]


def test_graceful_shutdown_outlasts_the_log_flush(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + GRACEFUL_SHUTDOWN
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_secrets_are_references_never_values(bundle_dir, container):
    for path in (bundle_dir / "k8s").iterdir():
        text = path.read_text()
        assert TOKEN not in text and AWS_SECRET not in text
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (bundle_dir / "k8s").iterdir()}
    assert "Secret" not in kinds
    by_name = {e["name"]: e for e in container["env"]}
    for name in (settings.TOKENS_ENV, *k8s.S3_KEYS):
        ref = by_name[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in by_name[name] and ref["key"] == name
    # a pod without its token Secret does not start open
    assert by_name[settings.TOKENS_ENV]["valueFrom"]["secretKeyRef"]["optional"] is False


def test_env_names_are_the_ones_fixative_reads(container):
    names = {e["name"] for e in container["env"]}
    assert names - CLOUD_NAMES <= SETTINGS_NAMES
    assert {settings.STORE_ENV, settings.PORT_ENV, settings.HOST_ENV, settings.WORKERS_ENV,
            settings.TOKENS_ENV, settings.NODE_NAME_ENV} <= names


def test_service_hpa_pdb_and_monitor_point_at_the_pods(bundle_dir, deployment, container):
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    svc = docs(bundle_dir, "service.yaml")
    assert svc["spec"]["selector"] == selector
    [port] = svc["spec"]["ports"]
    assert port["targetPort"] == container["ports"][0]["name"] == "http"
    hpa = docs(bundle_dir, "hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert docs(bundle_dir, "pdb.yaml")["spec"]["selector"]["matchLabels"] == selector
    monitor = docs(bundle_dir, "servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == selector
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])


def test_an_s3_board_is_filled_in(store, tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_S3_ENDPOINT_URL", "http://minio.local:9000")
    files = k8s.manifests("My_Model.v2", "V1", port=8080, workers=1,
                          board="s3://bucket/team", s3_endpoint=settings.s3_endpoint_url())
    kz = yaml.safe_load(files["kustomization.yaml"])
    literals = kz["configMapGenerator"][0]["literals"]
    assert literals == ["FIXATIVE_STORE=s3://bucket/team",
                        "FIXATIVE_S3_ENDPOINT_URL=http://minio.local:9000"]
    assert yaml.safe_load(files["deployment.yaml"])["metadata"]["name"] == "my-model-v2"


@pytest.mark.parametrize("model,app", [("a" * 300, "a" * 40), ("__", "model"),
                                       ("x/../../etc", "x-etc"), ("UPPER case", "upper-case")])
def test_app_names_are_dns_labels(model, app):
    assert k8s.app_name(model) == app


@pytest.mark.process
def test_probes_port_and_env_match_a_real_server(bundle_dir, container, tmp_path):
    """The bundle's own server, started the way the pod starts it, with the pod's env."""
    board = tmp_path / "board"
    port = free_port("127.0.0.1")
    values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert values[settings.PORT_ENV] == str(container["ports"][0]["containerPort"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(values)
    env.update({settings.PORT_ENV: str(port), settings.HOST_ENV: "127.0.0.1",
                settings.STORE_ENV: str(board), settings.TOKENS_ENV: TOKEN,
                settings.INDEX_DIR_ENV: str(tmp_path / "cache"),
                settings.RUN_DIR_ENV: str(tmp_path / "cache"),
                settings.NODE_NAME_ENV: "node-7", settings.HEARTBEAT_SECONDS_ENV: "1"})
    out = tmp_path / "server.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "core.serving.process", "serve.json"],
                                cwd=bundle_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "the bundle's server did not start"
            try:
                if requests.get(url + k8s.PROBE_PATHS["readiness"], timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        probes = {k: container[f"{k}Probe"]["httpGet"] for k in ("readiness", "liveness",
                                                                   "startup")}
        for probe in probes.values():
            assert probe["port"] == "http"
            # open without a token, as a kubelet calls them
            assert requests.get(url + probe["path"], timeout=5).status_code == 200
        assert requests.get(url + "/metrics", timeout=5).status_code == 401
        assert requests.get(url + "/metrics", timeout=5,
                            headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        # every worker (FIXATIVE_WORKERS=2) reports to the board, with the pod's node
        from core.store.versionstore import VersionStore

        store = VersionStore(board)
        deadline = time.monotonic() + 60
        while len(heartbeat.read_replicas(store)[0]) < 2:
            assert time.monotonic() < deadline, "no heartbeats from the workers"
            time.sleep(0.2)
        replicas, notes = heartbeat.read_replicas(store)
        assert notes == [] and len(replicas) == 2
        assert {(r.model, r.alias, r.port, r.node) for r in replicas} == {
            ("house", "production", port, "node-7")}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert heartbeat.read_replicas(VersionStore(board)) == ([], [])


# -- requirements.lock -----------------------------------------------------------------------

def lock_blocks(text: str) -> dict[str, tuple[str, str]]:
    """name -> (version, the block's text) of a requirements.lock."""
    blocks: dict[str, tuple[str, str]] = {}
    name = ""
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")):
            name, _, rest = line.partition("==")
            blocks[name.lower()] = (rest.split(" ")[0].split(";")[0], line)
        elif name and line.startswith(" "):
            version, block = blocks[name.lower()]
            blocks[name.lower()] = (version, block + "\n" + line)
    return blocks


def test_the_lock_pins_transitive_packages_with_hashes():
    starlette = importlib.metadata.version("starlette")
    blocks = lock_blocks(locking.lock([f"starlette=={starlette}"], "3.11"))
    assert blocks["starlette"][0] == starlette
    # anyio comes with starlette, at the version installed here
    assert blocks["anyio"][0] == importlib.metadata.version("anyio")
    assert all("--hash=sha256:" in block for _, block in blocks.values())


def test_a_locked_bundle_installs_only_hashed_packages(store, tmp_path):
    out = dockerbundle.write_bundle(store, "house@" + store.resolve("house")[1],
                                    tmp_path / "locked", lock=True)
    dockerfile = (out / "Dockerfile").read_text()
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" \
        in dockerfile
    blocks = lock_blocks((out / locking.LOCK_FILE).read_text())
    for line in (out / "requirements.txt").read_text().splitlines():
        name, version = line.split(";")[0].split("==")
        assert blocks[name.lower()][0] == version
    assert len(blocks) > len((out / "requirements.txt").read_text().splitlines())
    assert all("--hash=sha256:" in block for _, block in blocks.values())


def test_an_unreachable_index_is_a_clear_error(store, tmp_path, monkeypatch):
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setenv("UV_OFFLINE", "1")
    with pytest.raises(InvalidArgument, match="It needs the package index.*--no-lock"):
        dockerbundle.write_bundle(store, "house", tmp_path / "nolock", lock=True)
    assert not (tmp_path / "nolock").exists()
    monkeypatch.setattr(locking, "uv_binary", lambda: None)
    with pytest.raises(InvalidArgument, match="uv is not installed"):
        locking.lock(["starlette"], "3.11")
