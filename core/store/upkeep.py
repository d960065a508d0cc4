"""VersionStore's deleting and maintenance: delete and prune versions, rebuild the index,
re-hash every file (a mixin: VersionStore provides the board, the index and the rest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.errors import Conflict, InvalidArgument
from core.store import verify as checks
from core.store.board import Board
from core.store.index import Index
from core.store.names import validate_name, validate_version
from core.store.prune import prune_plan
from core.store.search import number
from core.store.snapshot import Snapshots
from core.store.versions import BoardReport, VersionInfo


class Upkeep:
    """Deleting and maintenance methods of :class:`core.store.versionstore.VersionStore`."""

    _board: Board
    _index: Index
    _snapshots: Snapshots
    _lock: threading.Lock
    _cache: dict[Any, Any]
    _cache_marker: str | None
    _kept: dict[Any, tuple[Any, Any]]
    _documents: Callable[[str, str], tuple[dict[str, Any], dict[str, Any] | None]]
    _version_info: Callable[[str, str], VersionInfo]
    _alias_event: Callable[..., Any]
    aliases: Callable[[str], dict[str, str]]
    versions: Callable[[str], list[VersionInfo]]
    search: Callable[..., list[VersionInfo]]
    compiled_problems: Callable[..., list[str]]

    # -- deleting -----------------------------------------------------------------------

    def delete(self, name: str, version: str, force: bool = False,
               user: str | None = None) -> None:
        """Delete one version; refused while an alias points at it unless ``force``.

        With ``force`` the aliases pointing at it are removed (recorded in the history).
        """
        name = validate_name(name)
        version = self._version_info(name, validate_version(version)).version
        held = sorted(a for a, v in self.aliases(name).items() if v == version)
        if held and not force:
            first = held[0]
            raise Conflict(
                f"Version {version} of '{name}' is what alias(es) {', '.join(held)} point at, "
                f"so it is not deleted. Move the alias first ('python -m core alias {name} "
                f"OTHER_VERSION {first}'), or delete with --force (force=True) to remove the "
                "alias too.")
        for alias in held:
            self._alias_event(name, alias, None, user)
        self._board.remove_version(name, version)
        self._board.bump()

    def prune(self, name: str, keep: int | None = None, days: float | None = None) -> list[str]:
        """Delete old versions; returns the deleted ids, oldest first.

        Kept: the newest ``keep`` versions, versions younger than ``days`` days, the
        latest version and every version an alias points at.
        """
        if keep is None and days is None:
            raise InvalidArgument("prune needs keep=N (keep the newest N versions) and/or days=D "
                                  "(keep versions younger than D days).")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise InvalidArgument("keep must be a whole number of at least 1 (the latest version "
                                  f"is always kept), got {keep!r}.")
        if days is not None:
            d = number(days, "days")
            if d is None or d < 0:
                raise InvalidArgument(f"days must be 0 or more (0 keeps none for its age), got "
                                      f"{days!r}.")
        doomed = [v.version for v in self.prune_plan(name, keep=keep, days=days)]
        for version in doomed:
            self._board.remove_version(name, version)
        if doomed:
            self._board.bump()
        return doomed

    def prune_plan(self, name: str, keep: int | None = None,
                   days: float | None = None) -> list[VersionInfo]:
        """The versions :meth:`prune` with these rules would delete, oldest first."""
        versions = self.versions(validate_name(name))
        return prune_plan(versions, keep=keep, days=days, aliased=self.aliases(name).values())

    # -- maintenance --------------------------------------------------------------------

    def reindex(self) -> dict[str, int]:
        """Rebuild the index from the board; also removes abandoned staging folders.

        Returns the rows per table, and how many problems :meth:`reindex_report` lists.
        """
        return self.reindex_report().counts

    def reindex_report(self) -> BoardReport:
        """:meth:`reindex`, with a line for every damaged entry the index had to leave out
        (the rest of the board is indexed all the same)."""
        removed = self._board.clean_staging()
        marker = self._board.marker()
        self._snapshots.clear()
        with self._index.session(self._board, marker, rebuild=True) as con:
            counts = {table: int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                      for table in ("models", "versions", "aliases", "alias_history", "records")}
        with self._lock:
            self._cache, self._cache_marker, self._kept = {}, None, {}
        counts["removed_staging"] = removed
        found = checks.audit_board(self._board, self._documents, rehash=False)
        counts["problems"] = len(found.problems)
        return BoardReport(problems=found.problems, counts=counts)

    def verify(self) -> list[str]:
        """Re-hash every file of every version; returns the problems found (empty if none)."""
        return self.verify_report().problems

    def verify_report(self) -> BoardReport:
        """:meth:`verify`, with notes on what could not be checked (versions whose
        data.txt has no recorded hash: pinned by pins or vetiver, or written before
        Fixative recorded one)."""
        found = checks.audit_board(self._board, self._documents, rehash=True)
        found.problems.extend(self.compiled_problems(found.versions))
        return checks.board_report(found, {(v.name, v.version) for v in self.search()})
