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
rioxarray scene or an odc-stac cube): on dask it stays lazy and runs one float32 kernel
per chunk, compiled with numba, so the only chunk-sized buffer it allocates is the result
(float16 and big-endian bands are first copied into a dtype numba takes).
"""

from __future__ import annotations

import math

import numba
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


@numba.njit(nogil=True, error_model="numpy", cache=True)
def _ndvi_pixels(red_dn, nir_dn, red_factor, red_shift, nir_factor, nir_shift,
                 nodata, masks_nodata, integers, out):
    """NDVI pixel by pixel, compiled: every pixel goes through all steps while it is in a
    register, where numpy streams an array through memory once per step. On the full scene,
    one thread: 0.05 CPU s against 0.11 s for numpy working in cache-sized slabs, most of
    it now the operating system zeroing the result's fresh memory. ``nogil`` lets dask's
    threads run it side by side."""
    nan = np.float32(np.nan)
    for row in range(out.shape[0]):
        for col in range(out.shape[1]):
            red_value, nir_value = red_dn[row, col], nir_dn[row, col]
            red = np.float32(red_value) * red_factor + red_shift  # float first: uint16 would wrap around
            nir = np.float32(nir_value) * nir_factor + nir_shift
            total = nir + red
            ndvi = (nir - red) / total  # 0 / 0 gives NaN by itself
            # red = -nir != 0 gives x / 0, inf: in DN units below half a step is 0 (unequal
            # scales leave a residue); floats may be reflectance already, so only 0 is 0.
            cancels = (abs(total) < 0.5) if integers else (total == 0)
            missing = masks_nodata & ((red_value == nodata) | (nir_value == nodata))
            out[row, col] = nan if cancels | missing else ndvi


def _compilable(dn: np.ndarray) -> np.ndarray:
    """``dn`` in a dtype numba compiles for: native byte order (a band from a NetCDF file can
    be big-endian), and float16 widened to float32, which holds every float16 value exactly."""
    if dn.dtype == np.float16:
        return dn.astype(np.float32)
    if not dn.dtype.isnative:
        return dn.astype(dn.dtype.newbyteorder("="))
    return dn


def _ndvi_block(
    red_dn: np.ndarray,
    nir_dn: np.ndarray,
    red_scale_offset: ScaleOffset,
    nir_scale_offset: ScaleOffset,
    nodata: float | None,
) -> np.ndarray:
    """NDVI of one block of digital numbers, in float32 (the compiled loop does the work)."""
    red_dn, nir_dn = _compilable(red_dn), _compilable(nir_dn)
    (red_scale, red_offset), (nir_scale, nir_offset) = red_scale_offset, nir_scale_offset
    # A factor common to both bands cancels out of the ratio, so work in units of the
    # smaller scale: with Sentinel-2's shared 0.0001 the offset -0.1 becomes a whole
    # -1000 DN, exact in float32, and a zero denominator is exactly 0 instead of a
    # rounding residue that would give NDVI in the millions.
    unit = min(red_scale, nir_scale)
    out = np.empty(red_dn.shape, np.float32)
    if out.size == 0:
        return out
    cols = out.shape[-1] if out.ndim else 1
    _ndvi_pixels(
        red_dn.reshape(-1, cols), nir_dn.reshape(-1, cols),
        np.float32(red_scale / unit), np.float32(red_offset / unit),
        np.float32(nir_scale / unit), np.float32(nir_offset / unit),
        np.float64(0 if nodata is None else nodata), nodata is not None,
        all(np.issubdtype(a.dtype, np.integer) for a in (red_dn, nir_dn)),
        out.reshape(-1, cols),
    )
    return out


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
    if red.dims != nir.dims and dict(red.sizes) == dict(nir.sizes):
        raise ValueError(
            f"red has dims {red.dims} and nir {nir.dims}: the same grid in another order; "
            "use nir = nir.transpose(*red.dims)"
        )
    if red.dims != nir.dims or red.shape != nir.shape:
        raise ValueError(
            f"red {dict(red.sizes)} and nir {dict(nir.sizes)} are not on the same grid; "
            "read both bands at the same resolution (10 m for Sentinel-2 B04 and B08)"
        )
    for dim in red.dims:
        if dim in red.indexes and dim in nir.indexes and not red.indexes[dim].equals(nir.indexes[dim]):
            raise ValueError(
                f"red and nir have different {dim!r} coordinates (another bounding box or CRS?): "
                "read both bands of one scene with the same bbox, or match one to the other "
                "with nir = nir.rio.reproject_match(red)"
            )
    red_so = _check_scale_offset("red_scale_offset", red_scale_offset)
    nir_so = _check_scale_offset("nir_scale_offset", nir_scale_offset)
    # numba compiles the kernel for each pair of dtypes at its first call (or loads it from
    # its cache): do it here, while the graph is built, not inside the first chunk's task.
    _ndvi_block(np.ones(1, red.dtype), np.ones(1, nir.dtype), red_so, nir_so, nodata)
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
