"""NDVI from Sentinel-2 digital numbers, done right.

Three traps make the textbook ``(nir - red) / (nir + red)`` wrong on L2A bands:

* the bands are ``uint16``: ``nir - red`` wraps around (underflows) wherever red > nir,
  so we convert to ``float32`` *before* any arithmetic;
* digital numbers are not reflectance: reflectance = DN * scale + offset, and since
  processing baseline 04.00 the offset (-0.1) matters unless the provider already
  removed it (``earthsearch:boa_offset_applied``; see
  :func:`helpers.masking.reflectance_scale_offset`);
* DN 0 means "no data", not "black": it must become NaN, not NDVI 0.

:func:`ndvi` works on numpy-backed and dask-backed :class:`xarray.DataArray` alike (a
rioxarray scene or an odc-stac cube): on dask it stays lazy and runs one fused,
in-place float32 kernel per chunk, so the per-chunk memory is a few chunk-sized buffers.
"""

from __future__ import annotations

import math

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor used for the nodata value)
import xarray as xr

ScaleOffset = tuple[float, float]
"""``(scale, offset)`` such that reflectance = DN * scale + offset."""

SENTINEL2_L2A_SCALE_OFFSET: ScaleOffset = (1e-4, 0.0)
"""Earth Search ``sentinel-2-l2a``: the +1000 DN offset is already removed."""


def _check_scale_offset(name: str, scale_offset: ScaleOffset) -> tuple[float, float]:
    try:
        scale, offset = (float(v) for v in scale_offset)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (scale, offset) of numbers, got {scale_offset!r}; "
            "take it from helpers.masking.reflectance_scale_offset(item, band)"
        ) from None
    if not (math.isfinite(scale) and math.isfinite(offset)) or scale <= 0:
        raise ValueError(
            f"{name}={scale_offset!r}: the scale must be a positive finite number and the "
            "offset finite (Sentinel-2 L2A: scale 0.0001, offset 0 or -0.1)"
        )
    return scale, offset


def _ndvi_block(
    red_dn: np.ndarray,
    nir_dn: np.ndarray,
    red_scale_offset: ScaleOffset,
    nir_scale_offset: ScaleOffset,
    nodata: float | None,
) -> np.ndarray:
    """NDVI of one block of digital numbers, in float32, with as few full passes as possible."""
    (red_scale, red_offset), (nir_scale, nir_offset) = red_scale_offset, nir_scale_offset
    red = red_dn.astype(np.float32)  # float first: uint16 subtraction would wrap around
    nir = nir_dn.astype(np.float32)
    # A scale shared by both bands with no offset cancels out of the ratio: skip two passes.
    if not (red_scale == nir_scale and red_offset == 0 and nir_offset == 0):
        red *= np.float32(red_scale)
        red += np.float32(red_offset)
        nir *= np.float32(nir_scale)
        nir += np.float32(nir_offset)
    difference = nir - red
    nir += red  # nir now holds the denominator nir + red
    invalid = nir == 0  # 0 / 0 (both bands dark) or x / 0 (offsets): no NDVI there
    if nodata is not None:
        invalid |= red_dn == nodata
        invalid |= nir_dn == nodata
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(difference, nir, out=difference)
    difference[invalid] = np.nan
    return difference


def ndvi(
    red: xr.DataArray,
    nir: xr.DataArray,
    *,
    red_scale_offset: ScaleOffset = SENTINEL2_L2A_SCALE_OFFSET,
    nir_scale_offset: ScaleOffset = SENTINEL2_L2A_SCALE_OFFSET,
    nodata: float | None = 0,
) -> xr.DataArray:
    """Normalised difference vegetation index from red and near-infrared digital numbers.

    ``red`` and ``nir`` are DataArrays on the same grid (same dims and coordinates, e.g. two
    bands of one scene read with ``rioxarray.open_rasterio`` or two variables of an odc-stac
    cube); integer digital numbers or floats (NaN propagates). Reflectance is
    ``DN * scale + offset`` per band; pass the pairs from
    :func:`helpers.masking.reflectance_scale_offset` so that an offset the provider already
    removed is not applied twice. Pixels where either band equals ``nodata`` (``None``: no
    masking) or where red + nir reflectance is 0 become NaN.

    Returns a float32 DataArray named ``ndvi`` with the inputs' coordinates and NaN as its
    nodata value (written to the file by ``.rio.to_raster``). Dask-backed inputs give a
    lazy result with the same chunks; nothing is read until it is computed.
    """
    for name, band in (("red", red), ("nir", nir)):
        if not isinstance(band, xr.DataArray):
            raise TypeError(
                f"{name} must be an xarray.DataArray (rioxarray.open_rasterio or an odc-stac "
                f"cube variable), got {type(band).__name__}"
            )
    if red.dims != nir.dims or red.shape != nir.shape:
        raise ValueError(
            f"red {dict(red.sizes)} and nir {dict(nir.sizes)} are not on the same grid; "
            "read both bands at the same resolution (10 m for Sentinel-2 B04 and B08)"
        )
    red_so = _check_scale_offset("red_scale_offset", red_scale_offset)
    nir_so = _check_scale_offset("nir_scale_offset", nir_scale_offset)
    result = xr.apply_ufunc(
        _ndvi_block,
        red,
        nir,
        kwargs={"red_scale_offset": red_so, "nir_scale_offset": nir_so, "nodata": nodata},
        dask="parallelized",
        output_dtypes=[np.float32],
        join="exact",  # a shifted grid is a mistake, not something to align silently
    )
    result.name = "ndvi"
    result.attrs = {"long_name": "NDVI", "units": "1"}
    return result.rio.write_nodata(np.nan, encoded=False)
