"""Version ids, event ids and the small records the store hands out.

Version ids follow pins: ``YYYYMMDDTHHMMSSZ-xxxxx`` in UTC. pins fills the five
characters after the dash with the start of the content hash; Fixative fills them
with the microsecond within the second, in hex (``00000``-``f423f``). pins treats
them as opaque and sorts ids as strings, so with this choice ids sort by time to
the microsecond, two writes in the same second (even of identical bytes) get
distinct ids, and pins, vetiver and Fixative agree on which version is the latest.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.times import iso, parse_iso

VERSION_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_VERSION = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{5})")
_EVENT = re.compile(r"(\d{8}T\d{12}Z)-[0-9a-f]{8}")


class _Clock:
    """UTC time that never repeats or goes back within one process."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            if self._last is not None and now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now


clock = _Clock()


def version_id(at: datetime) -> str:
    """The version id of a version written at ``at`` (UTC)."""
    at = at.astimezone(UTC)
    return f"{at.strftime(VERSION_TIME_FORMAT)}-{at.microsecond:05x}"


def version_time(version: str) -> datetime | None:
    """When a Fixative version id was issued, to the microsecond; None for other ids."""
    m = _VERSION.fullmatch(version)
    if not m:
        return None
    micro = int(m.group(2), 16)
    if micro >= 1_000_000:
        return None
    return datetime.strptime(m.group(1), VERSION_TIME_FORMAT).replace(
        tzinfo=UTC, microsecond=micro)


def pins_created(text: Any) -> datetime | None:
    """The ``created`` field of a pins ``data.txt`` (second resolution, read as UTC)."""
    try:
        return datetime.strptime(str(text), VERSION_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def event_id(at: datetime) -> str:
    """A file name for an append-only event: sorts by time, unique across writers."""
    at = at.astimezone(UTC)
    return f"{at.strftime('%Y%m%dT%H%M%S')}{at.microsecond:06d}Z-{secrets.token_hex(4)}"


def is_event_id(text: str) -> bool:
    return bool(_EVENT.fullmatch(text))


def event_time(event: str) -> datetime:
    return datetime.strptime(event[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def _to_dict(obj: Any) -> dict[str, Any]:
    # What dataclasses.asdict gives (containers copied), at a tenth of its cost: a
    # listing of 1,000 versions spent 0.2 s in asdict.
    return {k: (iso(v) if isinstance(v, datetime) else _copied(v))
            for k, v in vars(obj).items() if k in obj.__dataclass_fields__}


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


@dataclass
class VersionInfo:
    """One stored version of a model, as listed by the index (no model loaded)."""

    name: str
    version: str
    created: datetime
    hash: str
    size: int
    user: str = ""
    description: str = ""
    task: str = "unknown"
    model_class: str = ""
    library: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    # "fixative" for versions written here, "pins" for versions pinned by pins/vetiver.
    source: str = "fixative"
    # the class with its parts, e.g. "Pipeline(StandardScaler → Ridge)"
    model_summary: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass
class ModelInfo:
    """A model name on the board with its latest version and aliases (alias -> version)."""

    name: str
    latest: str
    n_versions: int
    updated: datetime
    aliases: dict[str, str] = field(default_factory=dict)
    task: str = "unknown"
    library: str = ""
    model_class: str = ""
    # the latest version's class with its parts (VersionInfo.model_summary)
    model_summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass
class AliasEvent:
    """One move of an alias: ``from_version`` None when set, ``to_version`` None when removed."""

    name: str
    alias: str
    from_version: str | None
    to_version: str | None
    user: str
    at: datetime
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasEvent:
        return cls(name=data["name"], alias=data["alias"],
                   from_version=data.get("from_version"), to_version=data.get("to_version"),
                   user=data.get("user") or "", at=parse_iso(data["at"]) or datetime.now(UTC),
                   id=data.get("id", ""))


@dataclass
class Record:
    """An append-only record (card text, monitoring settings, endpoint...) with its history."""

    kind: str
    name: str
    version: str | None
    at: datetime
    user: str
    payload: dict[str, Any]
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        return cls(kind=data["kind"], name=data["name"], version=data.get("version"),
                   at=parse_iso(data["at"]) or datetime.now(UTC), user=data.get("user") or "",
                   payload=dict(data.get("payload") or {}), id=data.get("id", ""))


@dataclass
class BoardReport:
    """What ``reindex`` or ``verify`` found on a board.

    ``problems``: one line each, saying what is wrong, where, and how to fix it;
    ``notes``: what could not be checked, which is not wrong; ``counts``: what was seen.
    """

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
