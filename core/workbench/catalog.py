"""Tables, figures and confirmation texts for browsing the store (the Models page)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, overload

import pandas as pd
import plotly.graph_objects as go

from core.model.prototype import Prototype
from core.times import as_utc

MODEL_COLUMNS = ["name", "latest", "aliases", "versions", "updated", "model", "task", "library"]


@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | pd.Timestamp | str) -> datetime: ...
@overload
def _utc(value: Any) -> datetime | None: ...


def _utc(value: Any) -> datetime | None:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return as_utc(value, "time")


def _alias_text(aliases: Mapping[str, str] | Iterable[str] | None) -> str:
    if not aliases:
        return ""
    if isinstance(aliases, Mapping):
        return ", ".join(f"{a} → {v}" for a, v in sorted(aliases.items()))
    return ", ".join(sorted(aliases))


def models_frame(models: Sequence[Any], text: str = "",
                 also: Iterable[str] = ()) -> pd.DataFrame:
    """One row per model, newest update first, filtered by ``text``.

    A model matches when ``text`` appears (case-insensitively) in its name, task,
    library, class or aliases, or when its name is in ``also`` (hits of a search over
    descriptions and tags).
    """
    needle = text.strip().lower()
    extra = set(also)
    rows = []
    for m in models:
        aliases = _alias_text(m.aliases)
        model = getattr(m, "model_summary", "") or m.model_class or ""
        hay = " ".join([m.name, m.task or "", m.library or "", model, aliases]).lower()
        if needle and needle not in hay and m.name not in extra:
            continue
        rows.append({"name": m.name, "latest": m.latest, "aliases": aliases,
                     "versions": int(m.n_versions), "updated": _utc(m.updated),
                     "model": model, "task": m.task, "library": m.library})
    frame = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    if len(frame):
        frame = frame.sort_values("updated", ascending=False, kind="stable")
    return frame.reset_index(drop=True)


def versions_frame(versions: Sequence[Any]) -> pd.DataFrame:
    """Versions newest first with their metrics spread into columns."""
    rows = []
    for v in reversed(list(versions)):
        row = {"version": v.version, "created": _utc(v.created),
               "aliases": ", ".join(sorted(v.aliases or [])), "user": v.user,
               "description": v.description,
               "model": getattr(v, "model_summary", "") or v.model_class,
               "size": int(v.size or 0),
               "tags": ", ".join(v.tags or [])}
        row.update({f"metric: {k}": val for k, val in sorted((v.metrics or {}).items())})
        rows.append(row)
    return pd.DataFrame(rows)


def _label_levels(positions: Sequence[int], labels: Sequence[str], per_char: float) -> list[int]:
    """A height level for each label so that no two on one level overlap: a label spans
    ``len(label) * per_char`` positions around its point, and takes the lowest level whose
    last label ends before it starts."""
    ends: list[float] = []  # per level: where its last label ends
    levels = []
    for pos, text in zip(positions, labels, strict=True):
        half = max(len(text), 1) * per_char / 2
        level = next((i for i, end in enumerate(ends) if end < pos - half), len(ends))
        if level == len(ends):
            ends.append(pos + half)
        else:
            ends[level] = pos + half
        levels.append(level)
    return levels


def timeline_figure(versions: Sequence[Any], title: str = "") -> go.Figure:
    """Versions in the order they were written, evenly spaced so that versions written
    seconds apart stay apart; the real times are on the axis ticks and in the hover.
    Aliased versions are labelled with their aliases, on as many rows as keep the labels
    from overlapping."""
    fig = go.Figure()
    levels: list[int] = []
    if not versions:
        fig.add_annotation(text="No versions yet.", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5)
    else:
        times = [_utc(v.created) for v in versions]
        xs = list(range(len(versions)))
        labels = [", ".join(sorted(v.aliases or [])) for v in versions]
        hover = [f"{v.version}<br>{t:%Y-%m-%d %H:%M:%S} UTC<br>{v.user or ''}"
                 f"<br>{(v.description or '')[:80]}" if t else v.version
                 for v, t in zip(versions, times, strict=True)]
        fig.add_trace(go.Scatter(
            x=xs, y=[0] * len(xs), mode="markers+lines", hovertext=hover, hoverinfo="text",
            marker={"size": [14 if lab else 9 for lab in labels]}, name="versions"))
        shown = [i for i, lab in enumerate(labels) if lab]
        # about 7 px per character on a ~700 px wide chart of len(xs) positions
        per_char = 7 * max(len(xs), 1) / 700
        levels = _label_levels(shown, [labels[i] for i in shown], per_char)
        for i, level in zip(shown, levels, strict=True):
            fig.add_annotation(x=i, y=0, text=labels[i], showarrow=False,
                               yshift=16 + 16 * level, font={"size": 12})
        step = max(1, len(xs) // 6)
        ticks = xs[::step]
        fig.update_xaxes(tickvals=ticks, ticktext=[
            f"{times[i]:%Y-%m-%d}<br>{times[i]:%H:%M:%S}" if times[i] else "" for i in ticks],
            range=[-0.5, len(xs) - 0.5], title="versions, oldest to newest")
    fig.update_yaxes(visible=False, range=[-0.5, 1.0 + 0.5 * max(levels, default=0)])
    fig.update_layout(title=title or None, template="plotly_white",
                      height=220 + 16 * max(levels, default=0),
                      margin={"l": 20, "r": 20, "t": 40 if title else 10, "b": 30},
                      showlegend=False)
    return fig


def prototype_frame(prototype: Prototype) -> pd.DataFrame:
    """The input prototype as a table: one row per column, in the model's order."""
    rows = []
    for c in prototype.columns:
        if c.categories is not None:
            shown = ", ".join(map(str, c.categories[:10]))
            values = shown + (f", … ({len(c.categories)})" if len(c.categories) > 10 else "")
        elif c.min is not None:
            values = c.range_text() or ""
        else:
            values = ""
        rows.append({"column": c.name, "kind": c.kind, "dtype": c.dtype,
                     "nullable": c.nullable, "values seen": values,
                     "example": "" if c.example is None else str(c.example)})
    return pd.DataFrame(rows, columns=["column", "kind", "dtype", "nullable", "values seen",
                                       "example"])


