"""What the rest of Fixative needs from a store, as structural types.

:class:`BoardLike` is where files live: the prediction log and the monitoring folders
need nothing more, so a bare :class:`core.store.board.Board` (or a small stand-in, as
in ``bench/``) will do. :class:`StoreLike` adds the version store's reads, records and
aliases that monitoring, cards, serving, deploy and the workbench call;
:class:`core.store.versionstore.VersionStore` is the implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

    from core.model.bundle import BundleMeta, ModelBundle
    from core.safety.loader import SafetyReport
    from core.store.versions import AliasEvent, ModelInfo, Record, VersionInfo


class BoardLike(Protocol):
    """A board's files: an fsspec filesystem and absolute paths into it."""

    @property
    def fs(self) -> AbstractFileSystem: ...

    @property
    def url(self) -> str: ...

    @property
    def is_local(self) -> bool:
        """Whether the files are in a folder of this machine (else an object store)."""
        ...

    def path(self, *parts: str) -> str: ...


class StoreLike(BoardLike, Protocol):
    """A version store: models, versions, aliases and records on a board."""

    def change_marker(self) -> str: ...

    def list_models(self) -> list[ModelInfo]: ...

    def versions(self, name: str) -> list[VersionInfo]: ...

    def aliases(self, name: str) -> dict[str, str]: ...

    def resolve(self, ref: str) -> tuple[str, str]: ...

    def meta(self, name: str, version: str | None = None) -> BundleMeta: ...

    def sample(self, name: str, version: str | None = None) -> pd.DataFrame | None: ...

    def read(self, name: str, version: str | None = None, alias: str | None = None,
             trusted: Iterable[str] = ()) -> ModelBundle: ...

    def safety_report(self, name: str, version: str | None = None) -> SafetyReport: ...

    def compiled(self, name: str, version: str | None = None) -> dict[str, Any] | None: ...

    def compile(self, ref: str, trusted: Iterable[str] = ()) -> dict[str, Any]: ...

    def read_graph(self, name: str, version: str) -> tuple[ModelBundle, dict[str, Any], bytes]:
        ...

    def write(self, bundle: ModelBundle, *, compile: bool | None = None) -> VersionInfo: ...

    def set_alias(self, name: str, alias: str, version: str, user: str | None = None
                  ) -> AliasEvent: ...

    def delete(self, name: str, version: str, force: bool = False,
               user: str | None = None) -> None: ...

    def records(self, kind: str, name: str | None = None, version: str | None = None
                ) -> list[Record]: ...

    def add_record(self, kind: str, name: str, payload: Mapping[str, Any],
                   version: str | None = None, user: str | None = None) -> Record: ...

    def reindex(self) -> dict[str, int]: ...
