"""Adaptive micro-batching with a real scikit-learn model."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
import pytest

from core.errors import InternalError, PredictionFailed
from core.model.bundle import bundle
from core.serving.batching import Batcher, model_error


@pytest.fixture(scope="module")
def house(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]), name="house")


@pytest.fixture(scope="module")
def frames(house, house_data):
    full, _ = house.prototype.validate(house_data.drop(columns=["price"]).head(64))
    return [full.iloc[i:i + 1 + i % 3].reset_index(drop=True) for i in range(0, 60, 3)]


class Recorder:
    """The model's methods, recording the size of every call and on which thread."""

    def __init__(self, model, fail_when=None, gate: threading.Event | None = None):
        self.model = model
        self.entered = threading.Event()
        self.calls: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.fail_when = fail_when
        self.gate = gate

    def __call__(self, method, frame):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((method, len(frame)))
        self.threads.add(threading.current_thread().name)
        if self.fail_when is not None and self.fail_when(frame):
            raise ValueError("Input X contains a value the model rejects at /srv/app/model.py")
        return getattr(self.model, method)(frame)


def run(coro):
    return asyncio.run(coro)


def test_lone_request_runs_at_once_off_the_loop(house, frames):
    rec = Recorder(house.model)
    batcher = Batcher(rec)

    async def main():
        out = await batcher.submit("predict", frames[0])
        await batcher.close()
        return out

    out = run(main())
    assert rec.calls == [("predict", len(frames[0]))]
    assert rec.threads == {"fixative-predict_0"}
    assert threading.current_thread().name not in rec.threads
    np.testing.assert_allclose(out, house.model.predict(frames[0]))


def test_requests_queued_during_a_call_share_the_next_call(house, frames):
    gate = threading.Event()
    rec = Recorder(house.model, gate=gate)
    batcher = Batcher(rec)

    async def main():
        first = asyncio.ensure_future(batcher.submit("predict", frames[0]))
        await asyncio.sleep(0)  # the first call is now blocked in the worker
        rest = [asyncio.ensure_future(batcher.submit("predict", f)) for f in frames[1:]]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results

    results = run(main())
    assert rec.calls[0] == ("predict", len(frames[0]))
    assert rec.calls[1] == ("predict", sum(len(f) for f in frames[1:]))
    assert len(rec.calls) == 2
    for frame, out in zip(frames, results):  # each caller gets exactly its own rows
        assert len(out) == len(frame)
        np.testing.assert_allclose(out, house.model.predict(frame))


def test_batches_respect_max_rows(house, frames):
    gate = threading.Event()
    rec = Recorder(house.model, gate=gate)
    batcher = Batcher(rec, max_rows=4)

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit("predict", f)) for f in frames]
        while not rec.entered.is_set():
            await asyncio.sleep(0.001)
        gate.set()
        out = await asyncio.gather(*tasks)
        await batcher.close()
        return out

    results = run(main())
    assert all(n <= 4 for _, n in rec.calls[1:])
    assert sum(n for _, n in rec.calls) == sum(len(f) for f in frames)
    for frame, out in zip(frames, results):
        np.testing.assert_allclose(out, house.model.predict(frame))


def test_a_failing_request_does_not_fail_the_others(house, frames):
    gate = threading.Event()
    poison = frames[4]
    rec = Recorder(house.model, gate=gate,
                   fail_when=lambda f: bool((f["sqft_living"] == poison["sqft_living"][0]).any()))
    batcher = Batcher(rec)

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit("predict", f)) for f in frames[:8]]
        await asyncio.sleep(0)
        gate.set()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        return out

    results = run(main())
    for i, (frame, out) in enumerate(zip(frames[:8], results)):
        if i == 4:
            assert isinstance(out, PredictionFailed)
            assert "ValueError" in out.message and "/srv/app" not in out.message
        else:
            np.testing.assert_allclose(out, house.model.predict(frame))


def test_methods_are_never_mixed_in_one_call(churn_model, churn_data):
    b = bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn")
    full, _ = b.prototype.validate(churn_data.drop(columns=["churned"]).head(12))
    parts = [full.iloc[i:i + 2].reset_index(drop=True) for i in range(0, 12, 2)]
    gate = threading.Event()
    rec = Recorder(churn_model, gate=gate)
    batcher = Batcher(rec)
    methods = ["predict", "predict_proba"] * 3

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit(m, p)) for m, p in zip(methods, parts)]
        await asyncio.sleep(0)
        gate.set()
        out = await asyncio.gather(*tasks)
        await batcher.close()
        return out

    results = run(main())
    # all six were queued before the first call: one call per method, never mixed
    assert rec.calls == [("predict", 6), ("predict_proba", 6)]
    for m, p, out in zip(methods, parts, results):
        np.testing.assert_array_equal(out, getattr(churn_model, m)(p))


def test_batching_off_never_merges(house, frames):
    gate = threading.Event()
    rec = Recorder(house.model, gate=gate)
    batcher = Batcher(rec, enabled=False)

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit("predict", f)) for f in frames[:5]]
        await asyncio.sleep(0)
        gate.set()
        out = await asyncio.gather(*tasks)
        await batcher.close()
        return out

    run(main())
    assert [n for _, n in rec.calls] == [len(f) for f in frames[:5]]


def test_wrong_result_length_is_an_internal_error(frames):
    batcher = Batcher(lambda method, frame: np.zeros(len(frame) + 1))

    async def main():
        try:
            await batcher.submit("predict", frames[0])
        finally:
            await batcher.close()

    with pytest.raises(InternalError, match="returned 2 results for 1 rows"):
        run(main())


def test_on_batch_reports_sizes(house, frames):
    sizes = []
    batcher = Batcher(lambda m, f: house.model.predict(f),
                      on_batch=lambda r, n: sizes.append((r, n)))

    async def main():
        await batcher.submit("predict", frames[2])
        await batcher.close()

    run(main())
    assert sizes == [(1, len(frames[2]))]


def test_max_rows_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda m, f: f, max_rows=0)


def test_model_error_hides_paths():
    err = model_error(KeyError("C:\\Users\\me\\model.py and /home/me/x.py"))
    assert "/home/me" not in err.message and "Users" not in err.message
    assert err.status == 422 and err.code == "prediction_failed"


def test_a_batcher_can_be_reused_after_close(house, frames):
    batcher = Batcher(lambda m, f: house.model.predict(f))

    async def main():
        await batcher.submit("predict", frames[0])
        await batcher.close()
        out = await batcher.submit("predict", frames[1])
        await batcher.close()
        return out

    out = run(main())
    assert len(out) == len(frames[1])


def test_frames_keep_their_dtypes_when_merged(house, frames):
    seen = []
    batcher = Batcher(lambda m, f: seen.append(f.dtypes.to_dict()) or np.zeros(len(f)))
    gate_frames = frames[:3]

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit("predict", f)) for f in gate_frames]
        await asyncio.gather(*tasks)
        await batcher.close()

    run(main())
    assert all(d == gate_frames[0].dtypes.to_dict() for d in seen)
    assert isinstance(seen[0], dict) and pd.api.types.is_integer_dtype(seen[0]["bedrooms"])
