"""Model cards (Mitchell et al., 2019): what the store knows, plus what a person wrote.

A card is data first: :func:`card_data` collects everything about one version into a
:class:`CardData` (from the version's metadata, its reference profile and the store's
history, aliases and card records), and the renderers turn it into a self-contained
HTML page (:func:`render_html`) or a Quarto document (:func:`render_qmd`).

The text a person writes for each section is Markdown, kept per version on the board
as append-only ``card`` records (``{"section": key, "text": markdown}``): the latest
record per section is the current text, the earlier ones are its edit history. The
model file is never touched, and nothing here loads (unpickles) a model.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from core.cards import analyses, markup, svgcharts
from core.cards.analyses import Evaluation, LineageCard
from core.cards.sections import AUTOMATIC, SECTIONS, Section, section
from core.cards.sections import SECTION_KEYS as SECTION_KEYS
from core.errors import FixativeError, InvalidArgument
from core.model.bundle import BundleMeta, ModelBundle, current_user
from core.store.protocols import StoreLike
from core.times import parse_iso

CARD_KIND = "card"
MAX_TEXT_CHARS = 50_000
MAX_HISTORY_ROWS = 30
QUARTO_TIMEOUT = 600


# -- the data ---------------------------------------------------------------------------


@dataclass
class ColumnCard:
    """One input column: its prototype entry and, with a sample, its reference profile."""

    name: str
    kind: str
    dtype: str = ""
    nullable: bool = False
    example: Any = None
    min: float | None = None
    max: float | None = None
    categories: list[Any] | None = None
    profile: dict[str, Any] | None = None

    @property
    def null_share(self) -> float | None:
        return None if self.profile is None else float(self.profile.get("null_share", 0.0))

    @property
    def numeric(self) -> bool:
        return self.profile is not None and self.profile.get("type") == "numeric" \
            and "edges" in self.profile

    @property
    def categorical(self) -> bool:
        return self.profile is not None and self.profile.get("type") == "categorical"

    def range_text(self) -> str:
        """Range or categories seen in training, in words."""
        if self.kind in ("int", "float") and self.min is not None:
            return f"{svgcharts.fmt_number(self.min)} to {svgcharts.fmt_number(self.max)}"
        if self.categories is not None:
            shown = ", ".join(str(c) for c in self.categories[:8])
            more = f", … ({len(self.categories)} in all)" if len(self.categories) > 8 else ""
            return shown + more
        return ""

    def summary(self) -> str:
        """Reference statistics in one line, or '' without a profile."""
        p = self.profile or {}
        if self.numeric:
            q = p.get("quantiles", {})
            return (f"mean {svgcharts.fmt_number(p.get('mean'))}, "
                    f"sd {svgcharts.fmt_number(p.get('std'))}, "
                    f"median {svgcharts.fmt_number(q.get('0.5'))}, "
                    f"5–95% {svgcharts.fmt_number(q.get('0.05'))} to "
                    f"{svgcharts.fmt_number(q.get('0.95'))}")
        if self.categorical:
            freq = p.get("frequencies", {})
            n = sum(freq.values()) + int(p.get("other", 0)) or 1
            top = ", ".join(f"{k} {v / n:.0%}" for k, v in list(freq.items())[:3])
            return f"{p.get('n_levels', len(freq))} levels; most frequent: {top}"
        return ""

    def plot_svg(self) -> str:
        """A small distribution plot (escaped SVG), or '' without a profile."""
        p = self.profile or {}
        if self.numeric:
            return svgcharts.histogram_svg(p["edges"], p["counts"], discrete=self.kind == "int",
                                           label=f"distribution of {self.name}")
        if self.categorical:
            return svgcharts.bars_svg(p.get("frequencies", {}), other=int(p.get("other", 0)),
                                      label=f"frequencies of {self.name}")
        return ""


@dataclass
class VersionRow:
    version: str
    created: datetime | None
    user: str = ""
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    current: bool = False


@dataclass
class SectionText:
    section: Section
    text: str = ""
    user: str = ""
    at: datetime | None = None
    n_edits: int = 0


@dataclass
class CardEdit:
    """One saved change of a section's text."""

    section: Section
    text: str
    previous: str
    user: str
    at: datetime | None


