"""The automatic parts of a model card as Markdown, for the chunks of the .qmd export.

Every data value (column names, categories, user names, descriptions) goes through
:func:`core.cards.markup.literal_md`, so Pandoc shows it as it is and never interprets it.
Plots are the card's inline SVG, passed to HTML output as raw blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.cards.analyses import code_fence
from core.cards.card import MAX_HISTORY_ROWS, CardData, ColumnCard, when
from core.cards.markup import literal_md as lit
from core.cards.markup import to_qmd
from core.cards.sections import AUTOMATIC as AUTOMATIC


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
        f"- **Model:** {lit(card.model_summary or card.model_class)} from "
        f"{lit(card.library or 'an unknown library')}"
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
    if card.lineage is not None:
        out += [f"- **{lit(what.capitalize())}:** {lit(text)}"
                for what, text in card.lineage.summary]
        if card.lineage.steps:
            out.append("\n**Steps**\n")
            out.append(table(["Step", "Class"], card.lineage.steps))
        if card.lineage.params is None:
            out.append("\n**Parameters:** not recorded (this version was written before "
                       "Fixative recorded them).")
        else:
            out.append(f"\n**Parameters** ({len(card.lineage.params)})\n")
            out.append(table(["Parameter", "Value"], card.lineage.params))
    if card.history:
        rows = [(r.version + (" (this card)" if r.current else ""), when(r.created), r.user,
                 ", ".join(r.aliases), r.description)
                for r in card.history[:MAX_HISTORY_ROWS]]
        out.append("\n**Version history** (newest first)\n")
        out.append(table(["Version", "Written", "By", "Aliases", "Description"], rows))
        if len(card.history) > MAX_HISTORY_ROWS:
            out.append(f"\n…and {len(card.history) - MAX_HISTORY_ROWS} older versions.")
    return "\n".join(out)


def get_started(card: CardData) -> str:
    calls = card.get_started
    if not calls:
        return ""
    return "\n\n".join([
        "Serve this version, then send it a row (the example row from its training data):",
        code_fence(calls["serve"], "bash"), "With curl:", code_fence(calls["curl"], "bash"),
        "With Python:", code_fence(calls["python"], "python")])


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
        rec = next((e for e in card.evaluations if e.source == "recorded"), None)
        out.append("Metrics recorded with this version, computed on "
                   f"{lit(rec.on_text if rec else 'data set not recorded')}:\n")
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
    out.append(distributions(card))
    return "\n".join(out)


def _column_block(c: ColumnCard) -> str:
    text = f"**{lit(c.name)}** ({lit(c.kind)}): {lit(c.summary())}"
    if c.null_share:
        text += f"; {c.null_share:.1%} null"
    svg = c.plot_svg()
    return text + ("\n\n" + _raw_html(svg) if svg else "")


def distributions(card: CardData) -> str:
    profiled = [c for c in card.columns if c.profile]
    if not profiled:
        return ""
    out = ["\n**Distributions in training** (the reference sample)\n"]
    out += [_column_block(c) + "\n" for c in profiled]
    if card.prediction is not None:
        out.append("Predictions of this version on the reference sample:\n")
        out.append(_column_block(card.prediction))
    return "\n".join(out)


def quantitative(card: CardData) -> str:
    if not card.evaluations:
        return _missing_text(card, "evaluation")
    names = card.evaluation_metrics
    rows = [("recorded with the version" if e.source == "recorded" else "monitoring",
             e.on_text, "" if e.rows is None else f"{e.rows:,}", *(e.value(m) for m in names))
            for e in card.evaluations]
    out = ["Evaluation results, each on the data named in its row"
           + (f"; served predictions also per value of {lit(card.segment)}" if card.segment
              else "") + ":\n",
           table(["Source", "On which data", "Rows", *names], rows)]
    out += [f"\n{lit(e.note)}." for e in card.evaluations if e.note]
    if not any(e.source == "monitoring" for e in card.evaluations):
        out.append("\nNo served prediction of this version has an actual yet: upload actuals "
                   "on the Monitor page to add results on live data.")
    return "\n".join(out)


def caveats(card: CardData) -> str:
    items = [f"- {lit(n, max_chars=1000)}" for n in card.notes]
    items += [f"- {lit(m.what)} {to_qmd(m.how)}" for m in card.missing]
    if not items:
        return ""
    return "Recorded with the version or found missing:\n\n" + "\n".join(items)


_BUILDERS = {
    "model_details": model_details,
    "get_started": get_started,
    "factors": factors,
    "metrics": metrics,
    "data": data,
    "quantitative": quantitative,
    "caveats": caveats,
}


def automatic(card: CardData, key: str) -> str:
    builder = _BUILDERS.get(key)
    return builder(card) if builder else ""