def environment_frame(environment: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"name": "python", "version": environment.get("python", "")},
            {"name": "platform", "version": environment.get("platform", "")}]
    rows += [{"name": k, "version": v}
             for k, v in sorted((environment.get("packages") or {}).items())]
    return pd.DataFrame(rows, columns=["name", "version"])


def alias_history_frame(events: Sequence[Any]) -> pd.DataFrame:
    """Alias moves, newest first."""
    rows = [{"at": _utc(e.at), "alias": e.alias, "from": e.from_version or "",
             "to": e.to_version or "", "user": e.user or ""} for e in events]
    frame = pd.DataFrame(rows, columns=["at", "alias", "from", "to", "user"])
    return frame.iloc[::-1].reset_index(drop=True)


def _describe(v: Any) -> str:
    created = _utc(v.created)
    when = created.strftime("%Y-%m-%d %H:%M UTC") if created else "unknown time"
    return f"{v.name}@{v.version} (created {when}, {_bytes(int(v.size or 0))})"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def delete_message(version: Any) -> str:
    """What deleting one version removes, for the confirmation checkbox."""
    text = (f"Delete {_describe(version)}: its model file, metadata and sample are removed "
            "from the store for good.")
    if version.aliases:
        text += (f" It holds alias(es) {', '.join(sorted(version.aliases))}, which will be "
                 "removed too.")
    return text


def prune_message(name: str, doomed: Sequence[Any]) -> str:
    if not doomed:
        return f"Nothing to prune: every version of {name} is kept by these rules."
    shown = "; ".join(_describe(v) for v in doomed[:20])
    more = "" if len(doomed) <= 20 else f"; and {len(doomed) - 20} more"
    return f"Delete {len(doomed)} version(s) of {name} for good: {shown}{more}."


def compiled_text(report: Mapping[str, Any] | None) -> str:
    """What compiling a version to ONNX found, in one line (what the verdict is judged on
    included): whether the server would run the graph instead of the model file."""
    from core.store.compile import summary, verified

    serves = ("Servers on engine auto run this graph (the model file is never loaded)."
              if verified(dict(report)) else
              "Servers on engine auto run the model with scikit-learn."
              ) if report is not None else "Servers run the model with scikit-learn."
    return f"Compiled engine (ONNX): {summary(dict(report) if report else None)}. {serves}"


def compile_version(store: Any, name: str, version: str, trusted: Sequence[str] = ()) -> str:
    """Compile a stored version to ONNX (the Models page's button); the result in a line."""
    report = store.compile(f"{name}@{version}", trusted=trusted)
    return f"{name}@{version}: {compiled_text(report)}"