@dataclass
class Missing:
    """Something the card cannot show, and how to supply it."""

    what: str
    how: str


@dataclass
class ProductionMetrics:
    """How the version does in production, as an upper layer measured it (the card does
    not compute it): one row per window and metric, realized and estimated."""

    summary: str
    rows: list[dict[str, Any]]  # window_start, metric, realized, estimated, lower, upper


@dataclass
class CardData:
    name: str
    version: str | None
    board: str | None
    model_class: str
    library: str
    task: str
    classes: list[Any] | None
    has_proba: bool
    description: str
    tags: list[str]
    user: str
    created: datetime | None
    aliases: list[str]
    environment: dict[str, Any]
    prototype_source: str
    accepts_nulls: bool
    columns: list[ColumnCard]
    n_reference_rows: int | None
    prediction: ColumnCard | None
    metrics: dict[str, float]
    history: list[VersionRow]
    sections: dict[str, SectionText]
    edits: list[CardEdit]
    missing: list[Missing]
    notes: list[str]
    generated: datetime
    model_summary: str = ""
    lineage: LineageCard | None = None
    # Metrics with the data they were measured on: recorded with the version, then from
    # monitoring (overall, then per level of ``segment``).
    evaluations: list[Evaluation] = field(default_factory=list)
    segment: str | None = None
    get_started: dict[str, str] = field(default_factory=dict)
    production: ProductionMetrics | None = None
    # which engine a server of this version runs on engine auto, and how it was judged
    engine: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name

    @property
    def title(self) -> str:
        return f"Model card: {self.name}"

    @property
    def task_text(self) -> str:
        if self.task == "regression":
            return "regression"
        if self.task in ("binary", "multiclass"):
            classes = ", ".join(str(c) for c in (self.classes or [])[:12])
            more = "" if len(self.classes or []) <= 12 else ", …"
            return f"{self.task} classification ({classes}{more})"
        return "unknown task"

    @property
    def group_columns(self) -> list[ColumnCard]:
        """Categorical inputs with few levels: natural groups for disaggregated results."""
        out = []
        for c in self.columns:
            levels = len(c.categories) if c.categories is not None else None
            if c.kind in ("category", "bool") and (levels is None or 2 <= levels <= 30):
                out.append(c)
        return out

    def metric_names(self) -> list[str]:
        """Metric names of this version first, then any others recorded in the history."""
        names = list(self.metrics)
        for row in self.history:
            names.extend(k for k in row.metrics if k not in names)
        return names

    def text(self, key: str) -> str:
        return self.sections[key].text

    @property
    def evaluation_metrics(self) -> list[str]:
        return analyses.metric_names(self.evaluations)


def _columns(meta: BundleMeta) -> list[ColumnCard]:
    profiles = (meta.profile or {}).get("columns", {})
    return [ColumnCard(name=c.name, kind=c.kind, dtype=c.dtype, nullable=c.nullable,
                       example=c.example, min=c.min, max=c.max, categories=c.categories,
                       profile=profiles.get(c.name))
            for c in meta.prototype.columns]


def _prediction(meta: BundleMeta) -> ColumnCard | None:
    p = (meta.profile or {}).get("prediction")
    if not p:
        return None
    kind = "float" if p.get("type") == "numeric" else "category"
    return ColumnCard(name="prediction", kind=kind, profile=p,
                      min=p.get("min"), max=p.get("max"))


