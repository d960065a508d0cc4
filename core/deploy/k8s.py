"""Kubernetes manifests for a Docker bundle (``python -m core docker REF DIR --k8s``).

Plain YAML in a kustomize layout, applied with ``kubectl apply -k DIR/k8s``::

    k8s/kustomization.yaml   the list below, the image name, the board's ConfigMap
    k8s/deployment.yaml      the server: non-root, read-only root filesystem (an emptyDir
                             at /tmp for what it writes), resources, readiness on
                             /healthz, liveness on /ping, a preStop pause and a grace
                             period longer than the prediction log's flush
    k8s/service.yaml         ClusterIP in front of the pods
    k8s/hpa.yaml             HorizontalPodAutoscaler on CPU
    k8s/pdb.yaml             PodDisruptionBudget: one pod at most down for maintenance
    k8s/servicemonitor.yaml  for the Prometheus Operator (not applied unless listed)

Secrets are referenced by name and key, never written: the API tokens
(``<app>-api-tokens``, required, so a pod never comes up open) and S3 credentials
(``<app>-s3``, optional, for clusters that give pods a cloud identity instead).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from core import settings
from core.serving.process import GRACEFUL_SHUTDOWN

K8S_DIR = "k8s"
CONTAINER = "server"
UID = 10001
# Seconds the pod keeps serving after it is told to stop, while the Service and the
# load balancers drop it from their lists; uvicorn's graceful shutdown (open requests
# and the prediction log's last flush) comes after.
PRESTOP_SECONDS = 5
GRACE_PERIOD = PRESTOP_SECONDS + GRACEFUL_SHUTDOWN + 17
# Where the read-only root filesystem lets the server write (metrics files of several
# workers, the board's index cache).
TMP = "/tmp"
CACHE = "/tmp/fixative"
BOARD_PLACEHOLDER = "s3://CHANGE-ME-bucket/fixative-board"
PROBE_PATHS = {"readiness": "/healthz", "liveness": "/ping", "startup": "/ping"}
RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def app_name(model: str) -> str:
    """A DNS-1123 name for the model's objects (lower case, ``-``, at most 40 characters,
    leaving room for suffixes such as ``-api-tokens``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")[:40].strip("-")
    return name or "model"


def _labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/part-of": "fixative"}


def _selector(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "model-server"}


def _env(app: str, port: int, workers: int) -> list[dict[str, Any]]:
    def config(key: str, optional: bool = False) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": f"{app}-board", "key": key}
        if optional:
            ref["optional"] = True
        return {"name": key, "valueFrom": {"configMapKeyRef": ref}}

    def secret(key: str, name: str, optional: bool) -> dict[str, Any]:
        return {"name": key, "valueFrom": {"secretKeyRef": {
            "name": name, "key": key, "optional": optional}}}

    return [
        {"name": settings.PORT_ENV, "value": str(port)},
        {"name": settings.HOST_ENV, "value": "0.0.0.0"},
        {"name": settings.WORKERS_ENV, "value": str(workers)},
        config(settings.STORE_ENV),
        config(settings.S3_ENDPOINT_ENV, optional=True),
        {"name": settings.INDEX_DIR_ENV, "value": CACHE},
        {"name": settings.RUN_DIR_ENV, "value": CACHE},
        {"name": settings.NODE_NAME_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": "spec.nodeName"}}},
        secret(settings.TOKENS_ENV, f"{app}-api-tokens", optional=False),
        *(secret(key, f"{app}-s3", optional=True) for key in S3_KEYS),
    ]


def _probe(path: str, *, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
                             "timeoutSeconds": 3, "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def deployment(app: str, model: str, version: str, *, port: int, workers: int,
               replicas: int = 2, challenger: str | None = None) -> dict[str, Any]:
    container = {
        "name": CONTAINER,
        "image": app,  # replaced by kustomization.yaml's images entry
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(app, port, workers),
        "resources": RESOURCES,
        # the model loads before /ping answers: up to 5 minutes for a large one
        "startupProbe": _probe(PROBE_PATHS["startup"], period=5, failures=60),
        "readinessProbe": _probe(PROBE_PATHS["readiness"], period=5, failures=2),
        "livenessProbe": _probe(PROBE_PATHS["liveness"], period=10, failures=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": TMP}],
    }
    notes = {"fixative.dev/model": model, "fixative.dev/version": version}
    pod_notes = {"fixative.dev/version": version}
    if challenger:  # the image serves a pair (see core.deploy.pair)
        notes["fixative.dev/challenger"] = challenger
        pod_notes["fixative.dev/challenger"] = challenger
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "labels": _labels(app), "annotations": notes},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(app)},
            # a new version replaces pods one by one, never below the replicas asked for
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": _labels(app), "annotations": {
                    **pod_notes,
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                    "prometheus.io/path": "/metrics"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": GRACE_PERIOD,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                        "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def service(app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": app, "labels": _labels(app)},
            "spec": {"type": "ClusterIP", "selector": _selector(app),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}]}}


