"""Serve the shared benchmark model with Fixative's server (the harness's "ours").

    python bench/serve_fixative.py PORT [--dir /tmp/bench] [--log-board DIR] [--no-batching]
                                        [--engine sklearn|onnx --board DIR] [--shadow]

Builds a bundle from <dir>/model.joblib and the feature columns of
<dir>/sample.parquet (as ../shared/bench/serve_vetiver.py does for vetiver) and runs
``create_app`` under uvicorn on 127.0.0.1:PORT: one worker, access log off. With
``--log-board`` every request is also written to the prediction log on that board.

With ``--engine`` the version stored on ``--board`` (see ``store_model`` in
serve_bench.py) is loaded the way ``python -m core serve --engine ...`` loads it: the
onnx engine reads only the compiled graph and never unpickles the model.
With ``--shadow`` a challenger (a second copy of the same model, as costly as the
champion, on the same engine) scores every request in shadow mode
(:mod:`core.serving.challenger`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURES = [
    "bedrooms", "bathrooms", "sqft_living", "sqft_lot", "floors", "waterfront",
    "view", "condition", "grade", "yr_built", "zipcode", "lat", "long",
]


class LocalBoard:
    """What the prediction log needs from a store: ``fs``, ``path`` and ``is_local``."""

    is_local = True

    def __init__(self, root: str) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.fs = LocalFileSystem()
        self.root = os.path.abspath(root)
        self.url = self.root

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])


def build_app(data_dir: str, log_board: str | None, batching: bool, shadow: bool = False):
    import joblib
    import pandas as pd

    from core.model.bundle import bundle
    from core.serving.app import create_app

    model = joblib.load(os.path.join(data_dir, "model.joblib"))
    sample = pd.read_parquet(os.path.join(data_dir, "sample.parquet"))[FEATURES]
    b = bundle(model, sample, name="house_price_rf")
    b.version = "bench"
    store = LocalBoard(log_board) if log_board else None
    app = create_app(b, store=store, log=store is not None, batching=batching, tokens=[])
    if not shadow:
        return app
    from core.serving.challenger import pair_app

    other = bundle(joblib.load(os.path.join(data_dir, "model.joblib")), sample,
                   name="house_price_rf")
    other.version = "bench-challenger"
    challenger = create_app(other, store=store, log=store is not None, batching=batching,
                            tokens=[])
    return pair_app(app, challenger, b, other, mode="shadow")


def build_engine_app(board: str, engine: str, log_board: str | None, batching: bool,
                     shadow: bool = False):
    from core.serving.app import create_app
    from core.serving.process import ServeSettings, load_bundle
    from core.store.versionstore import VersionStore

    store = VersionStore(board)
    version = store.versions("house_price_rf")[-1].version
    served = load_bundle(ServeSettings(name="house_price_rf", version=version, store=board,
                                       engine=engine), store)
    assert served.engine.name == engine, served.engine.describe()
    log_store = LocalBoard(log_board) if log_board else None
    app = create_app(served.bundle, engine=served.engine, store=log_store,
                     log=log_store is not None, batching=batching, tokens=[])
    if not shadow:
        return app
    from core.serving.challenger import pair_app

    twin = load_bundle(ServeSettings(name="house_price_rf", version=version, store=board,
                                     engine=engine), store)
    twin.bundle.version = "bench-challenger"
    challenger = create_app(twin.bundle, engine=twin.engine, store=log_store,
                            log=log_store is not None, batching=batching, tokens=[])
    return pair_app(app, challenger, served.bundle, twin.bundle, mode="shadow")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--dir", default="/tmp/bench")
    ap.add_argument("--log-board", default=None)
    ap.add_argument("--no-batching", action="store_true")
    ap.add_argument("--engine", choices=("sklearn", "onnx"), default=None)
    ap.add_argument("--board", default="/tmp/bench/fxboard")
    ap.add_argument("--shadow", action="store_true")
    args = ap.parse_args()
    import uvicorn

    from core.serving.process import prepare_process

    prepare_process()  # as `python -m core serve` does
    if args.engine:
        app = build_engine_app(args.board, args.engine, args.log_board, not args.no_batching,
                               args.shadow)
    else:
        app = build_app(args.dir, args.log_board, not args.no_batching, args.shadow)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