def _missing(meta: BundleMeta, version: str | None, evaluated: bool) -> list[Missing]:
    out: list[Missing] = []
    if meta.profile is None:
        out.append(Missing(
            "No training sample was stored with this version, so the card cannot show "
            "column ranges, categories or distributions, and drift cannot be measured.",
            "Write the version again with a sample of the training features: "
            f"`python -m core write MODEL_FILE --name {meta.name} --sample FILE` (or "
            "`sample=` in `core.bundle(...)`)."))
    if not meta.metrics:
        out.append(Missing(
            "No metrics were recorded with this version, so the card cannot report its "
            "performance.",
            "Write the version again with its evaluation results, e.g. "
            f"`python -m core write MODEL_FILE --name {meta.name} --metric rmse=41200 "
            "--metric r2=0.87` (or `metrics=` in `core.bundle(...)`), and describe "
            "them under Metrics."))
    if not evaluated:
        out.append(Missing(
            "No evaluation results: nothing was recorded about this version's performance "
            "and no served prediction of it has an actual yet.",
            "Record metrics with the data set they were computed on (`metrics=` and "
            "`metrics_data=` in `core.bundle(...)`, or `--metric` and `--metrics-data` of "
            "`python -m core write`), or upload actuals on the Monitor page."))
    if version is None:
        out.append(Missing(
            "This model has not been written to a store: the card has no version id, "
            "history or written sections.",
            "Write it with `store.write(bundle)` or `python -m core write MODEL_FILE --name "
            f"{meta.name}`, then edit the card on the workbench's Card page."))
    return out


def _sections(records: Sequence[Any]) -> tuple[dict[str, SectionText], list[CardEdit]]:
    texts = {s.key: SectionText(s) for s in SECTIONS}
    edits: list[CardEdit] = []
    for rec in records:  # oldest first
        payload = getattr(rec, "payload", {}) or {}
        key = payload.get("section")
        if key not in texts or not isinstance(payload.get("text"), str):
            continue  # records from a newer or foreign writer: ignored, never fatal
        current = texts[key]
        edits.append(CardEdit(current.section, payload["text"], current.text,
                              getattr(rec, "user", "") or "", getattr(rec, "at", None)))
        current.text = payload["text"]
        current.user = getattr(rec, "user", "") or ""
        current.at = getattr(rec, "at", None)
        current.n_edits += 1
    edits.reverse()  # newest first
    return texts, edits


def _history(versions: Sequence[Any], current: str | None,
             aliases: Mapping[str, str]) -> list[VersionRow]:
    rows = []
    for v in reversed(list(versions)):  # newest first
        rows.append(VersionRow(
            version=v.version, created=getattr(v, "created", None),
            user=getattr(v, "user", "") or "", description=getattr(v, "description", "") or "",
            metrics=dict(getattr(v, "metrics", {}) or {}),
            aliases=sorted(a for a, target in aliases.items() if target == v.version),
            current=v.version == current))
    return rows


def _engine(store: StoreLike, name: str, version: str) -> str:
    """The serving engine of a version on engine auto, with what the choice rests on."""
    from core.store.compile import summary, verified

    try:
        report = store.compiled(name, version)
    except FixativeError as exc:
        return f"scikit-learn (the compiled graph is unreadable: {exc.message})"
    serves = "ONNX graph (onnxruntime)" if verified(report) else "scikit-learn"
    return f"{serves}; compiled graph {summary(report)}"


def _build(meta: BundleMeta, *, version: str | None, board: str | None,
           versions: Sequence[Any] = (), aliases: Mapping[str, str] | None = None,
           records: Sequence[Any] = (), evaluations: Sequence[Mapping[str, Any]] = (),
           segment: str | None = None, endpoint: str | None = None,
           engine: str = "") -> CardData:
    aliases = dict(aliases or {})
    texts, edits = _sections(records)
    notes = [n for n in meta.notes if n]
    found = [e for e in [analyses.recorded(meta)] if e] + analyses.from_monitoring(evaluations)
    ref = f"{meta.name}@{version}" if version else meta.name
    return CardData(
        name=meta.name, version=version, board=board, model_class=meta.model_class,
        library=meta.library, task=meta.task, classes=meta.classes, has_proba=meta.has_proba,
        description=meta.description, tags=list(meta.tags), user=meta.user,
        created=parse_iso(meta.created),
        aliases=sorted(a for a, v in aliases.items() if v == version and version),
        environment=dict(meta.environment), prototype_source=meta.prototype.source,
        accepts_nulls=meta.prototype.accepts_nulls, columns=_columns(meta),
        n_reference_rows=(meta.profile or {}).get("n_rows"), prediction=_prediction(meta),
        metrics=dict(meta.metrics), history=_history(versions, version, aliases),
        sections=texts, edits=edits, missing=_missing(meta, version, bool(found)), notes=notes,
        generated=datetime.now(UTC), model_summary=meta.model_summary,
        lineage=LineageCard.of(meta), evaluations=found, segment=segment,
        get_started=analyses.get_started(meta, ref, endpoint or analyses.DEFAULT_ENDPOINT),
        engine=engine)


