"""Validated columns of one request, without a pandas DataFrame.

Building a frame costs more than a compiled graph's whole prediction at one row (about
0.3 ms for a dozen columns against 0.03 ms), so the serving fast path hands the graph
the typed arrays it validated; what needs a frame (the prediction log, in its own
thread) builds it once, with the prototype's dtypes, from the same arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class Columns:
    """``arrays``: one typed array per model column, in the prototype's order, all of
    length ``n``; ``dtypes``: the pandas dtype a column takes in :meth:`frame` when its
    array is not already that (text as numpy objects here, pandas' string dtype there)."""

    __slots__ = ("arrays", "n", "dtypes", "_frame")

    def __init__(self, arrays: dict[str, Any], n: int,
                 dtypes: dict[str, Any] | None = None) -> None:
        self.arrays = arrays
        self.n = n
        self.dtypes = dtypes or {}
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return self.n

    @property
    def columns(self) -> list[str]:
        return list(self.arrays)

    def frame(self) -> pd.DataFrame:
        """The same columns as a DataFrame (built once), as validation would give it."""
        if self._frame is None:
            import pandas as pd

            data = {name: (pd.array(arr, dtype=self.dtypes[name]) if name in self.dtypes
                           else arr) for name, arr in self.arrays.items()}
            self._frame = pd.DataFrame(data, index=pd.RangeIndex(self.n), copy=False)
        return self._frame


def as_frame(data: Any) -> Any:
    """``data`` as a DataFrame when it is :class:`Columns`; anything else as it is."""
    return data.frame() if isinstance(data, Columns) else data
