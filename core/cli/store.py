"""Store subcommands: write, list, versions, show, search, alias, history, delete, prune,
reindex, verify."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.cli.output import cell, print_json, print_models, print_table
from core.errors import InvalidArgument, NotFound
from core.model.params import NOT_RECORDED, lineage_summary, params_of, value_text
from core.model.prototype import Column
from core.store.names import parse_ref
from core.store.paths import local_root
from core.store.versionstore import VersionStore

# Refuse before reading: a model or sample beyond this is almost surely a wrong path.
MAX_FILE_BYTES = 4 << 30


def store_argument(parser: argparse.ArgumentParser) -> None:
    """``--store URL`` on a subcommand (default: $FIXATIVE_STORE or ./fixative-store)."""
    parser.add_argument("--store", metavar="URL", default=None,
                        help="board folder or fsspec URL (default: $FIXATIVE_STORE or "
                             "./fixative-store)")


def open_store(args: argparse.Namespace, *, create: bool = False) -> VersionStore:
    """The store a command names. Only ``write`` creates a local store: for any other
    command a missing folder is a mistyped path, not a new empty store."""
    location = getattr(args, "store", None)
    if location is not None and not location.strip():
        raise InvalidArgument("--store is empty; give a board folder or URL, or leave it out to "
                              "use $FIXATIVE_STORE or ./fixative-store.")
    root = local_root(location)
    if not create and root is not None and not os.path.isdir(root):
        raise NotFound(f"There is no store at {root}. Check --store or FIXATIVE_STORE; "
                       "'python -m core write MODEL_FILE --name NAME' creates one.")
    return VersionStore(location)


_TRUSTED_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+")


def _trusted_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    for name in names:
        if not _TRUSTED_NAME.fullmatch(name):
            raise argparse.ArgumentTypeError(
                f"expected MODULE.NAME as the safety check lists it (e.g. "
                f"mypkg.MyTransformer), got {name[:60]!r}")
    return names


def trust_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--trust MODULE.NAME``, the same on every command: one name per use (or several
    separated by commas), so it never swallows the arguments after it."""
    parser.add_argument("--trust", action="extend", type=_trusted_names, default=[],
                        metavar="MODULE.NAME", help=f"{help} (repeatable, or a,b)")


