"""Checking a board: every file of every version re-hashed against what was recorded."""

from __future__ import annotations

from typing import Any


def plain_file_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def recovery(name: str, version: str) -> str:
    return (f"Restore the file from a backup, or delete the version with "
            f"'python -m core delete {name}@{version} --force'.")


def mismatch(name: str, version: str, file: str, expected: Any, actual: str,
             algo: str = "sha256") -> str:
    return (f"{name}/{version}/{file} is corrupt: its {algo} is {actual}, but {expected} was "
            f"recorded when it was written. {recovery(name, version)}")
