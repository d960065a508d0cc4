"""The automatic parts of a model card as Markdown, for the chunks of the .qmd export.

Every data value (column names, categories, user names, descriptions) goes through
:func:`core.cards.markup.literal_md`, so Pandoc shows it as it is and never interprets it.
Plots are the card's inline SVG, passed to HTML output as raw blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.cards import svgcharts
from core.cards.card import MAX_HISTORY_ROWS, CardData, ColumnCard, when
from core.cards.markup import literal_md as lit
from core.cards.markup import to_qmd

# Sections with something filled in from the store; the others are written by a person.
AUTOMATIC = ("model_details", "factors", "metrics", "data", "quantitative", "caveats")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A pipe table; cells are shown literally."""
    lines = ["| " + " | ".join(lit(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(lit(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _raw_html(svg: str) -> str:
    return f"```{{=html}}\n{svg}\n```"


def model_details(card: CardData) -> str:
    out = []
    if card.description:
        out.append(f"{lit(card.description, max_chars=2000)}\n")
    out += [
        f"- **Model:** {lit(card.model_class)} from {lit(card.library or 'an unknown library')}"
        f", {lit(card.task_text)}" + (", with class probabilities" if card.has_proba else ""),
        f"- **Version:** {lit(card.version or 'not stored')}"
        + (f" (aliases: {', '.join(lit(a) for a in card.aliases)})" if card.aliases else ""),
        f"- **Written by** {lit(card.user or 'unknown')} on {lit(when(card.created))}",
    ]
    if card.tags:
        out.append(f"- **Tags:** {', '.join(lit(t) for t in card.tags)}")
    if card.engine:
        out.append(f"- **Serving engine:** {lit(card.engine, max_chars=2000)}")
    env = card.environment
    if env:
        packages = ", ".join(f"{lit(k)} {lit(v)}"
                             for k, v in sorted((env.get("packages") or {}).items()))
        out.append(f"- **Environment:** Python {lit(env.get('python', '?'))}"
                   + (f" on {lit(env['platform'])}" if env.get("platform") else "")
                   + (f"; {packages}" if packages else ""))
    if card.history:
        rows = [(r.version + (" (this card)" if r.current else ""), when(r.created), r.user,
                 ", ".join(r.aliases), r.description)
                for r in card.history[:MAX_HISTORY_ROWS]]
        out.append("\n**Version history** (newest first)\n")
        out.append(table(["Version", "Written", "By", "Aliases", "Description"], rows))
        if len(card.history) > MAX_HISTORY_ROWS:
            out.append(f"\n…and {len(card.history) - MAX_HISTORY_ROWS} older versions.")
    return "\n".join(out)


def factors(card: CardData) -> str:
    groups = card.group_columns
    if not groups:
        return ("No categorical inputs with a few levels were seen in training; groups for "
                "a disaggregated evaluation would come from data outside the model's inputs.")
    items = [f"- {lit(c.name)}: {lit(c.range_text() or c.kind)}" for c in groups]
    return ("Categorical inputs that can define groups for a disaggregated evaluation:\n\n"
            + "\n".join(items))


def metrics(card: CardData) -> str:
    out = []
    if card.metrics:
        out.append("Metrics recorded with this version:\n")
        out.append(table(["Metric", "Value"], [(k, f"{v:.6g}") for k, v in card.metrics.items()]))
    else:
        out.append(_missing_text(card, "metrics"))
    names = card.metric_names()
    rows = [r for r in card.history[:MAX_HISTORY_ROWS] if r.metrics]
    if names and len(rows) > 1:
        out.append("\nAcross versions (newest first):\n")
        out.append(table(["Version", *names],
                         [(r.version, *(f"{r.metrics[m]:.6g}" if m in r.metrics else ""
                                        for m in names)) for r in rows]))
    return "\n".join(out)


def _missing_text(card: CardData, topic: str) -> str:
    for m in card.missing:
        if topic in m.what:
            return f"*{lit(m.what)}* {to_qmd(m.how)}"
    return ""


def data(card: CardData) -> str:
    out = []
    if card.n_reference_rows:
        out.append(f"The reference profile was computed from a sample of "
                   f"{card.n_reference_rows:,} training rows. ")
    else:
        out.append(_missing_text(card, "training sample") + "\n")
    out.append(f"The model takes {len(card.columns)} input column(s)"
               + ("; nulls are accepted" if card.accepts_nulls else "") + ":\n")
    rows = [(c.name, c.kind, "yes" if c.nullable else "no", c.range_text(),
             "" if c.example is None else c.example) for c in card.columns]
    out.append(table(["Column", "Kind", "Nulls", "Range or categories in training", "Example"],
                     rows))
    return "\n".join(out)


def _column_block(c: ColumnCard) -> str:
    text = f"**{lit(c.name)}** ({lit(c.kind)}): {lit(c.summary())}"
    if c.null_share:
        text += f"; {c.null_share:.1%} null"
    svg = c.plot_svg()
    return text + ("\n\n" + _raw_html(svg) if svg else "")


def quantitative(card: CardData) -> str:
    profiled = [c for c in card.columns if c.profile]
    if not profiled:
        return _missing_text(card, "training sample")
    out = ["Distributions in the reference sample:\n"]
    out += [_column_block(c) + "\n" for c in profiled]
    if card.prediction is not None:
        out.append("Predictions of this version on the reference sample:\n")
        out.append(_column_block(card.prediction))
    return "\n".join(out)


def caveats(card: CardData) -> str:
    items = [f"- {lit(n, max_chars=1000)}" for n in card.notes]
    items += [f"- {lit(m.what)} {to_qmd(m.how)}" for m in card.missing]
    if not items:
        return ""
    return "Recorded with the version or found missing:\n\n" + "\n".join(items)


def prediction_summary(predictions: Any, card: CardData) -> str:
    """A short Markdown summary of predictions made in a .qmd chunk."""
    import numpy as np
    import pandas as pd

    values = pd.Series(np.asarray(predictions).ravel())
    if card.task == "regression" or (pd.api.types.is_numeric_dtype(values)
                                     and card.task not in ("binary", "multiclass")):
        q = values.quantile([0.05, 0.5, 0.95])
        return (f"{len(values):,} predictions: mean {svgcharts.fmt_number(values.mean())}, "
                f"median {svgcharts.fmt_number(q[0.5])}, 5–95% "
                f"{svgcharts.fmt_number(q[0.05])} to {svgcharts.fmt_number(q[0.95])}.")
    shares = values.astype(str).value_counts(normalize=True)
    return (f"{len(values):,} predictions: "
            + ", ".join(f"{lit(k)} {v:.0%}" for k, v in shares.head(12).items()) + ".")


_BUILDERS = {
    "model_details": model_details,
    "factors": factors,
    "metrics": metrics,
    "data": data,
    "quantitative": quantitative,
    "caveats": caveats,
}


def automatic(card: CardData, key: str) -> str:
    builder = _BUILDERS.get(key)
    return builder(card) if builder else ""
