"""The Card page's card: the card data with the monitoring results it cannot fetch itself.

Cards and monitoring do not import each other; this module, above both, runs the
evaluation on the logged rows with actuals and hands the results to the card.
"""

from __future__ import annotations

import logging
from typing import Any

from core.cards import card as cards
from core.errors import FixativeError
from core.model.bundle import BundleMeta
from core.monitoring import evaluation

log = logging.getLogger(__name__)
# Kinds of input column whose values make groups for per-segment results.
SEGMENT_KINDS = ("category", "bool", "string", "int")


def segment_choices(meta: BundleMeta) -> list[str]:
    """Input columns a person can break the results down by."""
    return [c.name for c in meta.prototype.columns if c.kind in SEGMENT_KINDS]


def card_for(store: Any, name: str, version: str, segment: str | None = None
             ) -> tuple[cards.CardData, str | None]:
    """The card of ``name@version`` with its monitoring results, and a problem to show
    when they could not be computed (the card then shows the recorded metrics only)."""
    problem = None
    try:
        results = evaluation.evaluate(store, name, version, segment=segment)
    except FixativeError as exc:
        results, problem = [], f"The results on served predictions are left out: {exc.message}"
    except Exception as exc:  # a damaged log segment must not take the card down
        log.warning("evaluation of %s@%s failed: %s", name, version, exc)
        results, problem = [], ("The results on served predictions are left out: the "
                                f"prediction log could not be read ({type(exc).__name__}).")
    return cards.card_data(store, name, version, evaluations=results, segment=segment), problem