def read_input_file(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.exists():
        raise NotFound(f"The {what} '{path}' does not exist; check the path.")
    if p.is_dir():
        raise InvalidArgument(f"The {what} '{path}' is a folder; give the path of a file.")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidArgument(f"The {what} '{path}' is {size / 2**30:.1f} GiB, over the "
                              f"{MAX_FILE_BYTES >> 30} GiB limit; check that it is the right file.")
    return p.read_bytes()


def _key_values(items: Iterable[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"--{what} takes KEY=VALUE (e.g. --{what} rmse=41000), got "
                                  f"{item!r}.")
        if key.strip() in out:
            raise InvalidArgument(f"--{what} {key.strip()} is given twice ({out[key.strip()]!r} "
                                  f"and {value.strip()!r}); give each {what} once.")
        out[key.strip()] = value.strip()
    return out


# -- handlers ---------------------------------------------------------------------------

def cmd_write(args: argparse.Namespace) -> int:
    from core.store.upload import upload

    model_data = read_input_file(args.model_file, "model file")
    sample_data = read_input_file(args.sample, "sample") if args.sample else None
    training = _training_data(args)
    info = upload(open_store(args, create=True), model_data, Path(args.model_file).name,
                  name=args.name,
                  sample_data=sample_data,
                  sample_filename=Path(args.sample).name if args.sample else None,
                  description=args.description or "",
                  metrics=_key_values(args.metric, "metric"),
                  tags=args.tag, trusted=args.trust, training_data=training,
                  training_code=args.training_code, metrics_data=args.metrics_data,
                  metrics_rows=args.metrics_rows)
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"stored {info.name}@{info.version}")
    return 0


def _training_data(args: argparse.Namespace) -> Any:
    """The training data to fingerprint: a frame read from --training-data, or the
    fingerprint given with --training-fingerprint."""
    if args.training_data and args.training_fingerprint:
        raise InvalidArgument("Give --training-data FILE or --training-fingerprint TEXT, not "
                              "both.")
    if args.training_fingerprint is not None:
        return args.training_fingerprint
    if not args.training_data:
        return None
    from core.store.upload import read_sample

    return read_sample(read_input_file(args.training_data, "training data"),
                       Path(args.training_data).name)


def cmd_list(args: argparse.Namespace) -> int:
    # a fresh process with a listing kept on disk prints it through core.cli.quick
    print_models([vars(m) for m in open_store(args).list_models()], args.json)
    return 0


def _version_rows(versions: Sequence[Any]) -> list[dict[str, Any]]:
    return [vars(v) for v in versions]  # read only: the fields as they are, times as times


def cmd_versions(args: argparse.Namespace) -> int:
    versions = open_store(args).versions(parse_ref(args.name)[0])
    if args.json:
        print_json([v.to_dict() for v in versions])
    else:
        print_table(_version_rows(versions),
                    ["version", "created", "user", "aliases", "metrics", "tags"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    name, version = store.resolve(args.ref)
    meta = store.meta(name, version).to_dict()
    info = next(v for v in store.versions(name) if v.version == version)
    if not args.json:
        meta.pop("profile", None)  # bulky; --json has it
    data: dict[str, Any] = {"name": name, "version": version, "aliases": info.aliases,
            "hash": info.hash, "size": info.size} | meta
    if args.json:
        print_json(data)
        return 0
    print(f"{name}@{version}  ({', '.join(info.aliases) or 'no aliases'})")
    data["model_class"] = store.meta(name, version).model_summary
    for key in ("model_class", "library", "task", "classes", "description", "user",
                "created", "metrics", "tags"):
        if data.get(key) not in (None, "", [], {}):
            print(f"  {key + ':':13} {cell(data[key])}")
    env = data.get("environment") or {}
    print(f"  {'python:':13} {env.get('python', '?')}")
    packages = env.get("packages") or {}
    print(f"  {'packages:':13} " + (", ".join(
        f"{k}={v}" if v else f"{k} (version not recorded)" for k, v in packages.items())
        or "none recorded"))
    print("  inputs:")
    for col in data["prototype"]["columns"]:
        detail = col["categories"] if col.get("categories") else (
            Column.from_dict(col).range_text() or "")
        null = "nullable" if col.get("nullable") else ""
        print(f"    {col['name']:24} {col['kind']:9} {null:9} {cell(detail)[:60]}")
    print_lineage(store.meta(name, version))
    for note in data.get("notes") or []:
        print(f"  note: {note}")
    return 0


def print_lineage(meta: Any) -> None:
    """Parameters and lineage of ``show``, each "not recorded" where the version has none."""
    for what, text in lineage_summary(meta.lineage, meta.metrics_data):
        print(f"  {what + ':':13} {text}")
    found = (meta.lineage or {}).get("steps") or []
    if found:
        print("  steps:")
        for step in found:
            print(f"    {str(step.get('path', '')):24} {step.get('class', '')}")
    params = params_of(meta.lineage)
    if params is None:
        print(f"  {'parameters:':13} {NOT_RECORDED}")
        return
    print(f"  parameters ({len(params)}):")
    for key, value in params.items():
        print(f"    {key} = {value_text(value)}")


_SEARCH_FLAGS = {"created_after": "--after", "created_before": "--before",
                 "min_value": "--min", "max_value": "--max"}


def cmd_search(args: argparse.Namespace) -> int:
    if args.metric is None and (args.min is not None or args.max is not None):
        raise InvalidArgument("--min/--max need --metric to compare, e.g. --metric rmse --max "
                              "50000.")
    try:
        found = open_store(args).search(text=args.text, tag=args.tag, created_after=args.after,
                                        created_before=args.before, metric=args.metric,
                                        min_value=args.min, max_value=args.max,
                                        param=args.param)
    except InvalidArgument as exc:  # the store names its arguments; here they are flags
        message = exc.message
        for name, flag in _SEARCH_FLAGS.items():
            message = message.replace(name, flag)
        raise InvalidArgument(message) from None
    if args.json:
        print_json([v.to_dict() for v in found])
    elif not found:
        print("No version matches every condition; try fewer conditions, or "
              "'python -m core list' to see what is stored.")
    else:
        print_table(_version_rows(found), ["name", "version", "created", "metrics", "tags"])
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    store = open_store(args)
    name = parse_ref(args.name)[0]
    target = args.version if args.version.startswith(":") else "@" + args.version
    version = store.resolve(name + target)[1]
    store.set_alias(name, args.alias, version)
    print(f"{name}:{args.alias} -> {version}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    events = open_store(args).alias_history(parse_ref(args.name)[0])
    if args.json:
        print_json([e.to_dict() for e in events])
    else:
        print_table([vars(e) for e in events],
                    ["at", "alias", "from_version", "to_version", "user"])
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = open_store(args)
    name, version = store.resolve(args.ref)
    if "@" not in args.ref:
        raise InvalidArgument(f"delete needs an exact version: {name}@VERSION (see "
                              f"'python -m core versions {name}').")
    store.delete(name, version, force=args.force)
    print(f"deleted {name}@{version}")
    from core.deploy.endpoints import serving

    for endpoint in serving(store, name, version):
        print(f"warning: the endpoint on port {endpoint.port} still serves {name}@{version} "
              f"from memory; stop it with 'python -m core endpoints stop {endpoint.port}'.",
              file=sys.stderr)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.keep is None and args.days is None:
        raise InvalidArgument("prune needs --keep N (keep the newest N versions) or --days D "
                              "(keep versions younger than D days).")
    deleted = open_store(args).prune(parse_ref(args.name)[0], keep=args.keep, days=args.days)
    print(f"pruned {len(deleted)} version(s)" + (": " + ", ".join(deleted) if deleted else ""))
    return 0


def _print_problems(problems: Sequence[str]) -> int:
    """One ``error:`` line per problem on stderr; the exit code."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_reindex(args: argparse.Namespace) -> int:
    report = open_store(args).reindex_report()
    print("reindexed: " + ", ".join(f"{v} {k}" for k, v in report.counts.items()))
    return _print_problems(report.problems)


def cmd_verify(args: argparse.Namespace) -> int:
    report = open_store(args).verify_report()
    for note in report.notes:
        print(f"note: {note}")
    checked = report.counts.get("versions", 0)
    if report.problems:
        print(f"checked {checked} version(s): {len(report.problems)} problem(s) found")
    else:
        print(f"checked {checked} version(s): every stored file matches its recorded hash")
    return _print_problems(report.problems)


def cmd_compile(args: argparse.Namespace) -> int:
    from core.store.compile import summary

    store = open_store(args)
    name, version = store.resolve(args.ref)
    report = store.compile(f"{name}@{version}", trusted=args.trust)
    if args.json:
        print_json(report)
    else:
        print(f"{name}@{version}: compiled engine {summary(report)}")
    return 0


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _non_negative(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return x


def _command(sub: argparse._SubParsersAction, name: str, help: str, func, *,
             json_output: bool = False) -> argparse.ArgumentParser:
    """A subcommand with ``--store`` (and ``--json`` where it prints data) running ``func``."""
    p = sub.add_parser(name, help=help)
    if json_output:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    store_argument(p)
    p.set_defaults(func=func)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "write", "store a model file as a new version", cmd_write,
                 json_output=True)
    p.add_argument("model_file", metavar="MODEL_FILE", help=".joblib, .pkl/.pickle or .skops")
    p.add_argument("--name", required=True, help="model name (letters, digits, - _ .)")
    p.add_argument("--sample", metavar="CSV|PARQUET",
                   help="training features: gives the prototype and the drift reference")
    p.add_argument("--description", default="")
    p.add_argument("--metric", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--metrics-data", metavar="NAME",
                   help="the data set the metrics were computed on, e.g. 'holdout 2026-Q1'")
    p.add_argument("--metrics-rows", type=_positive_int, metavar="N",
                   help="rows of that data set")
    p.add_argument("--training-data", metavar="CSV|PARQUET",
                   help="the training data, to record its fingerprint (sha256, rows, columns)")
    p.add_argument("--training-fingerprint", metavar="TEXT",
                   help="a fingerprint of the training data computed elsewhere")
    p.add_argument("--training-code", metavar="REF",
                   help="where the training code is: a git commit, a URL or a path")
    trust_argument(p, "trust an import the safety check does not know")

    _command(sub, "list", "list models", cmd_list, json_output=True)

    p = _command(sub, "versions", "list a model's versions, oldest first", cmd_versions,
                 json_output=True)
    p.add_argument("name", metavar="NAME")

    p = _command(sub, "show", "show one version's metadata", cmd_show, json_output=True)
    p.add_argument("ref", metavar="NAME[@VERSION|:ALIAS]")

    p = _command(sub, "search", "find versions by name, tag, date, metric or parameter",
                 cmd_search,
                 json_output=True)
    p.add_argument("--text", help="name contains")
    p.add_argument("--tag")
    p.add_argument("--after", help="created on or after (e.g. 2024-05-01)")
    p.add_argument("--before", help="created before")
    p.add_argument("--metric", help="metric name for --min/--max")
    p.add_argument("--min", type=float)
    p.add_argument("--max", type=float)
    p.add_argument("--param", metavar="KEY=VALUE",
                   help="a recorded parameter, by its full key or its last part, e.g. "
                        "n_estimators=300")

    p = _command(sub, "alias", "point an alias (e.g. production) at a version", cmd_alias)
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", help="a version id, or :ALIAS to copy one")
    p.add_argument("alias", metavar="ALIAS")

    p = _command(sub, "history", "every alias move of a model: who, when, from, to",
                 cmd_history, json_output=True)
    p.add_argument("name", metavar="NAME")

    p = _command(sub, "delete", "delete one version (refused while aliased)", cmd_delete)
    p.add_argument("ref", metavar="NAME@VERSION")
    p.add_argument("--force", action="store_true", help="delete even if an alias points at it")

    p = _command(sub, "prune", "delete old versions (never the newest or an aliased one)",
                 cmd_prune)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--keep", type=_positive_int, metavar="N",
                   help="keep the newest N versions")
    p.add_argument("--days", type=_non_negative, metavar="D",
                   help="keep versions younger than D days (with --keep, a version either "
                        "rule keeps stays); the newest and aliased versions always stay")

    _command(sub, "reindex", "rebuild the DuckDB index from the board", cmd_reindex)
    _command(sub, "verify", "re-hash every stored file", cmd_verify)

    p = _command(sub, "compile", "convert a version to ONNX and check it against the model "
                 "on the stored sample", cmd_compile, json_output=True)
    p.add_argument("ref", metavar="NAME[@VERSION|:ALIAS]")
    trust_argument(p, "trust an import the safety check does not know (to load the model)")
