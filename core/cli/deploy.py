"""Commands to run models: ``serve``, ``endpoints`` (start/list/stop/logs) and ``docker``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli.store import open_store, store_argument, trust_argument
from core.errors import InvalidArgument
from core.store.names import parse_ref

REF_HELP = "model reference: NAME (latest), NAME@VERSION or NAME:ALIAS"


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0: every interface)")
    parser.add_argument("--workers", default="1",
                        help="server processes (default 1); each loads the same version")
    parser.add_argument("--no-log", action="store_true",
                        help="do not write the prediction log (monitoring will see nothing)")
    parser.add_argument("--engine", default="auto", choices=("auto", "sklearn", "onnx"),
                        help="what computes predictions: the compiled ONNX graph when it was "
                             "verified (auto, the default), always scikit-learn, or always the "
                             "graph")
    parser.add_argument("--no-batching", action="store_true",
                        help="predict every request on its own instead of micro-batching")
    parser.add_argument("--max-body-mb", default=None,
                        help="largest request body accepted, in MB (default 20)")
    trust_argument(parser, "a name in the model file to allow although it is not on the "
                           "safe list (only for files you trust)")


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """What one request and the server may cost; unset flags fall back to the environment
    variable, then the default (see core.serving.limits)."""
    from core.serving import limits as lim

    group = parser.add_argument_group("limits", "unset: the environment variable, then the "
                                                "default")
    for flag, env, default, what in (
            ("--max-rows", lim.MAX_ROWS_ENV, lim.MAX_ROWS, "rows per request (413 beyond)"),
            ("--max-columns", lim.MAX_COLUMNS_ENV, lim.MAX_COLUMNS,
             "columns per request, never below the model's (413 beyond)"),
            ("--max-json-depth", lim.MAX_JSON_DEPTH_ENV, lim.MAX_JSON_DEPTH,
             "nesting levels of a JSON body (413 beyond)"),
            ("--max-concurrent-bodies", lim.MAX_PARSING_ENV, lim.MAX_PARSING,
             "bodies over 64 KiB read and parsed at once (429 beyond)"),
            ("--body-timeout", lim.BODY_TIMEOUT_ENV, lim.BODY_TIMEOUT,
             "seconds from the start of a request until its whole body is in (408 after)"),
            ("--header-timeout", lim.HEADER_TIMEOUT_ENV, lim.HEADER_TIMEOUT,
             "seconds a client has to send a request's line and headers (closed after)"),
            ("--keep-alive-timeout", lim.KEEP_ALIVE_ENV, lim.KEEP_ALIVE_TIMEOUT,
             "seconds an idle keep-alive connection stays open"),
            ("--max-connections", lim.MAX_CONNECTIONS_ENV, lim.MAX_CONNECTIONS,
             "open connections per worker (503 beyond)")):
        dest = "max_parsing" if flag == "--max-concurrent-bodies" else flag[2:].replace("-", "_")
        group.add_argument(flag, default=None, metavar="N", dest=dest,
                           help=f"{what}; default {default:g}, or ${env}")
    parser.add_argument("--public-url", default=None,
                        help="the URL clients reach the server at, used in the docs page's "
                             f"examples (or ${lim.PUBLIC_URL_ENV}; default: the address the "
                             "reader's browser shows)")
    parser.add_argument("--allow-short-tokens", action="store_true", default=None,
                        help="accept bearer tokens shorter than 16 characters (or "
                             f"${lim.ALLOW_SHORT_TOKENS_ENV}=1)")


def _add_challenger_options(parser: argparse.ArgumentParser) -> None:
    pair = parser.add_mutually_exclusive_group()
    pair.add_argument("--shadow", default=None, metavar="REF2",
                      help="also score every request with REF2 in the background (the caller "
                           "always gets REF's answer)")
    pair.add_argument("--canary", default=None, metavar="REF2:SHARE",
                      help="answer a share of requests with REF2, e.g. churn@v2:10%% (sticky "
                           "by the X-Fixative-Key header)")


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve a model version as a REST endpoint",
                           description="Serve one model version with uvicorn until stopped "
                                       "(Ctrl+C or SIGTERM, which flushes the prediction log).")
    serve.add_argument("ref", help=REF_HELP)
    serve.add_argument("--port", required=True, help="port to listen on, e.g. 8080")
    store_argument(serve)
    _add_server_options(serve)
    serve.add_argument("--access-log", action="store_true", help="log every request to stderr")
    _add_challenger_options(serve)
    _add_limit_options(serve)
    serve.set_defaults(func=_serve)

    endpoints = sub.add_parser("endpoints", help="start, list and stop local endpoints",
                               description="Endpoints are background server processes on "
                                           "this machine, recorded with the store.")
    actions = endpoints.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    start = actions.add_parser("start", help="start an endpoint in the background")
    start.add_argument("ref", help=REF_HELP)
    start.add_argument("--port", default=None,
                       help="port to listen on (default: 8080 or the next free one)")
    store_argument(start)
    _add_server_options(start)
    _add_challenger_options(start)
    start.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to wait for the server to answer (default 60)")
    start.set_defaults(func=_endpoints_start)

    listing = actions.add_parser("list", help="endpoints with health and request counts")
    store_argument(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--all", action="store_true",
                         help="also every replica reporting to the board (other machines, "
                              "containers, pods) with its health and traffic")
    listing.set_defaults(func=_endpoints_list)

    prune = actions.add_parser("prune", help="remove heartbeats of replicas long gone")
    prune.add_argument("--older-than", default="1d",
                       help="remove replicas not seen for this long (default 1d; e.g. 2h, "
                            "30min; never less than the stale age)")
    store_argument(prune)
    prune.set_defaults(func=_endpoints_prune)

    stop = actions.add_parser("stop", help="stop endpoints (SIGTERM, then SIGKILL)")
    stop.add_argument("keys", nargs="*", metavar="ID_OR_PORT")
    stop.add_argument("--all", action="store_true", help="stop every endpoint of the store")
    stop.add_argument("--grace", type=float, default=10.0,
                      help="seconds to let a server finish before it is killed (default 10)")
    store_argument(stop)
    stop.set_defaults(func=_endpoints_stop)

    change = actions.add_parser(
        "challenger", help="change or stop the challenger of a running endpoint",
        description="Restart a running endpoint on its port with the same options and a new "
                    "challenger (or none). The challenger is checked first; when it is "
                    "refused, the endpoint keeps running unchanged.")
    change.add_argument("key", metavar="ID_OR_PORT")
    change.add_argument("--shadow", default=None, metavar="REF2",
                        help="score every request with REF2 in the background")
    change.add_argument("--canary", default=None, metavar="REF2:SHARE",
                        help="answer a share of requests with REF2, e.g. churn@v2:10%%")
    change.add_argument("--stop", action="store_true",
                        help="run the endpoint without a challenger")
    change.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the restarted server (default 60)")
    store_argument(change)
    change.set_defaults(func=_endpoints_challenger)

    logs = actions.add_parser("logs", help="the end of an endpoint's server log")
    logs.add_argument("key", metavar="ID_OR_PORT")
    logs.add_argument("-n", "--lines", type=int, default=40)
    store_argument(logs)
    logs.set_defaults(func=_endpoints_logs)

    docker = sub.add_parser("docker", help="write a Docker bundle that serves a model version",
                            description="Write a folder with a Dockerfile, pinned "
                                        "requirements, the model and the server.")
    docker.add_argument("ref", help=REF_HELP)
    docker.add_argument("out_dir", metavar="OUT_DIR", help="new folder to write the bundle to")
    docker.add_argument("--workers", default="1",
                        help="server processes in the container (default 1; FIXATIVE_WORKERS "
                             "overrides it at run time)")
    docker.add_argument("--port", default="8080", help="port the container listens on")
    trust_argument(docker, "a name in the model file to allow when the container loads it")
    docker.add_argument("--engine", default="auto", choices=("auto", "sklearn", "onnx"),
                        help="auto (default): serve the compiled graph when it was verified, "
                             "with neither the model file nor scikit-learn in the image")
    docker.add_argument("--force", action="store_true",
                        help="replace OUT_DIR if it holds an earlier bundle")
    docker.add_argument("--with-s3", action="store_true",
                        help="include s3fs so the prediction log can go to an s3:// board")
    docker.add_argument("--k8s", action="store_true",
                        help="also write Kubernetes manifests (k8s/, kustomize layout); "
                             "implies --with-s3")
    docker.add_argument("--no-lock", action="store_true",
                        help="do not pin every package with hashes (requirements.lock needs "
                             "the package index: PyPI or UV_INDEX_URL)")
    _add_challenger_options(docker)
    store_argument(docker)
    docker.set_defaults(func=_docker)


# -- serve -------------------------------------------------------------------------------

LIMIT_FLAGS = ("max_rows", "max_columns", "max_json_depth", "max_parsing", "body_timeout",
               "header_timeout", "keep_alive_timeout", "max_connections")

def _max_body_bytes(value: str | None) -> int | None:
    from core.deploy.endpoints import check_max_body_mb

    return None if value is None else int(check_max_body_mb(value) * 2**20)


def _serve(args: argparse.Namespace) -> int:
    from core.serving import process as server_factory
    from core.serving.app import server_tokens
    from core.serving.docs_page import check_public_url
    from core.serving.netcheck import check_host, check_port, check_workers, ensure_port_free

    host = check_host(args.host)
    port = check_port(args.port)
    workers = check_workers(args.workers)
    if args.canary is not None:  # a bad share is refused before anything loads
        from core.serving.challenger import parse_canary

        parse_canary(args.canary)
    max_body = _max_body_bytes(args.max_body_mb)
    limits = {k: getattr(args, k) for k in LIMIT_FLAGS}
    settings = server_factory.ServeSettings(
        name="", version="", trusted=list(args.trust), log=not args.no_log, engine=args.engine,
        batching=not args.no_batching, max_body_bytes=max_body, **limits,
        public_url=args.public_url, allow_short_tokens=args.allow_short_tokens)
    # refuse bad limits, a bad public URL or tokens before the model is loaded
    settings.limits()
    public_url = settings.resolved_public_url()
    if public_url:
        check_public_url(public_url)
    server_tokens(None, allow_short=settings.short_tokens_allowed())
    from core.serving.heartbeat import interval

    interval()
    store = open_store(args)
    ensure_port_free(host, port, hint="choose another with --port")
    name, version = store.resolve(args.ref)
    settings.name, settings.version, settings.store = name, version, str(store.url)
    served = server_factory.load_bundle(settings, store=store)
    alias = parse_ref(args.ref)[2]
    settings.alias = alias or None
    pair = _challenger(args, store, settings)
    via = f" (alias {alias})" if alias else ""
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    from core.serving.engine import text as engine_text

    print(f"Serving {name}@{version}{via} on {url} with {workers} worker"
          f"{'s' if workers > 1 else ''} (docs: {url}/). Stop with Ctrl+C.", flush=True)
    print(f"Engine: {engine_text(served.engine.describe())}", flush=True)
    if pair:
        print(pair, flush=True)
    server_factory.run(settings, host=host, port=port, workers=workers, served=served,
                       store=store, access_log=args.access_log)
    return 0


def _challenger(args: argparse.Namespace, store: Any, settings: Any) -> str:
    """Set ``settings.challenger`` from --shadow / --canary (checked against the champion
    before the server starts); returns a line saying what runs, or ''."""
    from core.deploy.challenger import challenger_option

    # only the metadata is compared here: the server loads the challenger itself, from its
    # verified graph when it has one (never unpickled then)
    option = challenger_option(store, (settings.name, settings.version), shadow=args.shadow,
                               canary=args.canary, trusted=settings.trusted)
    if option is None:
        return ""
    settings.challenger = option.to_dict()
    how = ("scores every request in the background" if option.share is None
           else f"answers {option.share * 100:.4g}% of requests")
    return f"Challenger {option.ref} ({option.mode}) {how}."


# -- endpoints ---------------------------------------------------------------------------

def _endpoints_start(args: argparse.Namespace) -> int:
    from core.deploy import endpoints as deploy
    from core.serving.netcheck import check_host, check_port, free_port

    store = open_store(args)
    host = check_host(args.host)
    port = free_port(host, preferred=8080) if args.port is None else check_port(args.port)
    endpoint = deploy.start_endpoint(
        store, args.ref, port=port, host=host, workers=args.workers, log=not args.no_log,
        batching=not args.no_batching, max_body_mb=args.max_body_mb, trusted=args.trust,
        timeout=args.timeout, engine=args.engine, shadow=args.shadow, canary=args.canary)
    print(f"Started {endpoint.label}: {endpoint.url}/ (id {endpoint.id}, pid {endpoint.pid}, "
          f"log {endpoint.log_file})")
    return 0


def _endpoints_challenger(args: argparse.Namespace) -> int:
    from core.deploy import endpoints as deploy

    store = open_store(args)
    before = deploy.find_endpoint(store, args.key)
    after = deploy.set_challenger(store, before, shadow=args.shadow, canary=args.canary,
                                  stop=args.stop, timeout=args.timeout)
    if after.pid == before.pid:
        what = before.challenger.text if before.challenger else "no challenger"
        print(f"{before.label} already runs with {what}; nothing changed.")
        return 0
    what = after.challenger.text if after.challenger else "no challenger"
    print(f"Restarted {after.label} with {what}: {after.url}/ (id {after.id}, pid {after.pid})")
    return 0


def _challenger_text(endpoint: Any) -> str:
    c = endpoint.challenger
    if c is None:
        return ""
    return f"{c.mode} {c.ref}" + ("" if c.share is None else f" {c.share * 100:.4g}%")


def _endpoints_list(args: argparse.Namespace) -> int:
    from core.deploy import endpoints as deploy

    store = open_store(args)
    statuses = deploy.list_endpoints(store)
    local = [{**s.endpoint.to_dict(), "url": s.endpoint.url, "status": s.status,
              "detail": s.detail, "requests": s.requests, "errors": s.errors,
              "challenger": s.endpoint.challenger.to_dict() if s.endpoint.challenger else None}
             for s in statuses]
    if args.all:
        return _fleet_list(store, local, statuses, as_json=args.json)
    if args.json:
        print(json.dumps(local, indent=1))
        return 0
    if not statuses:
        print("No endpoints. Start one with `python -m core endpoints start NAME --port 8080`.")
        return 0
    _endpoints_table(statuses)
    return 0


def _endpoints_table(statuses: list[Any]) -> None:
    rows = [("ID", "MODEL", "ALIAS", "URL", "PID", "STATUS", "REQUESTS", "STARTED",
             "CHALLENGER")]
    for s in statuses:
        e = s.endpoint
        rows.append((e.id, e.ref, e.alias or "", e.url, str(e.pid), s.status,
                     "" if s.requests is None else str(s.requests), e.started[:19] + "Z",
                     _challenger_text(e)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for s in statuses:
        if s.detail and s.status != "running":
            print(f"{s.endpoint.id}: {s.detail}", file=sys.stderr)


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _fleet_list(store: Any, local: list[dict[str, Any]], statuses: list[Any], *,
                as_json: bool) -> int:
    from core.deploy import fleet

    replicas, notes = fleet.fleet(store)
    if as_json:
        print(json.dumps({"endpoints": local, "replicas": [r.to_dict() for r in replicas],
                          "notes": notes}, indent=1))
        return 0
    if statuses:
        print("Endpoints started on this machine:")
        _endpoints_table(statuses)
        print()
    if not replicas:
        print("No replica reports to this board. Replicas report when they serve with the "
              "board set (`python -m core serve NAME --port 8080`, or FIXATIVE_STORE in a "
              "container or pod).")
    else:
        print("Replicas reporting to the board:")
        _table([("MODEL", "VERSION", "ALIAS", "CHALLENGER", "HEALTH", "WHERE", "HOST", "PID",
                 "REQUESTS", "ROWS", "ERRORS", "LAST SEEN")] + [
            (f.replica.model, f.replica.version, f.replica.alias or "",
             f.replica.challenger or "", f.replica.health,
             f.where, f.replica.host or "", "" if f.replica.pid is None else str(f.replica.pid),
             *("" if v is None else str(v) for v in (f.replica.requests, f.replica.rows,
                                                      f.replica.errors)),
             f"{f.replica.last_seen} ({f.replica.age_seconds:g} s ago)")
            for f in replicas])
        print()
        for line in fleet.rollouts(replicas):
            print(line)
        if any(f.where == "remote" for f in replicas):
            print(fleet.REMOTE_STOP)
    for note in notes:
        print(note, file=sys.stderr)
    return 0


def _endpoints_prune(args: argparse.Namespace) -> int:
    from core.deploy import fleet
    from core.times import span_seconds

    gone = fleet.prune_stale(open_store(args), span_seconds(args.older_than, "--older-than"))
    print(f"Removed {len(gone)} heartbeat{'s' if len(gone) != 1 else ''} of replicas gone "
          f"for longer than {args.older_than}." + "".join(f"\n  {g}" for g in gone))
    return 0


def _endpoints_stop(args: argparse.Namespace) -> int:
    from core.deploy import endpoints as deploy

    store = open_store(args)
    if args.all == bool(args.keys):
        raise InvalidArgument("Name the endpoints to stop (id or port), or pass --all; see "
                              "`python -m core endpoints list`.")
    targets: list[Any] = ([s.endpoint for s in deploy.list_endpoints(store, probe=False)]
                          if args.all else [deploy.find_endpoint(store, k) for k in args.keys])
    if not targets:
        print("No endpoints to stop.")
    for endpoint in targets:
        result = deploy.stop_endpoint(store, endpoint, grace=args.grace)
        print(f"{endpoint.label} (id {endpoint.id}): {result.detail}")
    return 0


def _endpoints_logs(args: argparse.Namespace) -> int:
    from core.deploy import endpoints as deploy

    if not 1 <= args.lines <= 100_000:
        raise InvalidArgument(f"--lines must be between 1 and 100000, got {args.lines}.")
    endpoint = deploy.find_endpoint(open_store(args), args.key)
    print(deploy.log_tail(endpoint.log_file, args.lines))
    return 0


# -- docker ------------------------------------------------------------------------------

def _docker(args: argparse.Namespace) -> int:
    from core.deploy import docker as dockerbundle

    out = dockerbundle.write_bundle(open_store(args), args.ref, args.out_dir,
                                    workers=args.workers, port=args.port, trusted=args.trust,
                                    engine=args.engine,
                                    force=args.force, with_s3=args.with_s3, k8s=args.k8s,
                                    lock=not args.no_lock, shadow=args.shadow,
                                    canary=args.canary)
    print(f"Wrote a Docker bundle to {out}. Build it with: docker build -t IMAGE {out}")
    pair = json.loads((out / dockerbundle.SETTINGS_FILE).read_text()).get("challenger")
    if pair:
        from core.serving.heartbeat import challenger_text

        print(f"It serves the challenger {challenger_text(pair)} next to the champion, from "
              f"{out / pair['model_dir']}.")
    if args.k8s:
        print(f"Kubernetes manifests: {out / 'k8s'}. Read k8s/kustomization.yaml, then "
              f"kubectl apply -k {out / 'k8s'}")
    return 0