def hpa(app: str, *, min_replicas: int = 2, max_replicas: int = 10) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": app, "labels": _labels(app)},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": app},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 70}}}]}}


def pdb(app: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": app, "labels": _labels(app)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(app)}}}


def service_monitor(app: str) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": app, "labels": _labels(app)},
            "spec": {"selector": {"matchLabels": _selector(app)},
                     "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s",
                                    # /metrics needs a token when the server has tokens
                                    "authorization": {"type": "Bearer", "credentials": {
                                        "name": f"{app}-api-tokens",
                                        "key": "metrics-token"}}}]}}


RESOURCE_FILES = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")


def kustomization(app: str, image: str, tag: str, *, board: str,
                  s3_endpoint: str | None) -> dict[str, Any]:
    literals = [f"{settings.STORE_ENV}={board}"]
    if s3_endpoint:
        literals.append(f"{settings.S3_ENDPOINT_ENV}={s3_endpoint}")
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": list(RESOURCE_FILES),
            "images": [{"name": app, "newName": image, "newTag": tag}],
            "configMapGenerator": [{"name": f"{app}-board", "literals": literals}]}


def _dump(doc: dict[str, Any], comment: str) -> str:
    lines = "".join(f"# {line}\n" if line else "#\n" for line in comment.strip().splitlines())
    return lines + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)


def manifests(model: str, version: str, *, port: int, workers: int, board: str | None = None,
              s3_endpoint: str | None = None, image: str | None = None,
              challenger: str | None = None) -> dict[str, str]:
    """The files of ``k8s/`` (name -> YAML text) serving ``model@version``.

    ``board``: the ``s3://`` board for the prediction log and heartbeats (a placeholder
    to edit when None). ``image``: the image name (default: the model's app name); its
    tag is the version. ``challenger``: what the image serves next to it (a label such
    as ``house@v2 (shadow)``), shown in the annotations.
    """
    app = app_name(model)
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version.lower())[:128]
    board = board or BOARD_PLACEHOLDER
    # every pod runs the pair: the image's serve.json names both version folders
    with_challenger = (f" with the challenger {challenger} in every pod (each logs both "
                       "with a serving_role)") if challenger else ""
    secrets = (f"kubectl create secret generic {app}-api-tokens "
               f"--from-literal={settings.TOKENS_ENV}=TOKEN1,TOKEN2")
    return {
        "kustomization.yaml": _dump(
            kustomization(app, image or app, tag, board=board, s3_endpoint=s3_endpoint),
            f"""
{model} {version} on Kubernetes: kubectl apply -k .
Before applying: push the image (docker build -t {image or app}:{tag} ..), set
images[0].newName to where you pushed it, set {settings.STORE_ENV} to your board, and
create the Secrets (their values never go in these files):
  {secrets}
  kubectl create secret generic {app}-s3 --from-literal=AWS_ACCESS_KEY_ID=...
      --from-literal=AWS_SECRET_ACCESS_KEY=...   (skip with a pod identity, e.g. IRSA)
With the Prometheus Operator, add servicemonitor.yaml to resources."""),
        "deployment.yaml": _dump(
            deployment(app, model, version, port=port, workers=workers,
                       challenger=challenger),
            f"""
Serves {model} {version}{with_challenger}.
Pods run as user {UID} with a read-only root filesystem; the
server writes only to the emptyDir at {TMP}. On a stop the pod keeps answering for
{PRESTOP_SECONDS} s (preStop) while it leaves the Service, then uvicorn finishes open
requests and flushes the prediction log ({GRACEFUL_SHUTDOWN} s at most) well inside the
{GRACE_PERIOD} s grace period. Each pod reports to the board with a heartbeat; see
`python -m core endpoints list --all`."""),
        "service.yaml": _dump(service(app), "In-cluster address of the pods, port 80."),
        "hpa.yaml": _dump(hpa(app), "2 to 10 pods, scaled on CPU (needs metrics-server)."),
        "pdb.yaml": _dump(pdb(app), "Node maintenance takes at most one pod down at once."),
        "servicemonitor.yaml": _dump(service_monitor(app), f"""
For the Prometheus Operator (add it to kustomization.yaml's resources). /metrics needs a
bearer token when the server has tokens: put one of them under the key metrics-token of
the {app}-api-tokens Secret. Without the operator, the pods' prometheus.io annotations
serve scrapers that read them (when the server has no tokens)."""),
    }
