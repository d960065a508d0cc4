"""VersionStore: immutable model versions on a board, indexed by DuckDB, with aliases.

    store = VersionStore("./fixative-store")     # or "s3://bucket/prefix", or None
    info = store.write(bundle)                    # a new version, atomically
    store.set_alias("houses", "production", info.version)
    bundle = store.read("houses", alias="production")

The board (:mod:`core.store.board`, layout in :mod:`core.store.layout`) is the source of truth:
versions in the pins layout, aliases and records as append-only event files under
``.fixative/``. The index (:mod:`core.store.index`) is derived from it and refreshed
whenever the board's change marker moves; answers are kept in memory until then,
so repeated listings cost one marker check. On a local board, an answer about one
model also outlives changes elsewhere on the board: it is kept with the names in that
model's folder and its alias-event folder, and reused while both are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from core import settings
from core.errors import CorruptData, InvalidArgument, NotFound, PayloadTooLarge
from core.model.bundle import BundleMeta, ModelBundle, current_user
from core.store import compiled, layout, paths, upkeep
from core.store import verify as checks
from core.store.board import (
    DATA_HASH_FILE,
    META_FILE,
    PINS_META,
    SAMPLE_FILE,
    open_board,
    valid_entry,
)
from core.store.files import hash_bytes
from core.store.index import NOT_A_MODEL, Index, entry_info, read_entry
from core.store.names import (
    parse_ref,
    validate_alias,
    validate_kind,
    validate_name,
    validate_version,
)
from core.store.search import search_sql
from core.store.snapshot import Snapshots
from core.store.versions import (
    AliasEvent,
    BoardReport,
    ModelInfo,
    Record,
    VersionInfo,
    clock,
    event_id,
)
from core.times import as_utc

if TYPE_CHECKING:  # imported where used: listing versions loads neither
    import pandas as pd

    from core.safety.loader import SafetyReport

MAX_RECORD_BYTES = 1 << 20

__all__ = [
    "AliasEvent", "BoardReport", "ModelInfo", "Record", "VersionInfo", "VersionStore",
    "validate_alias", "validate_name", "validate_version",
]


class VersionStore(compiled.CompiledVersions, upkeep.Upkeep):
    """Model versions on a board (local folder or fsspec URL) with a DuckDB index."""

    def __init__(self, board: str | os.PathLike[str] | None = None, *,
                 storage_options: dict[str, Any] | None = None,
                 index_path: str | None = None, lock_timeout: float = 30.0) -> None:
        self._board = open_board(board, storage_options)
        self.url = self._board.url
        self._index = Index(index_path or self._default_index_path(), lock_timeout)
        self._snapshots = Snapshots(paths.listings_dir(self._index.path))
        self._cache: dict[Any, Any] = {}
        self._cache_marker: str | None = None
        # key -> (what the model's folders held, answer): see _model_state
        self._kept: dict[Any, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VersionStore({self.url!r})"

    def _default_index_path(self) -> str:
        if self._board.is_local:
            return paths.index_file(self._board)
        folder = settings.index_dir()
        key = hashlib.sha256(f"{self.url}|{self._board.endpoint}".encode()).hexdigest()[:24]
        return os.path.join(folder, f"{key}.duckdb")

    @property
    def fs(self) -> Any:
        """The board's fsspec file system (a local board's is made on first use: listing
        versions never needs fsspec)."""
        return self.__dict__.get("_fs") or self._board.fs

    @fs.setter
    def fs(self, value: Any) -> None:
        self.__dict__["_fs"] = value

    @property
    def index_path(self) -> str:
        return self._index.path

    @property
    def is_local(self) -> bool:
        return self._board.is_local

    def path(self, *parts: str) -> str:
        """Absolute path inside the board, for ``store.fs``."""
        return self._board.path(*parts)

    def change_marker(self) -> str:
        """Changes whenever versions, aliases or records change (a cache key)."""
        return self._board.marker()

    # -- cached index queries -----------------------------------------------------------

    def _query(self, key: Any, run: Callable[[Any], Any], model: str | None = None) -> Any:
        """``run(con)`` on an index that agrees with the board, or its cached answer.

        ``model``: the answer depends only on that model's versions and alias events, so
        it stays good while they are unchanged, whatever else changes on the board.
        """
        marker = self._board.marker()
        with self._lock:
            if marker != self._cache_marker:
                self._cache = {}
                self._cache_marker = marker
            if key in self._cache:
                return _copy(self._cache[key])
            kept = self._kept.get(key)
        # Taken before the query: a change after this point makes the next check fail.
        state = self._model_state(model) if model is not None else None
        reuse = state is not None and kept is not None and kept[0] == state
        if reuse and kept is not None:
            value = kept[1]
        else:
            value = None
            if model is not None and state is not None and kept is not None \
                    and key[0] == "versions":
                value = self._grown(model, kept, state)
            kept_on_disk = self._snapshots.kept(key)
            if value is None and kept_on_disk:
                value = self._snapshots.read(key, marker)  # a fresh process: no DuckDB
            if value is None:
                with self._index.session(self._board, marker) as con:
                    value = run(con)
                if kept_on_disk:
                    self._snapshots.write(key, marker, value)
        with self._lock:
            if self._cache_marker == marker:
                self._cache[key] = value
            if not reuse and state is not None and self._complete(state, key, value):
                self._kept[key] = (state, value)
        return _copy(value)

    def _model_state(self, name: str) -> tuple[frozenset[str], frozenset[str]] | None:
        """The names in a model's version folder and alias-event folder (local boards;
        versions are immutable, so these names say whether an answer still holds)."""
        versions = self._board.entry_names(name)
        if versions is None:
            return None
        aliases = self._board.entry_names(paths.SYSTEM_DIR, *paths.alias_events(name))
        return versions, aliases or frozenset()

    def _grown(self, name: str, kept: tuple[Any, Any],
               state: tuple[frozenset[str], frozenset[str]]) -> list[VersionInfo] | None:
        """A kept version listing plus the versions written since, read from their own
        folders; None unless new version folders are the only change (the index answers
        everything else)."""
        (versions_then, aliases_then), listed = kept
        versions_now, aliases_now = state
        if aliases_now != aliases_then or not versions_then <= versions_now:
            return None
        added = []
        for version in sorted(versions_now - versions_then):
            # a version is complete once its data.txt is there, as for the index
            if not valid_entry(version) or not os.path.exists(
                    self._board.path(name, version, PINS_META)):
                return None
            row, _why = read_entry(self._board, name, version)
            if row is None:
                return None
            added.append(entry_info(row))
        return sorted([*listed, *added], key=lambda v: v.version)

    def _complete(self, state: tuple[frozenset[str], frozenset[str]], key: Any,
                  value: Any) -> bool:
        """Whether the folder names alone can vouch for ``value``: every entry of the
        model folder is one of the versions the index holds (an unfinished or foreign
        folder could become a version without changing the names)."""
        if key[0] == "versions":
            return state[0] == {v.version for v in value}
        known = self._cache.get(("versions", key[1]))
        return known is not None and state[0] == {v.version for v in known}

    def list_models(self) -> list[ModelInfo]:
        """Every model on the board, by name."""
        return self._query(("models",), Index.models)

    def versions(self, name: str) -> list[VersionInfo]:
        """The versions of one model, oldest first."""
        name = validate_name(name)
        found = self._query(("versions", name),
                            lambda con: Index.versions(con, "v.name = ?", [name]), name)
        if not found:
            raise self._no_model(name)
        return found

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version for one model."""
        name = validate_name(name)
        return self._query(("aliases", name), lambda con: Index.aliases(con, name), name)

    def alias_history(self, name: str) -> list[AliasEvent]:
        """Every alias move of one model, oldest first."""
        name = validate_name(name)
        events = self._query(("history", name), lambda con: Index.alias_history(con, name),
                             name)
        if not events:
            self.versions(name)  # no such model is an error, not an empty history
        return events

    def alias_at(self, name: str, alias: str, at: datetime | date | str) -> str | None:
        """The version ``alias`` pointed at, at time ``at`` (None if it pointed nowhere)."""
        alias = validate_alias(alias)
        when = as_utc(at, "at")
        current = None
        for event in self.alias_history(name):
            if event.alias == alias and event.at <= when:
                current = event.to_version
        return current

    def search(self, text: str | None = None, tag: str | None = None,
               created_after: datetime | date | str | None = None,
               created_before: datetime | date | str | None = None,
               metric: str | None = None, min_value: float | None = None,
               max_value: float | None = None, param: str | None = None) -> list[VersionInfo]:
        """Versions matching every given condition, by name then oldest first.

        ``text`` is a case-insensitive substring of the name or description; ``tag`` an
        exact tag; ``created_after``/``created_before`` bound the creation time; ``metric``
        with ``min_value``/``max_value`` keeps versions whose metric lies in the range;
        ``param`` (``KEY=VALUE``) a recorded parameter (:func:`.search.param_condition`)."""
        clause, params = search_sql(text, tag, created_after, created_before, metric,
                                    min_value, max_value, param)
        key = ("search", clause, tuple(str(p) for p in params))
        return self._query(key, lambda con: Index.versions(con, clause, params))

    def records(self, kind: str, name: str | None = None, version: str | None = None
                ) -> list[Record]:
        """Records of one kind (optionally of one model / version), oldest first."""
        kind = validate_kind(kind)
        name = None if name is None else validate_name(name)
        version = None if version is None else validate_version(version)
        return self._query(("records", kind, name, version),
                           lambda con: Index.records(con, kind, name, version))

    # -- resolving ----------------------------------------------------------------------

    def _no_model(self, name: str) -> NotFound:
        names = [m.name for m in self.list_models()]
        if not names:
            return NotFound(f"No model '{name}' in the store at {self.url}: the store is empty. "
                            "Add one on the workbench's Upload page, with "
                            "'python -m core write MODEL_FILE --name NAME', or "
                            "store.write(bundle).")
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return NotFound(f"No model '{name}' in the store at {self.url}.{hint} "
                        f"Models: {checks.listing(names)}.")

    def _version_info(self, name: str, version: str) -> VersionInfo:
        versions = self.versions(name)
        for info in versions:
            if info.version == version:
                return info
        reason = self._query(("ignored", name),
                             lambda con: Index.ignored(con, name)).get(version)
        if reason and not reason.endswith(NOT_A_MODEL):
            raise CorruptData(f"{name}/{version} cannot be read: {reason}. "
                              f"{checks.repair(name, version)}")
        raise NotFound(f"No version '{version}' of model '{name}'. It has {len(versions)} "
                       f"version(s); the latest is '{versions[-1].version}'. List them with "
                       f"'python -m core versions {name}'.")

    def _resolve(self, name: str, version: str | None, alias: str | None) -> str:
        name = validate_name(name)
        if version is not None and alias is not None:
            raise InvalidArgument(f"Give a version or an alias of '{name}', not both.")
        if version is not None:
            return self._version_info(name, validate_version(version)).version
        if alias is not None:
            alias = validate_alias(alias)
            aliases = self.aliases(name)
            if alias not in aliases:
                self.versions(name)  # an unknown model is reported as such
                listed = (f"aliases: {checks.listing(sorted(aliases))}" if aliases else
                          "it has no aliases yet; set one with "
                          f"'python -m core alias {name} VERSION {alias}'")
                raise NotFound(f"No alias '{alias}' for model '{name}'; {listed}.")
            target = aliases[alias]
            known = {v.version for v in self.versions(name)}
            if target not in known:
                raise NotFound(f"Alias '{alias}' of model '{name}' points at version '{target}', "
                               "which is no longer in the store; move it with "
                               f"'python -m core alias {name} VERSION {alias}'.")
            return target
        return self.versions(name)[-1].version

    def resolve(self, ref: str) -> tuple[str, str]:
        """``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS`` -> (name, version)."""
        name, version, alias = parse_ref(ref)
        return name, self._resolve(name, version, alias)

    # -- writing ------------------------------------------------------------------------

    def write(self, bundle: ModelBundle, *, compile: bool | None = None) -> VersionInfo:
        """Store ``bundle`` as a new version of ``bundle.name``; sets ``bundle.version``.

        ``compile``: also convert it to ONNX and verify the graph on the sample (recorded
        on the version, see :mod:`core.store.compile`); None follows ``FIXATIVE_COMPILE``
        (off when unset: a library write costs what storing costs; compile later with
        :meth:`compile`)."""
        if not isinstance(bundle, ModelBundle):
            raise InvalidArgument(f"store.write takes a ModelBundle, got {type(bundle).__name__}; "
                                  "build one with core.bundle(model, sample, name=...).")
        name = validate_name(bundle.meta.name)
        meta = bundle.meta
        model_file = layout.model_file(name)
        written: dict[str, Any] = {}
        with self._board.stage() as stage:
            try:
                stage.write_stream(model_file, lambda w: layout.dump_model(bundle.model, w))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise InvalidArgument("The model cannot be saved with joblib "
                                      f"({type(exc).__name__}: {exc}). Models holding lambdas, "
                                      "locks, open files or connections cannot be "
                                      "stored.") from None
            if bundle.sample is not None and len(bundle.sample):
                stage.write_bytes(SAMPLE_FILE, layout.sample_bytes(bundle.sample))
                compiled.stage_compiled(stage, bundle, compile)  # never fails the write

            def finish(version: str, at: datetime) -> dict[str, bytes]:
                meta_raw = layout.fixative_json(meta, version, at, stage.files)
                written["at"] = at
                pins_raw = layout.data_txt(name, meta, at, stage.files[model_file],
                                           hash_bytes(meta_raw), version)
                return {META_FILE: meta_raw, DATA_HASH_FILE: layout.data_hash_line(pins_raw),
                        PINS_META: pins_raw}

            version = stage.commit(name, finish)
            stat = stage.files[model_file]
        self._board.bump()
        bundle.version = version
        return VersionInfo(
            name=name, version=version, created=written["at"], hash=stat.sha256,
            size=stat.size, user=meta.user, description=meta.description, task=meta.task,
            model_class=meta.model_class, library=meta.library, metrics=dict(meta.metrics),
            tags=list(meta.tags), aliases=[], source="fixative")

    # -- reading ------------------------------------------------------------------------

    def _documents(self, name: str, version: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """data.txt and fixative.json of a version, the latter checked against its hash."""
        return checks.read_documents(self._board, name, version)

    def meta(self, name: str, version: str | None = None) -> BundleMeta:
        """The metadata of a version (latest when None), without loading the model."""
        version = self._resolve(name, version, None)
        doc, meta_doc = self._documents(name, version)
        if meta_doc is not None:
            return BundleMeta.from_dict(meta_doc)
        return layout.pins_meta(name, doc)

    def sample(self, name: str, version: str | None = None) -> pd.DataFrame | None:
        """The reference rows stored with a version, or None when it has none."""
        version = self._resolve(name, version, None)
        _doc, meta_doc = self._documents(name, version)
        return self._sample(name, version, meta_doc)

    def _sample(self, name: str, version: str, meta_doc: dict[str, Any] | None
                ) -> pd.DataFrame | None:
        files = ((meta_doc or {}).get("fixative") or {}).get("files") or {}
        expected = files.get(SAMPLE_FILE)
        if not expected:
            return None
        import pandas as pd

        raw = checks.checked_bytes(self._board, name, version, SAMPLE_FILE, expected.get("sha256"))
        return pd.read_parquet(io.BytesIO(raw))

    def read(self, name: str, version: str | None = None, alias: str | None = None,
             trusted: Iterable[str] = ()) -> ModelBundle:
        """Load a version (by id, by alias, or the latest) after checking its hashes.

        The model file goes through :func:`core.safety.loader.load_model`: names outside the
        allowlist are refused unless listed in ``trusted``.
        """
        version = self._resolve(name, version, alias)
        doc, meta_doc = self._documents(name, version)
        from core.safety.loader import load_model

        model = checks.with_model_file(self._board, name, version, doc, meta_doc,
                                       lambda path, _f: load_model(path, trusted=tuple(trusted)))
        if meta_doc is not None:
            meta = BundleMeta.from_dict(meta_doc)
            sample = self._sample(name, version, meta_doc)
        else:
            meta = layout.complete_pins_meta(layout.pins_meta(name, doc), model)
            sample = None
        return ModelBundle(model=model, meta=meta, sample=sample, version=version)

    def safety_report(self, name: str, version: str | None = None) -> SafetyReport:
        """What a version's model file would import, from a scan (it is never loaded)."""
        version = self._resolve(name, version, None)
        doc, _ = self._documents(name, version)
        from core.safety.loader import scan_file

        return checks.with_model_file(self._board, name, version, doc, None, check=False,
                                      use=lambda path, file: scan_file(path, filename=file))

    def read_ref(self, ref: str, trusted: Iterable[str] = ()) -> ModelBundle:
        """Read ``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS``."""
        name, version, alias = parse_ref(ref)
        return self.read(name, version=version, alias=alias, trusted=trusted)

    # -- aliases ------------------------------------------------------------------------

    def _alias_event(self, name: str, alias: str, to_version: str | None, user: str | None
                     ) -> AliasEvent:
        current = self.aliases(name).get(alias)
        at = clock.now()
        event = AliasEvent(name=name, alias=alias, from_version=current, to_version=to_version,
                           user=user or current_user(), at=at, id=event_id(at))
        self._board.write_event(paths.alias_events(name), event.id, event.to_dict())
        return event

    def set_alias(self, name: str, alias: str, version: str, user: str | None = None
                  ) -> AliasEvent:
        """Point ``alias`` at ``version`` (set or move); the move is kept in the history."""
        name, alias = validate_name(name), validate_alias(alias)
        if alias.lower() == "latest":
            raise InvalidArgument("'latest' always means the newest version, so it cannot be an "
                                  "alias; choose another name, such as 'production' or 'stable'.")
        version = self._version_info(name, validate_version(version)).version
        if self.aliases(name).get(alias) == version:
            for event in reversed(self.alias_history(name)):
                if event.alias == alias:
                    return event
        event = self._alias_event(name, alias, version, user)
        self._board.bump()
        return event

    def remove_alias(self, name: str, alias: str, user: str | None = None) -> AliasEvent:
        """Remove an alias; the removal is kept in the history."""
        name, alias = validate_name(name), validate_alias(alias)
        aliases = self.aliases(name)
        if alias not in aliases:
            self.versions(name)
            raise NotFound(f"No alias '{alias}' for model '{name}'; aliases: "
                           f"{checks.listing(sorted(aliases)) or 'none'}.")
        event = self._alias_event(name, alias, None, user)
        self._board.bump()
        return event

    # -- records ------------------------------------------------------------------------

    def add_record(self, kind: str, name: str, payload: Mapping[str, Any],
                   version: str | None = None, user: str | None = None) -> Record:
        """Append a record (card text, monitoring settings, endpoint...) for a model."""
        kind, name = validate_kind(kind), validate_name(name)
        if version is not None:
            version = self._version_info(name, validate_version(version)).version
        else:
            self.versions(name)
        if not isinstance(payload, Mapping):
            raise InvalidArgument(f"A record's payload must be a mapping (dict), got "
                                  f"{type(payload).__name__}.")
        try:
            body = json.dumps(dict(payload), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"A record's payload must be plain JSON (text, numbers, lists, "
                                  f"mappings; no NaN): {exc}.") from None
        if len(body) > MAX_RECORD_BYTES:
            raise PayloadTooLarge(f"The record is {len(body):,} bytes; records hold at most "
                                  f"{MAX_RECORD_BYTES:,}. Store large data as a file instead.")
        at = clock.now()
        record = Record(kind=kind, name=name, version=version, at=at,
                        user=user or current_user(), payload=json.loads(body), id=event_id(at))
        self._board.write_event(paths.record_events(kind, name), record.id, record.to_dict())
        self._board.bump()
        return record


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
