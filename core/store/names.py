"""Names that reach the filesystem: models, aliases, versions, record kinds, references.

Every name becomes a folder or file name on the board, so only a small, portable
alphabet is allowed and nothing that could climb out of the board (``..``, ``/``,
absolute paths) or hide a file (a leading dot) gets through.
"""

from __future__ import annotations

import re

from core.errors import InvalidName

MAX_NAME_LENGTH = 128
ALLOWED = "letters, digits, '-', '_' and '.'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Names that would clash with the board's own files.
RESERVED = frozenset({".fixative", "_pins.yaml"})


def _shown(value: object) -> str:
    """The offending value as a short, printable quote (control characters escaped)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…'"


def _check(value: object, what: str, example: str) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"The {what} must be a string, got {type(value).__name__}.")
    if not value:
        raise InvalidName(f"The {what} is empty; give one such as '{example}'.")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidName(f"The {what} {_shown(value)} is {len(value)} characters long; "
                          f"use at most {MAX_NAME_LENGTH}.")
    if value in RESERVED or value.lower() in RESERVED:
        raise InvalidName(f"The {what} {_shown(value)} is reserved for the store's own files; "
                          f"choose another, such as '{example}'.")
    if not _NAME.fullmatch(value):
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
        reason = (f"it contains {', '.join(repr(c) for c in bad)}" if bad
                  else "it must start with a letter or digit")
        raise InvalidName(
            f"The {what} {_shown(value)} is not allowed: {reason}. Use {ALLOWED} only, "
            f"starting with a letter or digit (1 to {MAX_NAME_LENGTH} characters), "
            f"e.g. '{example}'.")
    return value


def validate_name(name: object) -> str:
    """A model name, returned unchanged when valid; otherwise :class:`InvalidName`."""
    return _check(name, "model name", "house-prices")


def validate_alias(alias: object) -> str:
    return _check(alias, "alias", "production")


def validate_version(version: object) -> str:
    """A version id as it appears on the board (Fixative and pins ids, or a pins raw id)."""
    return _check(version, "version", "20240503T101500Z-0a1b2")


def validate_kind(kind: object) -> str:
    """The kind of an append-only record (``card``, ``monitoring``, ``endpoint``...)."""
    return _check(kind, "record kind", "card")


def parse_ref(ref: object) -> tuple[str, str | None, str | None]:
    """Split ``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS`` into (name, version, alias)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidName("A model reference is empty; write NAME, NAME@VERSION or NAME:ALIAS, "
                          "e.g. 'houses:production'.")
    if "@" in ref:
        name, _, version = ref.partition("@")
        return validate_name(name), validate_version(version), None
    if ":" in ref:
        name, _, alias = ref.partition(":")
        return validate_name(name), None, validate_alias(alias)
    return validate_name(ref), None, None
