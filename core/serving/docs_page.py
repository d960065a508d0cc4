"""The prediction server's own documentation page (``GET /``): works offline, no CDN.

The copy-paste examples name the server by its configured public URL (``--public-url``,
``FIXATIVE_PUBLIC_URL``), or else by the address the reader's browser shows, filled in
by the page's script; never by the request's ``Host`` header, which a client chooses
(and a cache in front of the server might keep for everyone).
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from string import Template
from typing import Any

from core.errors import BadRequest
from core.model.bundle import ModelBundle

BASE_URL = "__FIXATIVE_BASE_URL__"
ROUTES = [
    ("POST /predict", "vetiver format: JSON array of records → {\"predict\": [...]}"),
    ("POST /predict_proba", "classifiers: class probabilities → {\"predict_proba\": [[...]], "
                            "\"classes\": [...]}"),
    ("POST /invocations", "MLflow format: dataframe_split, dataframe_records, instances, inputs "
                          "or text/csv → {\"predictions\": [...]}"),
    ("GET /openapi.json", "OpenAPI 3.1 description of this API"),
    ("GET /metadata", "model metadata (vetiver's shape)"),
    ("GET /prototype", "JSON schema of one input record"),
    ("GET /pin-url", "where this model version is stored"),
    ("GET /ping", "liveness (never needs a token)"),
    ("GET /healthz", "readiness (never needs a token)"),
    ("GET /metrics", "Prometheus metrics"),
]


def _template() -> Template:
    template = resources.files("core.serving").joinpath("templates", "server_docs.html")
    text = template.read_text("utf-8")
    return Template(text)


_PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/%]*)?")


def check_public_url(url: str) -> str:
    """``url`` without a trailing slash, when it is a plain http(s) URL."""
    text = str(url).strip()
    if not _PUBLIC_URL.fullmatch(text):
        raise BadRequest(f"The public URL {text[:100]!r} is not a plain http(s) URL, e.g. "
                         "https://models.example.com/house (set with --public-url or "
                         "FIXATIVE_PUBLIC_URL).")
    return text.rstrip("/")


def render_docs(bundle: ModelBundle, *, auth: bool = False, public_url: str | None = None,
                engine: str | None = None) -> str:
    """The page. The examples' server URL is ``public_url``; without one, the page's
    script writes in the address the browser shows (see :func:`with_base_url`)."""
    meta = bundle.meta
    proto = meta.prototype
    e = html.escape
    version = bundle.version or "unversioned"
    summary = [
        ("name", meta.name), ("version", version), ("model class", meta.model_class),
        ("library", meta.library), ("task", meta.task),
    ]
    if meta.classes is not None:
        summary.append(("classes", ", ".join(map(str, meta.classes))))
    if meta.description:
        summary.append(("description", meta.description))
    for key, value in sorted(meta.metrics.items()):
        summary.append((f"metric: {key}", f"{value:.6g}"))
    if engine:
        summary.append(("engine", engine))
    if meta.created:
        summary.append(("created", f"{meta.created} by {meta.user or 'unknown'}"))
    summary_rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in summary)

    schema_rows, fields = [], []
    for c in proto.columns:
        seen = ""
        if c.categories is not None:
            seen = ", ".join(map(str, c.categories[:30])) + (
                f", … ({len(c.categories)} in all)" if len(c.categories) > 30 else "")
        elif c.min is not None:
            seen = c.range_text() or ""
        example = "" if c.example is None else str(c.example)
        schema_rows.append(
            f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.kind)}</td>"
            f"<td>{'yes' if c.nullable else 'no'}</td><td>{e(seen)}</td>"
            f"<td><code>{e(example)}</code></td></tr>")
        fields.append(_field(c.name, c.kind, c.example, c.categories))
    token_field = ('<label style="margin-top:.8rem">Bearer token'
                   '<input id="token" type="password" autocomplete="off"></label>'
                   if auth else "")
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in meta.notes)
    route_rows = "\n".join(f"<tr><td><code>{e(r)}</code></td><td>{e(d)}</td></tr>"
                           for r, d in ROUTES if meta.has_proba or "proba" not in r)
    page = _template().substitute(
        title=e(f"{meta.name} · prediction API"),
        name=e(meta.name),
        subtitle=e(f"version {version} · {meta.model_class} ({meta.task}) · served by Fixative"),
        notes=notes,
        summary_rows=summary_rows,
        schema_rows="\n".join(schema_rows),
        form_fields="\n".join(fields),
        token_field=token_field,
        examples=_examples_html(examples(bundle, auth=auth)),
        route_rows=route_rows,
    )
    return with_base_url(page, public_url)


def with_base_url(page: str, base_url: str | None) -> str:
    """Each ``BASE_URL`` becomes a ``<span class="base-url">`` holding ``base_url``; left
    empty without one, for the page's script to fill with the browser's address."""
    text = html.escape(base_url.rstrip("/")) if base_url else ""
    return page.replace(BASE_URL, f'<span class="base-url">{text}</span>')


def _field(name: str, kind: str, example: Any, categories: list[Any] | None) -> str:
    e = html.escape
    attrs = f'data-column="{e(name)}" data-kind="{e(kind)}"'
    if categories is not None and len(categories) <= 200:
        options = "".join(
            f'<option{" selected" if c == example else ""}>{e(str(c))}</option>'
            for c in categories)
        control = f"<select {attrs}>{options}</select>"
    elif kind == "bool":
        control = (f'<select {attrs}><option{" selected" if example else ""}>true</option>'
                   f'<option{"" if example else " selected"}>false</option></select>')
    else:
        step = ' step="1"' if kind == "int" else (' step="any"' if kind == "float" else "")
        typ = "number" if kind in ("int", "float") else "text"
        value = "" if example is None else e(str(example))
        control = f'<input type="{typ}"{step} {attrs} value="{value}">'
    return f"<label>{e(name)} <small>({e(kind)})</small>{control}</label>"


def examples(bundle: ModelBundle, *, auth: bool = False) -> dict[str, str]:
    """Copy-paste client code (curl, Python requests, vetiver, R httr2) for ``/predict``."""
    record = bundle.meta.prototype.example_record()
    body = json.dumps([record])
    pretty = json.dumps([record], indent=2)
    url = f"{BASE_URL}/predict"
    curl_auth = ' \\\n  -H "Authorization: Bearer $FIXATIVE_TOKEN"' if auth else ""
    py_auth = ', headers={"Authorization": f"Bearer {os.environ[\'FIXATIVE_TOKEN\']}"}' \
        if auth else ""
    py_import = "import os\n" if auth else ""
    r_auth = ' |>\n  req_auth_bearer_token(Sys.getenv("FIXATIVE_TOKEN"))' if auth else ""
    df_literal = ", ".join(f"{json.dumps(k)}: [{_py_literal(v)}]" for k, v in record.items())
    vetiver_auth = ',\n    headers={"Authorization": f"Bearer {os.environ[\'FIXATIVE_TOKEN\']}"}' \
        if auth else ""
    return {
        "curl": (f"curl -X POST {url} \\\n  -H 'Content-Type: application/json'{curl_auth} "
                 f"\\\n  -d '{body.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'"),
        "Python (requests)": (
            f"{py_import}import requests\n\nrows = {pretty}\n"
            f"response = requests.post(\"{url}\", json=rows{py_auth})\n"
            "response.raise_for_status()\nprint(response.json()[\"predict\"])"),
        "Python (vetiver)": (
            f"{py_import}import pandas as pd\nimport vetiver\n\n"
            f"df = pd.DataFrame({{{df_literal}}})\n"
            f"endpoint = vetiver.vetiver_endpoint(\"{url}\")\n"
            f"print(vetiver.predict(endpoint, df{vetiver_auth}))"),
        "R (httr2)": (
            "library(httr2)\n\n"
            f"rows <- jsonlite::fromJSON('{body.replace(chr(39), chr(92) + chr(39))}')\n"
            f"resp <- request(\"{url}\") |>\n  req_body_json(rows){r_auth} |>\n"
            "  req_perform()\nresp_body_json(resp)$predict"),
    }


def _py_literal(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, bool):
        return "True" if v else "False"
    return json.dumps(v)


def _examples_html(blocks: dict[str, str]) -> str:
    e = html.escape
    out = []
    for i, (title, code) in enumerate(blocks.items()):
        out.append(f"<h3>{e(title)}</h3>"
                   f'<button type="button" class="copy" data-target="ex{i}">copy</button>'
                   f'<pre id="ex{i}">{e(code)}</pre>')
    return "\n".join(out)
