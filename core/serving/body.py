"""Reading a request body within the server's limits: size (413), the whole-body
deadline (408) and the slots for large bodies being read or parsed at once (429)."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request

from core.errors import (
    BadRequest,
    PayloadTooLarge,
    RequestTimeout,
    TooManyRequests,
    UnsupportedMediaType,
)
from core.serving import limits as limits_mod

# Seconds the whole request body may take to arrive before the request is answered 408.
BODY_TIMEOUT = limits_mod.BODY_TIMEOUT
# Bodies larger than this take a slot while they are read and parsed (429 when none is
# free): what a burst of large bodies may hold in memory at once is bounded.
SLOT_BYTES = 64 * 1024
# Parsing holds the GIL wherever it runs: a worker thread buys no parallelism, only lets
# the event loop answer others between its turns, and costs every request a hand-off and
# a contended GIL (~1.3 ms of a 1,000-row request's ~9.5 ms, bench/README.md). So a body
# that parses in milliseconds is parsed on the loop: any body up to LOOP_PARSE_BYTES (the
# general parser takes up to ~80 ms per MiB on hostile shapes), and typed records
# (core.serving.records, ~6 ms per MiB) up to LOOP_DECODE_BYTES; larger ones in a thread.
LOOP_PARSE_BYTES = 256 * 1024
LOOP_DECODE_BYTES = 1024 * 1024
# Seconds a client is told to wait after a 429.
RETRY_AFTER = 1


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT,
                    slots: Slots | None = None) -> tuple[bytes, bool]:
    """The body and whether it holds a parsing slot of ``slots`` (the caller gives it
    back). Refused with 413 as soon as it is known to exceed ``limit`` bytes, with 408
    when it has not arrived whole ``timeout`` seconds after the request started (one
    deadline for the whole body, so a byte now and then does not keep it open), and with
    429 when it is larger than 64 KiB and every slot is taken."""
    declared = request.headers.get("content-length")
    size = None
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("The Content-Length header is not a number.") from None
        if size > limit:
            raise _too_large(limit, size)
    started = request.scope.get("fixative", {}).get("t0", time.perf_counter())
    held = False
    if slots is not None and size is not None and size > SLOT_BYTES:
        held = slots.take()
    try:
        chunks: list[bytes] = []
        total = 0
        stream = request.stream()
        while True:
            left = timeout - (time.perf_counter() - started)
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive in time: {total:,} bytes in "
                    f"{timeout:g} s, the longest this server waits for a whole body. Send the "
                    "whole body at once (a Content-Length larger than the body also waits "
                    "for bytes that never come).") from None
            total += len(chunk)
            if total > limit:
                raise _too_large(limit, None)
            if slots is not None and not held and total > SLOT_BYTES:
                held = slots.take()
            chunks.append(chunk)
        return b"".join(chunks), held
    except BaseException:
        if held and slots is not None:
            slots.give()
        raise


class Slots:
    """Large bodies being read or parsed at once; one more is a 429, not a wait, so a
    burst of them never piles up in memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.size:
            raise TooManyRequests(
                f"The server is already reading or parsing {self.size} large request bodies; "
                f"retry in {RETRY_AFTER} s (see Retry-After), or send smaller requests.",
                [{"limit": self.size, "retry_after": RETRY_AFTER}])
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


def _too_large(limit: int, size: int | None) -> PayloadTooLarge:
    mib = limit / 2**20
    got = f" ({size / 2**20:.1f} MiB)" if size is not None else ""
    return PayloadTooLarge(
        f"The request body{got} is larger than this server's limit of {mib:.3g} MiB; send "
        "fewer rows per request, or start the server with a larger body limit.",
        [{"limit_bytes": limit}])




def check_encoding(encoding: str | None) -> None:
    if encoding and encoding.strip().lower() not in ("identity", ""):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.strip()[:40]!r} is not supported; send the body "
            "uncompressed (it may be up to the server's body limit).")
