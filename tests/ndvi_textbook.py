"""The textbook NDVI, the independent oracle of the tests that check an NDVI."""

from __future__ import annotations

import numpy as np


def textbook_ndvi(red_dn: np.ndarray, nir_dn: np.ndarray) -> np.ndarray:
    """(nir - red) / (nir + red) in float64, with DN 0 in either band as no data (NaN)."""
    red, nir = np.asarray(red_dn, np.float64), np.asarray(nir_dn, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (nir - red) / (nir + red)
    expected[(red == 0) | (nir == 0)] = np.nan
    return expected
