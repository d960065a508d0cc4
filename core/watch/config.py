"""What the watcher does for one model: when to check it, and whom to tell.

Saved per model as records of kind ``watch_settings`` (the latest wins)::

    {"schedule": "5 * * * *", "enabled": true, "retries": 4, "backoff": 2.0,
     "channels": [{"name": "ops", "kind": "webhook", "env": "OPS_WEBHOOK_URL"}]}

``schedule`` is a cron expression (five fields, UTC; croniter's sixth field for seconds
is accepted). Without one, the model's monitoring window sets it: five minutes past
every hour for hourly or shorter windows, 00:15 every day for daily ones, Monday 00:30
for weekly ones, the 1st at 01:00 for monthly ones.

A channel names an *environment variable* that holds its URL, never the URL: webhook
and apprise URLs carry tokens (Slack, Teams, SMTP passwords), and the board is read by
everyone who can list models. ``kind`` is ``webhook`` (an http(s) URL that gets the JSON
payload by POST) or ``apprise`` (any apprise URL: ``mailtos://``, ``slack://``,
``msteams://``...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.errors import InvalidArgument
from core.monitoring import thresholds
from core.monitoring.windows import parse_window
from core.store.protocols import StoreLike

RECORD_KIND = "watch_settings"
KINDS = ("webhook", "apprise")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_CHANNELS = 20
MAX_RETRIES = 10
MAX_BACKOFF = 300.0
DEFAULT_SCHEDULES = {"hour": "5 * * * *", "day": "15 0 * * *", "week": "30 0 * * 1",
                     "month": "0 1 1 * *"}


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    env: str

    def __post_init__(self) -> None:
        if not CHANNEL_NAME.match(str(self.name or "")):
            raise InvalidArgument(f"A channel name is 1 to 64 letters, digits, '_', '.' or '-'; "
                                  f"got {str(self.name)[:70]!r}.")
        if self.kind not in KINDS:
            raise InvalidArgument(f"A channel is a webhook or apprise, got {self.kind!r}.")
        if not ENV_NAME.match(str(self.env or "")):
            raise InvalidArgument(
                f"Channel {self.name}: {str(self.env)[:70]!r} is not an environment variable "
                "name (capitals, digits and '_', e.g. OPS_WEBHOOK_URL). Put the URL in that "
                "variable, never on the board: it may hold a token.")


@dataclass
class WatchConfig:
    schedule: str | None = None
    enabled: bool = True
    retries: int = 4
    backoff: float = 2.0
    channels: list[Channel] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.schedule is not None:
            self.schedule = check_schedule(self.schedule)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) \
                or not 0 <= self.retries <= MAX_RETRIES:
            raise InvalidArgument(f"retries must be a whole number from 0 to {MAX_RETRIES}.")
        try:
            backoff = float(self.backoff)
        except (TypeError, ValueError):
            raise InvalidArgument("backoff must be a number of seconds.") from None
        if not 0 <= backoff <= MAX_BACKOFF:
            raise InvalidArgument(f"backoff must be from 0 to {MAX_BACKOFF:g} seconds.")
        self.backoff = backoff
        if len(self.channels) > MAX_CHANNELS:
            raise InvalidArgument(f"At most {MAX_CHANNELS} channels per model.")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise InvalidArgument("Two channels have the same name; give each its own.")

    def to_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "enabled": self.enabled, "retries": self.retries,
                "backoff": self.backoff, "channels": [asdict(c) for c in self.channels]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatchConfig:
        channels = [Channel(name=str(c.get("name")), kind=str(c.get("kind")),
                            env=str(c.get("env"))) for c in data.get("channels") or []
                    if isinstance(c, Mapping)]
        retries = data.get("retries", 4)
        return cls(schedule=data.get("schedule") or None, enabled=bool(data.get("enabled", True)),
                   retries=int(retries) if isinstance(retries, (int, float)) else -1,
                   backoff=data.get("backoff", 2.0), channels=channels)


def check_schedule(text: str) -> str:
    """``text`` as a valid cron expression, or a clear error."""
    from croniter import croniter

    expr = " ".join(str(text or "").split())
    if not expr or len(expr) > 200 or not croniter.is_valid(expr):
        raise InvalidArgument(f"{str(text)[:80]!r} is not a cron schedule: five fields, minute "
                              "hour day month weekday, e.g. '*/15 * * * *' (every 15 minutes) "
                              "or '5 * * * *' (five past every hour), in UTC.")
    return expr


def schedule_for(store: StoreLike, name: str, config: WatchConfig) -> str:
    """The model's schedule: its own, else one that fits its monitoring window."""
    if config.schedule:
        return config.schedule
    w = parse_window(thresholds.load(store, name).window)
    if w.unit in DEFAULT_SCHEDULES:
        return DEFAULT_SCHEDULES[w.unit]
    return DEFAULT_SCHEDULES["hour"]


def ticks_between(schedule: str, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The schedule's times in ``(after, until]``, the latest ``limit`` of them."""
    from croniter import croniter

    # a microsecond on: a time exactly on the schedule is one of its ticks
    it = croniter(schedule, until + timedelta(microseconds=1))
    out: list[datetime] = []
    # walk back from ``until``: a long outage costs ``limit`` steps, not all of them
    current = it.get_prev(datetime)
    while current > after and len(out) < limit:
        out.append(current)
        current = it.get_prev(datetime)
    return sorted(out)


def load(store: StoreLike, name: str) -> WatchConfig:
    records = store.records(RECORD_KIND, name)
    return WatchConfig.from_dict(records[-1].payload) if records else WatchConfig()


def save(store: StoreLike, name: str, config: WatchConfig, user: str | None = None
         ) -> WatchConfig:
    store.add_record(RECORD_KIND, name, config.to_dict(), user=user)
    return config
