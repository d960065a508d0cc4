"""The evidence parts of a model card: evaluation results, lineage and a first call.

Evaluation results say on which data each number was measured. Two kinds:

- recorded: the metrics stored with the version, on the data set the person named
  (``metrics_data`` in :func:`core.bundle`), or "data set not recorded";
- monitoring: metrics on the version's logged rows with actuals, overall and per level
  of a segment column, handed in as plain dicts (see
  :func:`core.monitoring.evaluation.evaluate`) because cards do not import monitoring.

"How to get started" is a real call to the prediction server with the model's
example row, in curl and Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cards.svgcharts import fmt_number
from core.model.bundle import BundleMeta
from core.model.params import NOT_RECORDED, lineage_summary, value_text
from core.times import parse_iso

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
MAX_EVALUATIONS = 50
_TEXT = 200


@dataclass
class Evaluation:
    """Metrics measured on one set of rows, and which rows they were."""

    source: str  # "recorded" | "monitoring"
    data: str
    rows: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: int | None = None
    period: tuple[str, str] | None = None
    segment: tuple[str, str] | None = None
    note: str = ""

    @property
    def on_text(self) -> str:
        """On which data, in words: "holdout 2026-Q1 (4,000 rows)"."""
        text = self.data or "data set not recorded"
        if self.segment:
            text += f" where {self.segment[0]} = {self.segment[1]}"
        elif self.period:
            text += f", {self.period[0]} to {self.period[1]}"
        if self.rows is not None:
            text += f" ({self.rows:,} rows"
            if self.predictions is not None:
                text += f" of {self.predictions:,} predictions"
            text += ")"
        return text

    def value(self, metric: str) -> str:
        v = self.metrics.get(metric)
        return "" if v is None else fmt_number(v)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _day(value: Any) -> str:
    at = parse_iso(value) if isinstance(value, str) else None
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "?"


def recorded(meta: BundleMeta) -> Evaluation | None:
    """The metrics stored with the version, with the data set they were computed on."""
    if not meta.metrics:
        return None
    on = meta.metrics_data or {}
    return Evaluation(source="recorded", data=str(on.get("name") or "")[:_TEXT],
                      rows=_int(on.get("rows")), metrics=dict(meta.metrics))


def from_monitoring(results: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
    """Evaluations from :func:`core.monitoring.evaluation.evaluate`'s dicts; anything
    malformed is skipped (the card never fails on them)."""
    out = []
    for r in list(results)[:MAX_EVALUATIONS]:
        if not isinstance(r, Mapping) or not isinstance(r.get("metrics"), Mapping):
            continue
        metrics = {str(k)[:_TEXT]: float(v) for k, v in r["metrics"].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)}
        period = r.get("period")
        segment = r.get("segment")
        out.append(Evaluation(
            source="monitoring", data=str(r.get("data") or "predictions with actuals")[:_TEXT],
            rows=_int(r.get("rows")), predictions=_int(r.get("predictions")), metrics=metrics,
            period=(_day(period[0]), _day(period[1]))
            if isinstance(period, Sequence) and len(period) == 2 else None,
            segment=(str(segment[0])[:_TEXT], str(segment[1])[:_TEXT])
            if isinstance(segment, Sequence) and len(segment) == 2 else None,
            note=str(r.get("note") or "")[:_TEXT]))
    return out


def metric_names(evaluations: Sequence[Evaluation]) -> list[str]:
    names: list[str] = []
    for e in evaluations:
        names.extend(k for k in e.metrics if k not in names)
    return names


# -- lineage ----------------------------------------------------------------------------


@dataclass
class LineageCard:
    """Parameters and lineage for the card's Model details ("not recorded" where absent)."""

    summary: list[tuple[str, str]]
    steps: list[tuple[str, str]]
    params: list[tuple[str, str]] | None

    @classmethod
    def of(cls, meta: BundleMeta) -> LineageCard:
        recorded_lineage = meta.lineage or {}
        found = recorded_lineage.get("steps")
        steps = [(str(s.get("path", "")), str(s.get("class", ""))) for s in found
                 if isinstance(s, Mapping)] if isinstance(found, list) else []
        params = recorded_lineage.get("params")
        return cls(summary=lineage_summary(meta.lineage, meta.metrics_data), steps=steps,
                   params=[(str(k), value_text(v)) for k, v in params.items()]
                   if isinstance(params, Mapping) else None)

    @property
    def not_recorded(self) -> str:
        return NOT_RECORDED


# -- how to get started -----------------------------------------------------------------


def _py(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return json.dumps(value, ensure_ascii=False)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def get_started(meta: BundleMeta, ref: str, endpoint: str = DEFAULT_ENDPOINT
                ) -> dict[str, str]:
    """How to serve the version and call it: ``serve``, ``curl`` and ``python`` snippets
    with the model's example row (from its prototype)."""
    record = meta.prototype.example_record()
    url = f"{endpoint.rstrip('/')}/predict"
    body = json.dumps([record], ensure_ascii=False, default=str)
    row = ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_py(v)}"
                    for k, v in record.items())
    port = endpoint.rsplit(":", 1)[-1].strip("/") if endpoint.count(":") == 2 else "8080"
    return {
        "serve": f"python -m core serve {_shell_quote(ref)} --port {port}",
        "curl": (f"curl -X POST {url} \\\n  -H 'Content-Type: application/json' \\\n"
                 f"  -d {_shell_quote(body)}"),
        "python": (f"import requests\n\nrows = [{{{row}}}]\n"
                   f"response = requests.post({json.dumps(url)}, json=rows)\n"
                   "response.raise_for_status()\nprint(response.json()[\"predict\"])"),
    }


def code_fence(code: str, language: str = "") -> str:
    """``code`` as a Markdown code block whose fence no backtick run inside can close.

    Quarto expands shortcodes even inside code blocks; ``{{{< … >}}}`` is its escape
    for showing one literally."""
    code = code.replace("{{<", "{{{<").replace(">}}", ">}}}")
    longest = max((len(run) for run in code.split("\n") for run in _runs(run)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code}\n{fence}"


def _runs(line: str) -> list[str]:
    runs, current = [], ""
    for ch in line:
        current = current + ch if ch == "`" else ""
        if current:
            runs.append(current)
    return runs
