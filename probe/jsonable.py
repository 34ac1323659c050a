"""Plain JSON values from what reports and head records hold.

Reports mix numpy scalars and arrays, Paths and tuples; JSON has none of these, and a
non-finite float (an undefined metric) becomes ``null`` so strict JSON (``allow_nan=False``,
used for head checksums) never fails on it.
"""

import math
from pathlib import Path

import numpy as np


def to_jsonable(value):
    """numpy scalars and arrays, Paths, tuples and non-finite floats -> plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
