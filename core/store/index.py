"""The DuckDB index over a board: derived data that makes listing and search fast.

The board is the source of truth. The index remembers the board's change marker
at its last sync; when the marker differs, the index lists the board, reads only
what is new and drops what is gone (versions are immutable, events append-only).

DuckDB lets one process at a time open a database file for writing, and the
workbench, the CLI and prediction servers are separate processes. So every use
opens the file, does its work and closes it; a lock conflict is retried with
jittered exponential backoff, and if the file stays locked (someone holds it open
in a DuckDB shell) the answer comes from an in-memory index built from the board.
No caller ever sees a lock error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.store import layout
from core.store.board import META_FILE, PINS_META, Board, valid_entry
from core.store.paths import ALIAS_EVENTS, RECORD_EVENTS, SYSTEM_DIR
from core.store.search import param_rows
from core.store.versions import AliasEvent, ModelInfo, Record, VersionInfo, is_event_id
from core.times import parse_iso

if TYPE_CHECKING:  # imported where a connection is opened: answers kept on disk
    import duckdb  # (core.store.snapshot) need no DuckDB

log = logging.getLogger(__name__)

SCHEMA_VERSION = "3"
# The end of the reason a version folder is not indexed when it holds a pin of another
# kind (a data frame pinned with pins): not a damaged version.
NOT_A_MODEL = "not a model"
LOCK_TIMEOUT = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# One lock per index file within a process: DuckDB shares one database instance
# between a process's connections, and concurrent sync transactions would conflict.
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS versions (
    name VARCHAR NOT NULL, version VARCHAR NOT NULL, created TIMESTAMPTZ NOT NULL,
    hash VARCHAR, size BIGINT, "user" VARCHAR, description VARCHAR, task VARCHAR,
    model_class VARCHAR, library VARCHAR, tags VARCHAR[], metrics JSON, metadata JSON,
    source VARCHAR, problem VARCHAR, model_summary VARCHAR);
CREATE TABLE IF NOT EXISTS metrics (
    name VARCHAR, version VARCHAR, metric VARCHAR, value DOUBLE);
CREATE TABLE IF NOT EXISTS params (
    name VARCHAR, version VARCHAR, "key" VARCHAR, leaf VARCHAR, text VARCHAR, num DOUBLE);
CREATE TABLE IF NOT EXISTS ignored (name VARCHAR, version VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS models (
    name VARCHAR, latest VARCHAR, n_versions BIGINT, updated TIMESTAMPTZ, task VARCHAR,
    library VARCHAR, model_class VARCHAR, model_summary VARCHAR);
CREATE TABLE IF NOT EXISTS alias_history (
    id VARCHAR, name VARCHAR, alias VARCHAR, from_version VARCHAR, to_version VARCHAR,
    "user" VARCHAR, "at" TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS aliases (
    name VARCHAR, alias VARCHAR, version VARCHAR, "user" VARCHAR, "at" TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS records (
    id VARCHAR, kind VARCHAR, name VARCHAR, version VARCHAR, "user" VARCHAR,
    "at" TIMESTAMPTZ, payload JSON);
"""
TABLES = ("state", "versions", "metrics", "params", "ignored", "models", "alias_history",
          "aliases", "records")

# The versions table's columns, as new rows are sent to it (see _insert).
_VERSION_COLUMNS = (
    ("name", "VARCHAR"), ("version", "VARCHAR"), ("created", "TIMESTAMPTZ"), ("hash", "VARCHAR"),
    ("size", "BIGINT"), ("user", "VARCHAR"), ("description", "VARCHAR"), ("task", "VARCHAR"),
    ("model_class", "VARCHAR"), ("library", "VARCHAR"), ("tags", "VARCHAR[]"),
    ("metrics", "VARCHAR"), ("metadata", "VARCHAR"), ("source", "VARCHAR"),
    ("problem", "VARCHAR"), ("model_summary", "VARCHAR"),
)