def card_data(store: StoreLike, name: str, version: str | None = None, *,
              evaluations: Sequence[Mapping[str, Any]] = (), segment: str | None = None,
              endpoint: str | None = None,
              production: ProductionMetrics | None = None) -> CardData:
    """Everything the card of ``name@version`` shows (the latest version when None).

    ``evaluations`` are monitoring results (:func:`core.monitoring.evaluation.evaluate`,
    per level of ``segment`` if one was chosen); ``endpoint`` is the server address the
    "How to get started" example calls; ``production``: its realized and estimated
    metrics in production, measured by the caller."""
    if version is None:
        name, version = store.resolve(name)
    meta = store.meta(name, version)
    card = _build(meta, version=version, board=store.url, versions=store.versions(name),
                  aliases=store.aliases(name),
                  records=store.records(CARD_KIND, name, version), evaluations=evaluations,
                  segment=segment, endpoint=endpoint, engine=_engine(store, name, version))
    card.production = production
    return card


def card_data_from_bundle(bundle: ModelBundle, store: StoreLike | None = None) -> CardData:
    """The card of a bundle in memory; with ``store`` (and a version), also its history."""
    version = bundle.version
    if store is None or version is None:
        return _build(bundle.meta, version=version, board=getattr(store, "url", None))
    return _build(bundle.meta, version=version, board=store.url,
                  versions=store.versions(bundle.name), aliases=store.aliases(bundle.name),
                  records=store.records(CARD_KIND, bundle.name, version),
                  engine=_engine(store, bundle.name, version))


def save_section(store: StoreLike, name: str, version: str, key: str, text: str,
                 user: str | None = None) -> Any | None:
    """Record a new text for one section; None (and nothing written) when unchanged.

    The version must exist. The text is Markdown; it is stored as written (control
    characters removed) and made safe only when rendered.
    """
    sec = section(key)
    if not isinstance(text, str):
        raise InvalidArgument(f"The text of '{sec.title}' must be a string, got "
                              f"{type(text).__name__}.")
    text = markup.clean(text)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidArgument(f"The text of '{sec.title}' has {len(text):,} characters; a card "
                              f"section holds at most {MAX_TEXT_CHARS:,}. Shorten it or link to "
                              "a longer document.")
    store.meta(name, version)  # NotFound for a version that does not exist
    records = store.records(CARD_KIND, name, version)
    current, _ = _sections(records)
    if current[key].text == text:
        return None
    return store.add_record(CARD_KIND, name, {"section": key, "text": text},
                            version=version, user=user or current_user())


