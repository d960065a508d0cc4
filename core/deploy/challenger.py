"""The challenger of a local endpoint: checked and pinned to a version before any server
starts, and described from the endpoint's record (how it runs: see
:mod:`core.serving.challenger`; changing it on a running endpoint:
:func:`core.deploy.endpoints.set_challenger`).

An endpoint records its challenger in ``options["challenger"]`` as ``["shadow",
"NAME@VERSION"]`` or ``["canary", "NAME@VERSION:SHARE%"]``: the ``serve`` flag and its
value, so the same server can be started again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import FixativeError, InvalidArgument, InvalidName
from core.model.bundle import ModelBundle
from core.serving.challenger import MODES, check_pair, parse_canary, parse_share
from core.serving.engine import wants_graph
from core.store.names import validate_name, validate_version
from core.store.protocols import StoreLike

# Longer challenger arguments are refused before anything reads them.
MAX_ARGUMENT = 400


@dataclass(frozen=True)
class ChallengerOption:
    """A challenger as an endpoint runs it: ``mode`` shadow or canary, the pinned
    ``name@version``, and the canary's ``share`` of requests (None in shadow mode)."""

    mode: str
    name: str
    version: str
    share: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def flag(self) -> tuple[str, str]:
        """The ``serve`` flag and its value: ``("canary", "churn@v2:10%")``."""
        if self.share is None:
            return (self.mode, self.ref)
        return (self.mode, f"{self.ref}:{self.share * 100:g}%")

    @property
    def text(self) -> str:
        if self.share is None:
            return f"{self.ref} in shadow (scores every request in the background)"
        return f"{self.ref} as a canary (answers {self.share * 100:.4g}% of requests)"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "name": self.name, "version": self.version,
                "share": self.share}


def recorded_challenger(options: Mapping[str, Any]) -> ChallengerOption | None:
    """The challenger in an endpoint's recorded ``options`` (None without one, or when the
    record holds something this module did not write)."""
    flag = options.get("challenger")
    if not (isinstance(flag, (list, tuple)) and len(flag) == 2 and flag[0] in MODES
            and isinstance(flag[1], str)):
        return None
    try:
        if flag[0] == "shadow":
            ref, share = flag[1], None
        else:
            ref, share = parse_canary(flag[1])
        name, _, version = ref.partition("@")
        validate_name(name)
        validate_version(version)
    except (InvalidArgument, InvalidName):
        return None
    return ChallengerOption(str(flag[0]), name, version, share)


def check_challenger_trust(store: StoreLike, name: str, version: str,
                           trusted: Sequence[str]) -> None:
    """A challenger served from its verified graph is never unpickled; otherwise its
    model file must be safe or trusted, as the champion's."""
    from core.safety.loader import refuse_untrusted

    if not wants_graph("auto", store.compiled(name, version)):
        refuse_untrusted(store.safety_report(name, version), trusted, f"{name}@{version}")


def _argument(value: object, flag: str) -> str:
    text = str(value).strip()
    if not text:
        raise InvalidArgument(f"--{flag} is empty; give the challenger as "
                              + ("REF, e.g. churn@v2." if flag == "shadow"
                                 else "REF:SHARE, e.g. churn@v2:10%."))
    if len(text) > MAX_ARGUMENT:
        raise InvalidArgument(f"--{flag} is {len(text)} characters long; a challenger is a "
                              f"model reference of at most {MAX_ARGUMENT} characters.")
    return text


def challenger_option(store: StoreLike, champion: tuple[str, str], *,
                      shadow: str | None = None, canary: str | None = None,
                      share: Any = None, trusted: Sequence[str] = ()
                      ) -> ChallengerOption | None:
    """The challenger given as ``shadow`` (a REF) or ``canary`` (``REF:SHARE``, or a REF
    with ``share``), resolved to a version and checked against the ``champion``
    (name, version) before any server starts: the same prototype and task (only the
    metadata is read, never the model file), and a safe or trusted model file unless
    it is served from its verified graph. None without a challenger."""
    if shadow is not None and canary is not None:
        raise InvalidArgument("Give a shadow or a canary challenger, not both.")
    if shadow is None and canary is None:
        return None
    if shadow is not None:
        ref, mode, fraction = _argument(shadow, "shadow"), "shadow", None
    else:
        text = _argument(canary, "canary")
        if share is None:
            ref, fraction = parse_canary(text)
        else:
            ref, fraction = text, parse_share(share)
        mode = "canary"
    name, version = store.resolve(ref)
    check_challenger_trust(store, name, version, trusted)
    champ_name, champ_version = champion
    check_pair(ModelBundle(model=None, meta=store.meta(champ_name, champ_version),
                           version=champ_version),
               ModelBundle(model=None, meta=store.meta(name, version), version=version), mode)
    return ChallengerOption(mode, name, version, fraction)


def challenger_candidates(store: StoreLike, name: str, version: str, *, limit: int = 200
                          ) -> list[str]:
    """Versions that could challenge ``name@version``, as ``NAME@VERSION``: the model's
    other versions (newest first), then versions of other models with the same
    prototype and task. Only metadata is read; at most ``limit`` are returned."""
    champion = ModelBundle(model=None, meta=store.meta(name, version), version=version)
    found: list[str] = []
    models = [name] + sorted(m.name for m in store.list_models() if m.name != name)
    for model in models:
        for info in sorted(store.versions(model), key=lambda v: v.created, reverse=True):
            if model == name and info.version == version:
                continue
            if model != name and info.task != champion.meta.task and "unknown" not in (
                    info.task, champion.meta.task):
                continue
            try:
                other = ModelBundle(model=None, meta=store.meta(model, info.version),
                                    version=info.version)
                check_pair(champion, other, "shadow")
            except FixativeError:  # another prototype, or a version that cannot be read
                continue
            found.append(f"{model}@{info.version}")
            if len(found) >= limit:
                return found
    return found
