"""A store shared by the endpoint and Docker bundle tests: the house model under alias
``production``, and a model whose class is not on the safety allowlist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.model.bundle import bundle
from core.store.versionstore import VersionStore


class HandMade:
    """A model whose class lives in a test module: not on the safety allowlist."""

    n_features_in_ = 2

    def predict(self, x):
        return np.zeros(len(x))


def deploy_store(folder: Path, house_model, house_data: pd.DataFrame) -> VersionStore:
    board = VersionStore(folder / "board")
    info = board.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    board.set_alias("house", "production", info.version)
    board.write(bundle(HandMade(), name="handmade"))
    return board
