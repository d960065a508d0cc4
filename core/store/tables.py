"""Parquet that comes from outside (an upload, a file given to the CLI) is sized up before
it is read.

A Parquet file can be far smaller than the table it holds: run-length encoding stores a
million equal values in a few bytes, a dictionary page stores one long string that every
row repeats, and compression shrinks both again. A 2.6 MB file can hold 4,000 columns of
100,000 rows (3.2 GB in memory), and 500 bytes can hold 200 MB of text. So before
pandas reads one, :func:`check_parquet` reads its footer and its text columns as
dictionaries (never expanded) and works out what the table takes once read: 8 bytes (or
the type's width) per value, plus each text value's own bytes. Above
``FIXATIVE_MAX_TABLE_BYTES`` (4 GiB) the file is refused with what it would take, and so
is a file with more rows than the caller allows or with nested columns (lists, structs,
maps: an uploaded table has one value per cell), or two columns of one name. A file
whose footer cannot be read is left to the caller's reader, which refuses it with its own
message.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from core import settings
from core.errors import InvalidArgument

MAX_TABLE_BYTES_ENV = "FIXATIVE_MAX_TABLE_BYTES"
DEFAULT_MAX_TABLE_BYTES = 4 * 2**30
# What a value costs once read, beyond its own bytes for text: a pointer or a number.
VALUE_BYTES = 8


def max_table_bytes() -> int:
    """``FIXATIVE_MAX_TABLE_BYTES``: the most memory an uploaded Parquet table may take."""
    return settings.number(MAX_TABLE_BYTES_ENV, DEFAULT_MAX_TABLE_BYTES, integer=True,
                           minimum=1, unit="bytes", hint="e.g. 4294967296 for 4 GiB")


def check_parquet(data: bytes, label: str, max_rows: int | None = None) -> None:
    """Refuse (InvalidArgument, starting with ``label``, e.g. "The file 'x.parquet'") a
    Parquet file that holds nested columns, more than ``max_rows`` rows, or a table larger
    than :func:`max_table_bytes` once read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        meta, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError):
        return  # not readable as Parquet: the caller's reader says so
    rows = meta.num_rows
    if max_rows is not None and rows > max_rows:
        raise InvalidArgument(f"{label} has {rows:,} rows; at most {max_rows:,} per upload. "
                              "Split it into several files.")
    twice = [n for n, k in Counter(f.name for f in schema).items() if k > 1]
    if twice:
        raise InvalidArgument(f"{label} has more than one column named {twice[0]!r}; give "
                              "each column its own name.")
    nested = [f for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise InvalidArgument(f"{label} has nested values in column {nested[0].name!r} "
                              f"({nested[0].type}); upload a flat table, one value per cell.")
    limit = max_table_bytes()
    text = [f.name for f in schema if _is_text(f.type)]
    # a pointer per text value (its bytes are counted below), the type's width otherwise
    need = sum(rows * (VALUE_BYTES if _is_text(f.type) else max(VALUE_BYTES, _width(f.type)))
               for f in schema)
    _refuse_above(need, limit, label, rows, len(schema))
    if text:
        # the text columns' bytes as stored (decompressed) bound what reading them as
        # dictionaries takes; what they expand to is then counted without expanding them
        wanted = set(text)
        stored = sum(meta.row_group(g).column(c).total_uncompressed_size
                     for g in range(meta.num_row_groups)
                     for c in range(meta.num_columns)
                     if meta.row_group(g).column(c).path_in_schema in wanted)
        _refuse_above(need + stored, limit, label, rows, len(schema))
        try:
            table = pq.ParquetFile(pa.BufferReader(data), read_dictionary=text).read(
                columns=text, use_pandas_metadata=False)
        except (pa.ArrowException, OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise InvalidArgument(f"{label} cannot be read as Parquet ({first}); export it "
                                  "again as Parquet.") from None
        need += sum(_text_bytes(chunk) for column in table.columns for chunk in column.chunks)
        _refuse_above(need, limit, label, rows, len(schema))


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            or (pa.types.is_dictionary(kind) and _is_text(kind.value_type)))


def _width(kind: Any) -> int:
    try:
        return int(kind.byte_width)
    except ValueError:  # no fixed width (booleans are bits; dictionaries of numbers)
        return VALUE_BYTES


def _text_bytes(chunk: Any) -> int:
    """The bytes of a text chunk's values as they would be once expanded."""
    import pyarrow.compute as pc

    if hasattr(chunk, "dictionary"):
        lengths = pc.binary_length(chunk.dictionary)
        total = pc.sum(pc.take(lengths, chunk.indices)).as_py()
    else:
        total = pc.sum(pc.binary_length(chunk)).as_py()
    return int(total or 0)


def _refuse_above(need: int, limit: int, label: str, rows: int, columns: int) -> None:
    if need > limit:
        raise InvalidArgument(
            f"{label} would take about {_size(need)} in memory once read ({rows:,} rows x "
            f"{columns:,} columns), more than the {_size(limit)} an uploaded table may take "
            f"({MAX_TABLE_BYTES_ENV}). Upload fewer rows or only the columns needed.")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
