"""A Docker bundle that serves a champion with a challenger (``--shadow`` / ``--canary``).

The challenger gets its own version folder in the bundle (``challenger/``) next to the
champion's (``model/``), and ``serve.json`` names it with its mode and share, so the
image's command serves the pair (see :mod:`core.serving.challenger`). Before anything
is written, the pair is checked as ``serve`` checks it: the same task and prototype,
and the challenger's model file safe or trusted unless it is served from its verified
graph. The image's requirements cover both versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidArgument
from core.model.bundle import BundleMeta, ModelBundle

CHALLENGER_DIR = "challenger"


@dataclass(frozen=True)
class PlannedChallenger:
    """The challenger of a bundle, checked: what to copy and how it runs."""

    name: str
    version: str
    meta: BundleMeta
    lines: list[str]  # its requirement lines
    graph: bool  # served from its compiled graph
    mode: str
    share: float | None

    def settings(self) -> dict[str, Any]:
        """The ``challenger`` entry of ``serve.json``."""
        return {"name": self.name, "version": self.version, "mode": self.mode,
                "share": self.share, "model_dir": CHALLENGER_DIR,
                "engine": "onnx" if self.graph else "sklearn"}

    def label(self) -> str:
        how = ("shadow" if self.share is None else f"canary {self.share * 100:.4g}%")
        return f"{self.name}@{self.version} ({how})"


def parse_request(shadow: str | None, canary: str | None) -> tuple[str, str, float | None] | None:
    """(ref, mode, share) from ``shadow`` (a REF) or ``canary`` (``REF:SHARE``), None when
    neither is given."""
    from core.serving.challenger import parse_canary

    if shadow is not None and canary is not None:
        raise InvalidArgument("Give a challenger with --shadow or with --canary, not both.")
    if shadow is not None:
        ref = str(shadow).strip()
        if not ref:
            raise InvalidArgument("--shadow needs the challenger, e.g. --shadow churn@v2.")
        return ref, "shadow", None
    if canary is not None:
        ref, share = parse_canary(str(canary))
        return ref, "canary", share
    return None


def plan(store: Any, champion: tuple[str, str, BundleMeta], request: tuple[str, str,
         float | None], *, trusted: Sequence[str], engine: str, with_s3: bool
         ) -> PlannedChallenger:
    """Check the challenger of ``request`` against ``champion`` (name, version, metadata)
    and say what the bundle needs for it; raises before anything is written."""
    from core.deploy.docker import preflight
    from core.serving.challenger import check_pair

    ref, mode, share = request
    name, version, meta, lines, graph = preflight(store, ref, with_s3=with_s3,
                                                  trusted=trusted, engine=engine)
    c_name, c_version, c_meta = champion
    check_pair(ModelBundle(model=None, meta=c_meta, version=c_version),
               ModelBundle(model=None, meta=meta, version=version), mode)
    return PlannedChallenger(name, version, meta, lines, graph, mode, share)


def _key(line: str) -> str:
    return line.split("==", 1)[0].strip().lower().replace("_", "-").replace(".", "-")


def merge_requirements(first: Sequence[str], second: Sequence[str], *, who: str) -> list[str]:
    """The requirement lines of both versions, one pin per package; two different pins
    of one package cannot go in one image, so they are refused."""
    pins: dict[str, str] = {}
    for line in [*first, *second]:
        key = _key(line)
        if key in pins and pins[key].split(";")[0].strip() != line.split(";")[0].strip():
            raise InvalidArgument(
                f"The champion and the challenger {who} need different versions of "
                f"{key} ({pins[key].split(';')[0].strip()} and {line.split(';')[0].strip()}); "
                "one image holds one. Save both with the same version of it, or serve the "
                "challenger from its compiled graph (python -m core compile).")
        pins.setdefault(key, line)
    return [pins[k] for k in sorted(pins)]


def readme_section(planned: PlannedChallenger, champion: str) -> str:
    if planned.mode == "shadow":
        what = (f"The champion {champion} answers every request; once it has answered, the\n"
                f"challenger {planned.name}@{planned.version} scores the same request in the\n"
                "background (what it answers, how long it takes and whether it fails never\n"
                "reach the caller).")
    else:
        share = f"{(planned.share or 0) * 100:.4g}%"
        what = (f"The challenger {planned.name}@{planned.version} answers {share} of the "
                f"prediction\nrequests and the champion {champion} the rest. With an "
                "`X-Fixative-Key` header\nthe side is a hash of the key and the share, so "
                "one key always goes the same\nway, in every container; each answer "
                "says who gave it in `X-Fixative-Role`.")
    engine = ("its compiled graph (never unpickled)" if planned.graph
              else "its model file, checked for unsafe contents before it is loaded")
    return f"""\
## Champion and challenger ({planned.mode})

{what}
The challenger is served from {engine}.
With `FIXATIVE_STORE` set, both log their predictions under their own version with the
same request id and a `serving_role` column (champion / challenger); compare them with
`python -m core monitor {planned.name} --what comparison` once actuals are uploaded.
`GET /metadata` has a `challenger` section, and each container's heartbeat names its
challenger (`python -m core endpoints list --all`).
"""
