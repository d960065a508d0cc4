"""The sections of a model card, in order: Mitchell et al. (2019), as vetiver's template
has them, then the fields people expect from Hugging Face model cards (how to get
started, licence, citation, contact). Each is written by a person in Markdown; some
also get an automatic part from the store."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidArgument


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    prompt: str


SECTIONS: tuple[Section, ...] = (
    Section("model_details", "Model details",
            "Who developed the model and when, what it predicts and how it was built "
            "(algorithm, feature engineering, preprocessing), and what is known about its "
            "training data and code."),
    Section("get_started", "How to get started",
            "Anything a first user of the endpoint should know beyond the example call: "
            "authentication, expected latency, how to read the output."),
    Section("intended_use", "Intended use",
            "The primary uses and users the model was built for, and uses that are out of "
            "scope (decisions it must not be used for, populations it was not built for)."),
    Section("factors", "Important factors",
            "Groups, environments or instruments that may change how well the model works "
            "(e.g. region, customer segment, season, data source), and which of them were "
            "examined when evaluating it."),
    Section("metrics", "Metrics",
            "Which metrics measure the model's performance, how they were computed (test "
            "set, cross-validation, thresholds) and why they were chosen."),
    Section("data", "Training and evaluation data",
            "Where the training and evaluation data came from, the period they cover, how "
            "they were sampled and preprocessed, and why this evaluation data was chosen."),
    Section("quantitative", "Quantitative analyses",
            "Results on the evaluation data, overall and for the groups named under "
            "Important factors (disaggregated results), with their uncertainty."),
    Section("ethics", "Ethical considerations",
            "Sensitive data used, risks to people affected by the model's decisions, "
            "mitigations taken, and known harms or fairness concerns."),
    Section("caveats", "Caveats and recommendations",
            "What the model does not do, conditions under which it should not be trusted, "
            "and recommendations for monitoring, retraining or further testing."),
    Section("license", "Licence",
            "The licence under which the model may be used, e.g. 'Apache-2.0' or "
            "'internal use only', with a link to its text."),
    Section("citation", "Citation",
            "How to cite the model or the work it comes from (e.g. a BibTeX entry)."),
    Section("contact", "Contact",
            "Whom to contact with questions or problems: a person, a team or a channel."),
)
SECTION_KEYS: tuple[str, ...] = tuple(s.key for s in SECTIONS)
_BY_KEY = {s.key: s for s in SECTIONS}


def section(key: str) -> Section:
    """The card section called ``key``; :class:`InvalidArgument` naming the valid keys otherwise."""
    if key not in _BY_KEY:
        raise InvalidArgument(f"There is no card section {str(key)[:60]!r}; use one of "
                              f"{', '.join(SECTION_KEYS)}.")
    return _BY_KEY[key]
# Sections with something filled in from the store; the others are written by a person.
AUTOMATIC = ("model_details", "get_started", "factors", "metrics", "data", "quantitative",
             "caveats")
