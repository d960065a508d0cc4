"""Fixative: version, deploy, document and monitor fitted models.

    import core
    bundle = core.bundle(model, sample, name="houses")
    store = core.VersionStore("./fixative-store")
    store.write(bundle)
"""

from __future__ import annotations

from typing import Any

from core.errors import FixativeError
from core.model.bundle import BundleMeta, ModelBundle, bundle
from core.model.prototype import Column, Prototype

__all__ = ["BundleMeta", "Column", "FixativeError", "ModelBundle", "Prototype", "VersionStore",
           "bundle"]


def __getattr__(name: str) -> Any:
    # The store pulls in DuckDB; a prediction server that never lists versions
    # should not pay for it in memory at start-up.
    if name == "VersionStore":
        from core.store.versionstore import VersionStore

        return VersionStore
    raise AttributeError(f"module 'core' has no attribute {name!r}")
