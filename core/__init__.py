"""Fixative: version, deploy, document and monitor fitted models."""

from core.bundle import BundleMeta, ModelBundle, bundle
from core.errors import FixativeError
from core.prototype import Column, Prototype

__all__ = ["BundleMeta", "Column", "FixativeError", "ModelBundle", "Prototype", "bundle"]
