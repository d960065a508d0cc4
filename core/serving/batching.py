"""Adaptive micro-batching: requests that arrive while the model is busy share a call.

A request that finds the model idle goes straight to a worker thread: nobody waits
for company. While that call runs, later requests queue; when it returns, everything
queued (up to ``max_rows`` rows) is concatenated into one frame and predicted in one
call, and each caller gets exactly its own slice of the result. Under load this turns
N per-call overheads (for a scikit-learn pipeline most of a single-row ``predict``)
into one, while a lone request pays nothing extra.

Every request is validated on its own before it is queued, so a batch only holds
frames that passed validation. If a merged call still raises, each request of the
batch is predicted on its own, so only the requests that fail by themselves fail.

Prediction always runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import FixativeError, InternalError, PredictionFailed
from core.model.columns import as_frame

# Model methods the server may call.
METHODS = ("predict", "predict_proba")
# Event-loop rounds granted before each model call (see _drain).
YIELDS = 4
_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?(?:[/\\]+[\w.\-~+@]+){2,}")


@dataclass(frozen=True)
class Outcome:
    """One request's results, and the frame the model was called with (its own, or the
    merged batch holding its rows at ``start:start + len(values)``)."""

    values: np.ndarray
    frame: pd.DataFrame
    start: int


@dataclass
class _Item:
    method: str
    frame: pd.DataFrame
    future: asyncio.Future[Outcome]
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.frame)


class Batcher:
    """Runs ``call(method, frame) -> array`` (one result row per input row) off the loop.

    A ``call`` that also has ``call_many(method, frames) -> [array, ...]`` predicts a
    batch from the requests' own frames (the onnx engine joins their graph inputs, far
    cheaper than joining frames); each request then logs its own frame.

    ``on_batch(n_requests, n_rows)`` is called after each model call (for metrics).
    """

    def __init__(self, call: Callable[[str, Any], Any], *, enabled: bool = True,
                 max_rows: int = 10_000,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        if max_rows < 1:
            raise ValueError("max_batch_rows must be at least 1")
        self._call = call
        self.enabled = enabled
        self.max_rows = int(max_rows)
        self._on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        # One thread: calls are CPU-bound and hold the GIL, so more threads would only
        # interleave them; with batching off, calls still never block the loop.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="fixative-predict")
        return self._executor

    async def submit(self, method: str, frame: pd.DataFrame) -> np.ndarray:
        """Predict ``frame`` with ``method``; returns exactly ``len(frame)`` results."""
        return (await self.submit_traced(method, frame)).values

    async def submit_traced(self, method: str, frame: pd.DataFrame) -> Outcome:
        """As :meth:`submit`, also saying which frame the model saw (``frame`` itself, or
        the batch it was merged into, at rows ``start:start+len(frame)``)."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            return await loop.run_in_executor(self._pool(), self._single, method, frame)
        item = _Item(method, frame, loop.create_future())
        self._queue.append(item)
        if not self._busy:
            self._busy = True
            self._drainer = loop.create_task(self._drain())
        return await item.future

    async def close(self) -> None:
        """Finish queued work, then stop the worker thread."""
        if self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- internals -----------------------------------------------------------------------

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._take()
                try:
                    results = await loop.run_in_executor(self._pool(), self._run, batch)
                except BaseException as exc:  # pragma: no cover - the worker catches errors
                    results = [exc] * len(batch)
                for item, result in zip(batch, results):
                    if item.future.done():  # the caller went away
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
                # Before the next call, let the loop finish reading the requests that
                # arrived during this one (a few scheduling rounds, no timer): fuller
                # batches under load; the first request of a quiet spell never waits.
                for _ in range(YIELDS):
                    await asyncio.sleep(0)
        finally:
            self._busy = False

    def _take(self) -> list[_Item]:
        """The oldest request plus every queued request for the same method that fits."""
        first = self._queue.popleft()
        batch, rows, keep = [first], first.rows, deque[_Item]()
        while self._queue:
            item = self._queue.popleft()
            if item.method == first.method and rows + item.rows <= self.max_rows:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._queue.extendleft(reversed(keep))
        return [i for i in batch if not i.future.done()] or [first]

    def _run(self, batch: list[_Item]) -> list[Any]:
        """Worker thread: one merged call, or per-request calls if the merged one fails."""
        method = batch[0].method
        if len(batch) == 1:
            return [self._guarded(method, batch[0].frame)]
        many = getattr(self._call, "call_many", None)
        try:
            if many is not None:  # the engine merges its own inputs: no merged frame
                parts = many(method, [i.frame for i in batch])
                if [len(p) for p in parts] != [i.rows for i in batch]:
                    raise InternalError(f"The engine's {method} returned the wrong number "
                                        "of results for a batch.")
                outcomes = [Outcome(np.asarray(p), i.frame, 0) for p, i in zip(parts, batch)]
            else:
                merged = pd.concat([as_frame(i.frame) for i in batch], ignore_index=True)
                out = self._checked(method, merged)
                starts = np.concatenate([[0], np.cumsum([i.rows for i in batch])[:-1]])
                outcomes = [Outcome(part, merged, int(start))
                            for part, start in zip(np.split(out, starts[1:]), starts)]
        except Exception:
            return [self._guarded(method, i.frame) for i in batch]
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(i.rows for i in batch))
        return outcomes

    def _single(self, method: str, frame: pd.DataFrame) -> Outcome:
        result = self._guarded(method, frame)
        if isinstance(result, BaseException):
            raise result
        return result

    def _guarded(self, method: str, frame: pd.DataFrame) -> Any:
        try:
            out = self._checked(method, frame)
        except FixativeError as exc:
            return exc
        except Exception as exc:
            return model_error(exc)
        if self._on_batch is not None:
            self._on_batch(1, len(frame))
        return Outcome(out, frame, 0)

    def _checked(self, method: str, frame: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self._call(method, frame))
        if out.ndim == 0 or len(out) != len(frame):
            raise InternalError(
                f"The model's {method} returned {out.shape[0] if out.ndim else 'a scalar'} "
                f"results for {len(frame)} rows; it must return one per row.")
        return out


def model_error(exc: Exception) -> FixativeError:
    """An exception raised inside the model as a 422 that names it, without server paths."""
    text = _PATHLIKE.sub("<path>", str(exc))[:300]
    return PredictionFailed(
        f"The model could not predict on this input ({type(exc).__name__}: {text}). "
        "Check the values against GET /prototype.",
        [{"problem": "prediction_failed", "exception": type(exc).__name__}])
