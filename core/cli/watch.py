"""``python -m core watch``: scheduled checks of every aliased model, and notifications.

    python -m core watch [--once] [--now TIME] [--model NAME ...]
    python -m core watch-set NAME [--schedule CRON] [--webhook CHANNEL=ENV_VAR]
        [--apprise CHANNEL=ENV_VAR] [--remove CHANNEL] [--retries N] [--backoff SECONDS]
        [--enable | --disable]
    python -m core watch-test NAME
    python -m core watch-history NAME [--format table|json]

``watch`` runs until stopped (SIGTERM or Ctrl-C); ``--once`` makes one pass and exits.
Channels name an environment variable holding the URL, never the URL itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from core.cli.store import open_store, store_argument
from core.errors import InvalidArgument
from core.times import parse_time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="check each aliased model on its schedule and notify on "
                                     "status changes")
    p.add_argument("--once", action="store_true", help="one pass over the due checks, then exit")
    p.add_argument("--now", default=None,
                   help="with --once: evaluate as of this time (UTC), e.g. 2026-03-02T10:00Z")
    p.add_argument("--model", action="append", default=None, metavar="NAME",
                   help="only this model (repeatable)")
    store_argument(p)
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("watch-set", help="a model's check schedule and notification channels")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--schedule", default=None, metavar="CRON",
                   help="cron expression in UTC, e.g. '*/15 * * * *'; 'auto' follows the "
                        "model's monitoring window")
    p.add_argument("--webhook", action="append", default=[], metavar="CHANNEL=ENV_VAR",
                   help="a webhook channel whose URL is in environment variable ENV_VAR")
    p.add_argument("--apprise", action="append", default=[], metavar="CHANNEL=ENV_VAR",
                   help="an apprise channel (e-mail, Slack, Teams...) whose URL is in ENV_VAR")
    p.add_argument("--remove", action="append", default=[], metavar="CHANNEL")
    p.add_argument("--retries", type=int, default=None)
    p.add_argument("--backoff", type=float, default=None, metavar="SECONDS")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", action="store_true")
    state.add_argument("--disable", action="store_true")
    store_argument(p)
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("watch-test", help="send a test notification to each of a model's "
                                          "channels")
    p.add_argument("name", metavar="NAME")
    store_argument(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("watch-history", help="a model's scheduled evaluations and undelivered "
                                             "notifications")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", default="table", choices=("table", "json"))
    p.add_argument("--limit", type=int, default=20)
    store_argument(p)
    p.set_defaults(func=cmd_history)


def cmd_watch(args: argparse.Namespace) -> int:
    from core.watch import watcher

    store = open_store(args)
    if args.now is not None and not args.once:
        raise InvalidArgument("--now goes with --once (a running watcher follows the clock).")
    if args.once:
        t = parse_time(args.now) if args.now else None
        now = t.to_pydatetime() if t is not None else datetime.now(UTC)
        for r in watcher.run_once(store, now=now, names=args.model):
            _print_evaluation(r)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watcher.run(store, stop, log=lambda line: print(line, flush=True))
    return 0


def _print_evaluation(r: dict[str, Any]) -> None:
    states = "; ".join(f"{v['version']} ({', '.join(v['aliases'])}): {v['status']}"
                       for v in r["versions"])
    print(f"{r['model']} at {r['tick']}: {states or r.get('error') or 'no aliased version'}")
    for n in r["notifications"]:
        if n.get("channel"):
            done = "delivered" if n["delivered"] else f"not delivered ({n['error']})"
            print(f"  {n['previous'] or 'new'} -> {n['status']}: {n['channel']} {done} after "
                  f"{n['attempts']} attempt{'s' if n['attempts'] != 1 else ''}")
        else:
            print(f"  {n['previous'] or 'new'} -> {n['status']}: {n['error']}")


def _channels(values: list[str], kind: str) -> list[Any]:
    from core.watch.config import Channel

    out = []
    for text in values:
        name, sep, env = text.partition("=")
        if not sep:
            raise InvalidArgument(f"--{kind} takes CHANNEL=ENV_VAR, e.g. ops=OPS_WEBHOOK_URL "
                                  f"(the URL goes in the variable); got {text[:60]!r}.")
        out.append(Channel(name=name.strip(), kind=kind, env=env.strip()))
    return out


def cmd_set(args: argparse.Namespace) -> int:
    from core.watch import config

    store = open_store(args)
    name, _ = store.resolve(args.name)
    cfg = config.load(store, name)
    added = _channels(args.webhook, "webhook") + _channels(args.apprise, "apprise")
    unknown = [c for c in args.remove if c not in {ch.name for ch in cfg.channels}]
    if unknown:
        raise InvalidArgument(f"{name} has no channel {unknown[0]!r}; its channels: "
                              f"{', '.join(c.name for c in cfg.channels) or 'none'}.")
    names = {c.name for c in added} | set(args.remove)
    channels = [c for c in cfg.channels if c.name not in names] + added
    schedule = cfg.schedule
    if args.schedule is not None:
        schedule = None if args.schedule.strip().lower() == "auto" else args.schedule
    new = config.WatchConfig(
        schedule=schedule, channels=channels,
        enabled=False if args.disable else True if args.enable else cfg.enabled,
        retries=cfg.retries if args.retries is None else args.retries,
        backoff=cfg.backoff if args.backoff is None else args.backoff)
    config.save(store, name, new)
    print(f"{name}: checked {config.schedule_for(store, name, new)} (UTC)"
          f"{'' if new.enabled else ', disabled'}; channels: "
          + (", ".join(f"{c.name} ({c.kind}, URL in ${c.env})" for c in new.channels)
             or "none"))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from core.watch import config, notify

    store = open_store(args)
    name, version = store.resolve(args.name)
    cfg = config.load(store, name)
    if not cfg.channels:
        raise InvalidArgument(f"{name} has no channel; add one: python -m core watch-set {name} "
                              "--webhook ops=OPS_WEBHOOK_URL")
    data = notify.payload({"model": name, "version": version, "status": "test",
                           "message": f"Test notification for {name}: this channel works.",
                           "tick": datetime.now(UTC).isoformat()},
                          previous=None, window="", event="test")
    failed = 0
    for channel in cfg.channels:
        r = notify.deliver(store, channel, data, retries=0, backoff=0)
        failed += not r["delivered"]
        print(f"{channel.name} ({channel.kind}, ${channel.env}): "
              + ("delivered" if r["delivered"] else f"failed: {r['error']}"))
    return 1 if failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    from core.watch import notify, watcher

    store = open_store(args)
    name, _ = store.resolve(args.name)
    if args.limit < 1:
        raise InvalidArgument("--limit must be at least 1.")
    records = watcher.evaluations(store, name, limit=args.limit)
    dead = notify.dead_letters(store, name)
    if args.format == "json":
        print(json.dumps({"evaluations": records, "dead_letters": dead}, indent=2, default=str))
        return 0
    if not records:
        print(f"No scheduled evaluations of {name} yet. Give it an alias and run "
              "'python -m core watch'.")
    for r in records:
        print(f"{r.get('tick')} by {r.get('who')}")
        for v in r.get("versions", []):
            print(f"  {v['version']}: {v['status']} {v.get('message', '')}"[:200])
    if dead:
        print(f"{len(dead)} undelivered notification{'s' if len(dead) != 1 else ''}; the last: "
              f"{dead[-1]['channel']} at {dead[-1]['at']}: {dead[-1]['error']}", file=sys.stdout)
    return 0
