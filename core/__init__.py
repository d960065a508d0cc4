"""Fixative: version, deploy, document and monitor fitted models.

    import core
    bundle = core.bundle(model, sample, name="houses")
    store = core.VersionStore("./fixative-store")
    store.write(bundle)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.errors import FixativeError

if TYPE_CHECKING:
    from core.model.bundle import BundleMeta, ModelBundle, bundle
    from core.model.prototype import Column, Prototype
    from core.store.versionstore import VersionStore

__all__ = ["BundleMeta", "Column", "FixativeError", "ModelBundle", "Prototype", "VersionStore",
           "bundle"]

# The public API is imported on first use (PEP 562), so ``import core`` stays cheap:
# a command that lists versions never loads pandas or scikit-learn, and a prediction
# server that never lists versions never loads DuckDB.
_LAZY = {
    "BundleMeta": "core.model.bundle",
    "ModelBundle": "core.model.bundle",
    "bundle": "core.model.bundle",
    "Column": "core.model.prototype",
    "Prototype": "core.model.prototype",
    "VersionStore": "core.store.versionstore",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