# -- rendering --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _template(filename: str, autoescape: bool) -> jinja2.Template:
    source = resources.files("core.cards").joinpath("templates", filename).read_text("utf-8")
    env = jinja2.Environment(autoescape=autoescape, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = svgcharts.fmt_number
    env.filters["when"] = when
    env.filters["md_html"] = lambda text: Markup(markup.to_html(text))
    env.filters["qmd_text"] = markup.to_qmd
    env.filters["md_literal"] = markup.literal_md
    env.filters["pyrepr"] = repr
    env.filters["yaml_str"] = _yaml_str
    return env.from_string(source)


def when(at: datetime | None) -> str:
    if at is None:
        return "unknown time"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _yaml_str(value: Any) -> str:
    import json

    # a JSON string is a valid YAML scalar, whatever it holds
    return json.dumps(markup.clean(value), ensure_ascii=False)


def render_html(card: CardData, *, fragment: bool = False) -> str:
    """The card as one self-contained, print-friendly HTML document.

    No scripts and no external resources: plots are inline SVG, styles inline, and
    a Content-Security-Policy forbids loading anything. ``fragment=True`` returns
    only the styled ``<div>`` (for embedding in a page that has its own ``<head>``), with
    the plots as ``data:`` images, which HTML sanitisers keep.
    """
    packages = sorted((card.environment.get("packages") or {}).items())
    plot = _as_image if fragment else Markup
    return _template("card.html", True).render(
        card=card, sections=SECTIONS, fragment=fragment, packages=packages, plot=plot,
        max_rows=MAX_HISTORY_ROWS,
        trend=_trend_svgs(card))


def _as_image(svg: str) -> Markup:
    """An SVG as an ``<img>`` data URI: pages that sanitise inline SVG away keep images."""
    if not svg:
        return Markup("")
    label = re.search(r'aria-label="([^"]*)"', svg)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Markup('<img src="data:image/svg+xml;base64,{}" alt="{}">').format(
        Markup(data), Markup(label.group(1) if label else ""))


def _trend_svgs(card: CardData) -> dict[str, str]:
    out: dict[str, str] = {}
    for metric in card.metric_names():
        points = [(r.version, r.metrics[metric]) for r in reversed(card.history)
                  if metric in r.metrics]
        if len(points) >= 2:
            out[metric] = svgcharts.trend_svg(points, label=f"{metric} by version")
    return out


def render_qmd(card: CardData) -> str:
    """The card as a Quarto document that rebuilds the automatic parts from the store.

    Its Python chunks open the store at ``card.board``, load the version and print
    the automatic content; the person-written text sits in place as Markdown, made
    inert (see :func:`core.cards.markup.to_qmd`).
    """
    if card.version is None or card.board is None:
        raise InvalidArgument(f"Model '{card.name}' has not been written to a store, so a Quarto "
                              "document could not load it; write it first (store.write(bundle)).")
    return _template("card.qmd", False).render(card=card, sections=SECTIONS, automatic=AUTOMATIC)


def card_html_for_bundle(bundle: ModelBundle, store: StoreLike | None = None) -> str:
    """The HTML card of a served bundle (for a prediction server's ``GET /card``)."""
    return render_html(card_data_from_bundle(bundle, store))


# Loading nothing from outside is the card's own rule; the header makes the browser
# enforce it for the served page as well.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'self'")


def card_route(bundle: ModelBundle, store: StoreLike | None = None) -> Any:
    """A Starlette endpoint serving the bundle's card (``Route("/card", card_route(...))``).

    The card is rendered per request, so texts written after the server started show
    up; if the store cannot be read, the card falls back to what the bundle knows.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse

    def render() -> str:
        if store is not None and bundle.version is not None:
            try:
                return card_html_for_bundle(bundle, store)
            except Exception as exc:  # an unreachable board must not take the card down
                logging.getLogger(__name__).warning(
                    "card of %s without the store's texts and history: %s", bundle.name, exc)
        return card_html_for_bundle(bundle)

    async def endpoint(request: Any) -> Any:
        html = await run_in_threadpool(render)
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP,
                                           "X-Content-Type-Options": "nosniff"})

    return endpoint


# -- Quarto -----------------------------------------------------------------------------


def quarto_path() -> str | None:
    """The ``quarto`` executable on PATH, or None."""
    return shutil.which("quarto")


def render_with_quarto(qmd_path: str | os.PathLike[str]) -> Path:
    """Render a ``.qmd`` card to HTML with the Quarto CLI; returns the HTML file.

    The document's chunks run with this Python and this project importable.
    """
    quarto = quarto_path()
    if quarto is None:
        raise InvalidArgument("Quarto is not installed (no 'quarto' on PATH), so the .qmd cannot "
                              "be rendered here. Install Quarto (https://quarto.org) or use the "
                              "built-in HTML card instead.")
    qmd = Path(qmd_path).resolve()
    if not qmd.is_file():
        raise InvalidArgument(f"There is no Quarto document at {qmd}; export the card as .qmd "
                              "first.")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "QUARTO_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([quarto, "render", qmd.name, "--to", "html"], cwd=qmd.parent,
                              env=env, capture_output=True, text=True, timeout=QUARTO_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InvalidArgument(f"quarto render did not finish within {QUARTO_TIMEOUT} s.") from None
    out = qmd.with_suffix(".html")
    if done.returncode != 0 or not out.is_file():
        tail = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise InvalidArgument(f"quarto render failed (exit {done.returncode}): {tail[:500]}")
    return out
