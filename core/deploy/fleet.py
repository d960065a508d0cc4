"""The fleet: every replica serving from a board, wherever it runs.

Replicas report themselves with heartbeats on the board (see
:mod:`core.serving.heartbeat`): a ``serve`` on this machine, a container, a Kubernetes
pod. This module joins them with the endpoints started on this machine, says which are
local (the workbench can stop those) and which run elsewhere (stopping them is the job
of whatever started them), and sums up what each model is served at, so a rollout in
progress (two versions served at once) shows.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.processes import parent
from core.serving.heartbeat import Replica, prune, read_replicas, stale_after
from core.store.protocols import StoreLike

REMOTE_STOP = ("Replicas on other machines, in containers or in pods are stopped where they "
               "were started (kubectl scale or delete, docker stop, systemctl): this "
               "workbench stops only endpoints it started on this machine.")
# Stale replicas older than this are removed by ``endpoints prune`` unless told otherwise.
PRUNE_AFTER = 86400.0


@dataclass
class FleetReplica:
    """A replica with where it runs as seen from here."""

    replica: Replica
    where: str  # "this machine" or "remote"
    endpoint_id: str | None = None  # the local endpoint it belongs to, if any

    def to_dict(self) -> dict[str, Any]:
        return {**self.replica.to_dict(), "where": self.where, "endpoint_id": self.endpoint_id}


def _local_endpoints(store: StoreLike) -> dict[int, str]:
    from core.deploy.endpoints import list_endpoints

    return {s.endpoint.pid: s.endpoint.id for s in list_endpoints(store, probe=False)}


def fleet(store: StoreLike, *, stale: float | None = None
          ) -> tuple[list[FleetReplica], list[str]]:
    """Every replica reporting to ``store``'s board, and notes on skipped files."""
    replicas, notes = read_replicas(store, stale=stale)
    machine = socket.gethostname()[:200]
    local = _local_endpoints(store) if any(r.host == machine for r in replicas) else {}
    out: list[FleetReplica] = []
    for r in replicas:
        if r.host != machine:
            out.append(FleetReplica(r, "remote"))
            continue
        endpoint = local.get(r.pid) if r.pid is not None else None
        if endpoint is None and r.pid is not None:  # a worker of a multi-worker endpoint
            owner = parent(r.pid)
            endpoint = local.get(owner) if owner is not None else None
        out.append(FleetReplica(r, "this machine", endpoint))
    return out, notes


def prune_stale(store: StoreLike, older_than: float = PRUNE_AFTER) -> list[str]:
    """Remove heartbeats of replicas unseen for ``older_than`` seconds (never less than
    the stale age, so a live replica is never pruned); their ids."""
    return prune(store, older_than=max(float(older_than), stale_after()))


def rollouts(replicas: Sequence[FleetReplica]) -> list[str]:
    """One line per model: how many fresh replicas serve which version (and alias)."""
    by_model: dict[str, dict[str, int]] = {}
    stale: dict[str, int] = {}
    for f in replicas:
        r = f.replica
        if r.health != "fresh":
            stale[r.model] = stale.get(r.model, 0) + 1
            continue
        label = r.version + (f" (alias {r.alias})" if r.alias else "")
        by_model.setdefault(r.model, {})
        by_model[r.model][label] = by_model[r.model].get(label, 0) + 1
    lines = []
    for model in sorted(set(by_model) | set(stale)):
        versions = by_model.get(model, {})
        parts = [f"{n} on {label}" for label, n in sorted(versions.items())]
        text = f"{model}: " + (", ".join(parts) if parts else "no fresh replica")
        if len({label.split(' ')[0] for label in versions}) > 1:
            text += "; more than one version is served (a rollout in progress?)"
        pairs = sorted({f.replica.challenger for f in replicas if f.replica.model == model
                        and f.replica.health == "fresh" and f.replica.challenger})
        for label in pairs:
            n = sum(1 for f in replicas if f.replica.model == model
                    and f.replica.health == "fresh" and f.replica.challenger == label)
            text += f"; challenger {label} on {n}"
        if stale.get(model):
            text += f"; {stale[model]} stale"
        lines.append(text)
    return lines


COLUMNS = ["model", "version", "alias", "challenger", "health", "where", "host", "node",
           "pid", "port", "engine", "requests", "rows", "errors", "started", "last_seen",
           "age_seconds", "endpoint_id", "id"]


def fleet_frame(replicas: Sequence[FleetReplica]) -> pd.DataFrame:
    """One row per replica, for a table."""
    rows = []
    for f in replicas:
        row = f.to_dict()
        row["alias"] = row["alias"] or ""
        row["challenger"] = row.get("challenger") or ""
        for key in ("started", "last_seen"):
            try:
                row[key] = pd.Timestamp(row[key]) if row[key] else pd.NaT
            except (ValueError, TypeError):
                row[key] = pd.NaT
        rows.append({k: row.get(k) for k in COLUMNS})
    return pd.DataFrame(rows, columns=COLUMNS)