def _insert(con: duckdb.DuckDBPyConnection, table: str, types: Sequence[str],
            rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` in one statement: each column goes as one list parameter, unnested.

    ``executemany`` costs about a millisecond per row here (6 s for 1,000 versions); this
    ~0.1 ms, as an Arrow table did, without importing pyarrow into every process that
    lists versions."""
    if not rows:
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    select = ", ".join(f"unnest(?::{t}[])" for t in types)
    con.execute(f"INSERT INTO {table} SELECT {select}", columns)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting" in text)


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def _path_lock(path: str) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.RLock())


class Index:
    """A DuckDB file mirroring one board; every use is one short connection."""

    def __init__(self, path: str, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._lock = _path_lock(os.path.abspath(path))

    # -- connections --------------------------------------------------------------------

    def _connect_file(self) -> duckdb.DuckDBPyConnection | None:
        """A connection to the file, or None when it stayed locked for lock_timeout."""
        import duckdb

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    log.warning("index %s stayed locked for %.0f s; answering from the board",
                                self.path, self.lock_timeout)
                    return None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _discard_file(self) -> None:
        for suffix in ("", ".wal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)

    @contextlib.contextmanager
    def session(self, board: Board, marker: str, *, rebuild: bool = False
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to an index that agrees with the board at ``marker``."""
        import duckdb

        with self._lock:
            for attempt in range(2):
                try:
                    con = self._connect_file()
                except duckdb.Error as exc:
                    if attempt:
                        raise
                    log.warning("index %s is unreadable (%s); rebuilding it", self.path, exc)
                    self._discard_file()
                    continue
                if con is None:
                    con = duckdb.connect(":memory:")
                    rebuild = True
                try:
                    try:
                        self._prepare(con)
                        self._sync(con, board, marker, rebuild=rebuild)
                    except duckdb.Error as exc:
                        if attempt or _is_lock_error(exc) or isinstance(
                                exc, duckdb.ProgrammingError):
                            raise
                        log.warning("index %s is damaged (%s); rebuilding it", self.path, exc)
                        con.close()
                        self._discard_file()
                        continue
                    yield con
                    return
                finally:
                    with contextlib.suppress(duckdb.Error):
                        con.close()

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(SCHEMA)
        row = con.execute("SELECT value FROM state WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            con.execute("BEGIN")
            for table in TABLES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(SCHEMA)
            con.execute("INSERT INTO state VALUES ('schema', ?)", [SCHEMA_VERSION])
            con.execute("COMMIT")

    # -- sync ---------------------------------------------------------------------------

    def stored_marker(self, con: duckdb.DuckDBPyConnection) -> str | None:
        row = con.execute("SELECT value FROM state WHERE key = 'marker'").fetchone()
        return row[0] if row else None

    def _sync(self, con: duckdb.DuckDBPyConnection, board: Board, marker: str, *,
              rebuild: bool) -> None:
        if not rebuild and self.stored_marker(con) == marker:
            return
        if rebuild:
            indexed: dict[str, set[str]] = {}
        else:
            indexed = {}
            for name, version in con.execute(
                    "SELECT name, version FROM versions UNION ALL "
                    "SELECT name, version FROM ignored").fetchall():
                indexed.setdefault(name, set()).add(version)
        on_board = {name: board.complete_versions(name, indexed.get(name, set()))
                    for name in board.model_names()}
        gone = [(n, v) for n, vs in indexed.items() for v in vs if v not in on_board.get(n, ())]
        new = [(n, v) for n, vs in on_board.items() for v in sorted(vs)
               if v not in indexed.get(n, ())]
        rows, ignored = [], []
        for name, version in new:
            row, reason = read_entry(board, name, version)
            if row is None:
                ignored.append((name, version, reason))
            else:
                rows.append(row)
        alias_rows, alias_gone = self._new_events(con, board, ALIAS_EVENTS, rebuild)
        record_rows, record_gone = self._new_events(con, board, RECORD_EVENTS, rebuild)

        changed = rebuild or any((gone, rows, ignored, alias_rows, alias_gone, record_rows,
                                  record_gone))
        con.execute("BEGIN")
        if not changed:  # the marker moved but nothing we index did: just remember it
            con.execute("DELETE FROM state WHERE key = 'marker'")
            con.execute("INSERT INTO state VALUES ('marker', ?)", [marker])
            con.execute("COMMIT")
            return
        if rebuild:
            for table in ("versions", "metrics", "params", "ignored", "alias_history",
                          "records"):
                con.execute(f"DELETE FROM {table}")
        if gone:
            con.executemany("DELETE FROM versions WHERE name = ? AND version = ?", gone)
            con.executemany("DELETE FROM metrics WHERE name = ? AND version = ?", gone)
            con.executemany("DELETE FROM params WHERE name = ? AND version = ?", gone)
            con.executemany("DELETE FROM ignored WHERE name = ? AND version = ?", gone)
        if rows:
            self._insert_versions(con, rows)
        _insert(con, "ignored", ["VARCHAR"] * 3, ignored)
        if alias_gone:
            con.executemany("DELETE FROM alias_history WHERE id = ?", [[i] for i in alias_gone])
        _insert(con, "alias_history", ["VARCHAR"] * 6 + ["TIMESTAMPTZ"], alias_rows)
        if record_gone:
            con.executemany("DELETE FROM records WHERE id = ?", [[i] for i in record_gone])
        _insert(con, "records", ["VARCHAR"] * 5 + ["TIMESTAMPTZ", "VARCHAR"], record_rows)
        con.execute("DELETE FROM models")
        con.execute("""
            INSERT INTO models
            SELECT name, version, n, created, task, library, model_class, model_summary FROM (
                SELECT *, count(*) OVER (PARTITION BY name) AS n,
                       row_number() OVER (PARTITION BY name ORDER BY version DESC) AS rn
                FROM versions) WHERE rn = 1""")
        con.execute("DELETE FROM aliases")
        con.execute("""
            INSERT INTO aliases
            SELECT name, alias, to_version, "user", "at" FROM (
                SELECT *, row_number() OVER (PARTITION BY name, alias ORDER BY id DESC) AS rn
                FROM alias_history) WHERE rn = 1 AND to_version IS NOT NULL""")
        con.execute("DELETE FROM state WHERE key = 'marker'")
        con.execute("INSERT INTO state VALUES ('marker', ?)", [marker])
        con.execute("COMMIT")

    def _insert_versions(self, con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]
                         ) -> None:
        _insert(con, "versions", [t for _, t in _VERSION_COLUMNS],
                [[json.dumps(r[c]) if c == "metrics" else r[c] for c, _ in _VERSION_COLUMNS]
                 for r in rows])
        _insert(con, "metrics", ["VARCHAR", "VARCHAR", "VARCHAR", "DOUBLE"],
                [(r["name"], r["version"], k, float(v))
                 for r in rows for k, v in r["metrics"].items()])
        _insert(con, "params", ["VARCHAR"] * 5 + ["DOUBLE"],
                [row for r in rows for row in param_rows(r["name"], r["version"],
                                                          r.get("params") or {})])

    def _new_events(self, con: duckdb.DuckDBPyConnection, board: Board, kind: str,
                    rebuild: bool) -> tuple[list[list[Any]], list[str]]:
        """Rows for event files not yet indexed, and ids indexed but gone from the board."""
        table = "alias_history" if kind == ALIAS_EVENTS else "records"
        known = set() if rebuild else {r[0] for r in con.execute(f"SELECT id FROM {table}")
                                       .fetchall()}
        found: dict[str, str] = {}
        for rel in board.find(SYSTEM_DIR, kind):
            parts = rel.split("/")
            stem = parts[-1][:-5] if parts[-1].endswith(".json") else ""
            if is_event_id(stem) and len(parts) == (2 if kind == ALIAS_EVENTS else 3):
                found[stem] = rel
        rows = []
        for event, rel in sorted(found.items()):
            if event in known:
                continue
            row, problem = read_event(board, kind, rel)
            if row is None:
                log.warning("skipping %s/%s/%s: %s", SYSTEM_DIR, kind, rel, problem)
            else:
                rows.append(row)
        return rows, sorted(known - set(found))

    # -- queries ------------------------------------------------------------------------

    @staticmethod
    def versions(con: duckdb.DuckDBPyConnection, where: str = "TRUE",
                 params: list[Any] | None = None) -> list[VersionInfo]:
        """Versions by name, then in id order: time order, and the order pins uses
        (it sorts ids as text), so both agree on the latest even within one second."""
        rows = con.execute(f"""
            SELECT v.name, v.version, epoch_us(v.created), v.hash, v.size, v."user",
                   v.description, v.task, v.model_class, v.library, v.metrics::VARCHAR,
                   v.tags, a.aliases, v.source, v.model_summary
            FROM versions v
            LEFT JOIN (SELECT name, version, list(alias ORDER BY alias) AS aliases
                       FROM aliases GROUP BY name, version) a
              ON a.name = v.name AND a.version = v.version
            WHERE {where}
            ORDER BY v.name, v.version""", params or []).fetchall()
        return [VersionInfo(
            name=r[0], version=r[1], created=_time(r[2]) or _EPOCH, hash=r[3] or "",
            size=int(r[4] or 0), user=r[5] or "", description=r[6] or "", task=r[7] or "unknown",
            model_class=r[8] or "", library=r[9] or "", metrics=json.loads(r[10] or "{}"),
            tags=list(r[11] or []), aliases=list(r[12] or []), source=r[13] or "fixative",
            model_summary=r[14] or r[8] or "",
        ) for r in rows]

    @staticmethod
    def models(con: duckdb.DuckDBPyConnection) -> list[ModelInfo]:
        aliases: dict[str, dict[str, str]] = {}
        for name, alias, version in con.execute(
                "SELECT name, alias, version FROM aliases ORDER BY name, alias").fetchall():
            aliases.setdefault(name, {})[alias] = version
        rows = con.execute("""
            SELECT name, latest, n_versions, epoch_us(updated), task, library, model_class,
                   model_summary
            FROM models ORDER BY name""").fetchall()
        return [ModelInfo(name=r[0], latest=r[1], n_versions=int(r[2]),
                          updated=_time(r[3]) or _EPOCH, aliases=aliases.get(r[0], {}),
                          task=r[4] or "unknown", library=r[5] or "", model_class=r[6] or "",
                          model_summary=r[7] or r[6] or "")
                for r in rows]

    @staticmethod
    def version_row(con: duckdb.DuckDBPyConnection, name: str, version: str
                    ) -> dict[str, Any] | None:
        row = con.execute("""SELECT source, problem, hash, size FROM versions
                             WHERE name = ? AND version = ?""", [name, version]).fetchone()
        if row is None:
            return None
        return {"source": row[0], "problem": row[1] or "", "hash": row[2], "size": row[3]}

    @staticmethod
    def aliases(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
        return dict(con.execute("SELECT alias, version FROM aliases WHERE name = ? "
                                "ORDER BY alias", [name]).fetchall())

    @staticmethod
    def alias_history(con: duckdb.DuckDBPyConnection, name: str) -> list[AliasEvent]:
        # "from" is where the alias was after the event before (in the order that also
        # decides where it is now), not what the writer believed: two writers moving one
        # alias at once both saw the same old version, yet one of them moved it second.
        rows = con.execute("""
            SELECT name, alias,
                   lag(to_version) OVER (PARTITION BY alias ORDER BY id) AS from_version,
                   to_version, "user", epoch_us("at"), id
            FROM alias_history WHERE name = ? ORDER BY id""", [name]).fetchall()
        return [AliasEvent(name=r[0], alias=r[1], from_version=r[2], to_version=r[3],
                           user=r[4] or "", at=_time(r[5]) or _EPOCH, id=r[6]) for r in rows]

    @staticmethod
    def records(con: duckdb.DuckDBPyConnection, kind: str, name: str | None,
                version: str | None) -> list[Record]:
        where, params = ["kind = ?"], [kind]
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if version is not None:
            where.append("version = ?")
            params.append(version)
        rows = con.execute(f"""
            SELECT kind, name, version, epoch_us("at"), "user", payload::VARCHAR, id
            FROM records WHERE {' AND '.join(where)} ORDER BY id""", params).fetchall()
        return [Record(kind=r[0], name=r[1], version=r[2], at=_time(r[3]) or _EPOCH,
                       user=r[4] or "", payload=json.loads(r[5] or "{}"), id=r[6])
                for r in rows]

    @staticmethod
    def ignored(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
        """version -> why its folder is not indexed, for one model."""
        return dict(con.execute("SELECT version, reason FROM ignored WHERE name = ?",
                                [name]).fetchall())

    @staticmethod
    def problems(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
        return con.execute("SELECT name, version, problem FROM versions WHERE problem <> '' "
                           "ORDER BY name, version").fetchall()


def read_entry(board: Board, name: str, version: str) -> tuple[dict[str, Any] | None, str]:
    """The index row for one version folder, or (None, why it is not a model version).

    A reason ending in :data:`NOT_A_MODEL` is a pin of another kind (a data frame pinned
    with pins); any other reason is a damaged version.
    """
    problem = ""
    try:
        meta_doc = json.loads(board.read_bytes(name, version, META_FILE))
        if isinstance(meta_doc, dict) and isinstance(meta_doc.get("fixative"), dict):
            return layout.fixative_entry(name, version, meta_doc), ""
        problem = f"{META_FILE} is not Fixative metadata"
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        problem = f"{META_FILE} is a folder, not a file"
    except PermissionError:
        problem = f"{META_FILE} cannot be opened (permission denied)"
    except (ValueError, UnicodeDecodeError):
        problem = f"{META_FILE} is not valid JSON"
    except (TypeError, AttributeError):
        problem = f"{META_FILE} holds fields of the wrong type"
    try:
        doc = layout.parse_data_txt(board.read_bytes(name, version, PINS_META,
                                                     limit=layout.MAX_DATA_TXT))
    except FileNotFoundError:
        return None, f"no {PINS_META}"
    except IsADirectoryError:
        return None, f"{PINS_META} is a folder, not a file"
    except PermissionError:
        return None, f"{PINS_META} cannot be opened (permission denied)"
    except ValueError as exc:
        return None, str(exc)
    if not layout.is_model_pin(doc):
        return None, f"a pins '{doc.get('type')}' pin, {NOT_A_MODEL}"
    if not problem and layout.fixative_block(doc) is not None:
        problem = f"{META_FILE} is missing"
    try:
        return layout.pins_entry(name, version, doc, problem), ""
    except (TypeError, ValueError, AttributeError):
        return None, f"{PINS_META} holds fields of the wrong type"


def read_event(board: Board, kind: str, rel: str) -> tuple[list[Any] | None, str]:
    """The index row of one event file (``rel`` below ``.fixative/<kind>/``), or
    (None, what is wrong with it)."""
    try:
        data = board.read_json(SYSTEM_DIR, kind, *rel.split("/"))
    except FileNotFoundError:
        return None, "it is gone"
    except IsADirectoryError:
        return None, "it is a folder, not a file"
    except PermissionError:
        return None, "it cannot be opened (permission denied)"
    except (ValueError, UnicodeDecodeError):
        return None, "it is not valid JSON"
    try:
        return _event_row(kind, rel.split("/")[-1][:-5], data, rel.split("/")[:-1]), ""
    except ValueError as exc:
        return None, str(exc)


def entry_info(row: dict[str, Any]) -> VersionInfo:
    """The listing of a version from its index row (:func:`read_entry`), as
    :meth:`Index.versions` gives it for a version no alias points at."""
    return VersionInfo(
        name=row["name"], version=row["version"], created=row["created"], hash=row["hash"],
        size=int(row["size"]), user=row["user"], description=row["description"],
        task=row["task"], model_class=row["model_class"], library=row["library"],
        metrics=dict(row["metrics"]), tags=list(row["tags"]), aliases=[], source=row["source"],
        model_summary=row["model_summary"])


def _text(data: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not valid_entry(value):
        raise ValueError(f"its '{key}' is {value!r}, not a name")
    return value


def _event_row(kind: str, event: str, data: Any, folder: list[str]) -> list[Any]:
    """An event file's index row; ValueError saying what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
    at = parse_iso(data.get("at"))
    if at is None:
        raise ValueError(f"its 'at' is {data.get('at')!r}, not a time")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise ValueError(f"its 'user' is {user!r}, not text")
    name = _text(data, "name")
    if name != folder[-1]:
        raise ValueError(f"it names model '{name}' but is in the folder of '{folder[-1]}'")
    if kind == "aliases":
        return [event, name, _text(data, "alias"), _text(data, "from_version", optional=True),
                _text(data, "to_version", optional=True), user or "", at]
    if _text(data, "kind") != folder[0]:
        raise ValueError(f"its 'kind' is {data['kind']!r} but it is in the folder of "
                         f"'{folder[0]}' records")
    payload = data.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise ValueError(f"its 'payload' is a JSON {type(payload).__name__}, not an object")
    return [event, data["kind"], name, _text(data, "version", optional=True), user or "", at,
            json.dumps(payload or {})]
