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
per chunk that works through the chunk in cache-sized slabs, so the only chunk-sized
buffer it allocates is the result.
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


_SLAB_PIXELS = 1 << 17
"""Pixels per slab of the kernel: a float32 slab is 512 KiB, so the four working buffers
of a slab stay in a core's L2 cache instead of streaming a whole chunk through memory
once per arithmetic step (measured: about 1.5x faster on the full scene)."""


def _ndvi_block(
    red_dn: np.ndarray,
    nir_dn: np.ndarray,
    red_scale_offset: ScaleOffset,
    nir_scale_offset: ScaleOffset,
    nodata: float | None,
) -> np.ndarray:
    """NDVI of one block of digital numbers, in float32, slab by slab.

    Written by hand rather than as one numpy expression because the expression makes
    eight full-size temporaries per chunk; here each slab of rows goes through all steps
    while it is still in the CPU cache, and the only full-size array is the result.
    """
    (red_scale, red_offset), (nir_scale, nir_offset) = red_scale_offset, nir_scale_offset
    # A factor common to both bands cancels out of the ratio, so work in units of the
    # smaller scale: with Sentinel-2's shared 0.0001 the offset -0.1 becomes a whole
    # -1000 DN, exact in float32, and a zero denominator is exactly 0 instead of a
    # rounding residue that would give NDVI in the millions.
    unit = min(red_scale, nir_scale)
    red_factor, nir_factor = np.float32(red_scale / unit), np.float32(nir_scale / unit)
    red_shift, nir_shift = np.float32(red_offset / unit), np.float32(nir_offset / unit)
    out = np.empty(red_dn.shape, np.float32)
    if out.size == 0:
        return out
    cols = red_dn.shape[-1] if red_dn.ndim else 1
    red_rows, nir_rows, out_rows = (a.reshape(-1, cols) for a in (red_dn, nir_dn, out))
    slab = max(1, _SLAB_PIXELS // cols)
    red = np.empty((slab, cols), np.float32)
    nir = np.empty((slab, cols), np.float32)
    invalid = np.empty((slab, cols), bool)
    other = np.empty((slab, cols), bool)
    integers = all(np.issubdtype(a.dtype, np.integer) for a in (red_dn, nir_dn))
    # Unsigned digital numbers with no offset are never negative: x / 0 needs x = 0 (NaN).
    never_cancels = red_offset == 0 and nir_offset == 0 and all(
        np.issubdtype(a.dtype, np.unsignedinteger) for a in (red_dn, nir_dn)
    )
    nan = np.float32(np.nan)
    for start in range(0, red_rows.shape[0], slab):
        stop = min(start + slab, red_rows.shape[0])
        n = stop - start
        r, i, o, bad, more = red[:n], nir[:n], out_rows[start:stop], invalid[:n], other[:n]
        red_slab, nir_slab = red_rows[start:stop], nir_rows[start:stop]
        np.copyto(r, red_slab, casting="same_kind")  # float first: uint16 would wrap around
        np.copyto(i, nir_slab, casting="same_kind")
        for band, factor, shift in ((r, red_factor, red_shift), (i, nir_factor, nir_shift)):
            if factor != 1:
                band *= factor
            if shift != 0:
                band += shift
        np.subtract(i, r, out=o)
        i += r  # i now holds the denominator nir + red
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(o, i, out=o)  # 0 / 0 gives NaN by itself
        if not never_cancels:  # red = -nir != 0 gives x / 0, inf
            np.abs(i, out=r)  # r is free now
            if integers:  # in DN units, below half a step is 0 (unequal scales leave a residue)
                np.less(r, 0.5, out=bad)
            else:  # floats may be reflectance already: only 0 is 0
                np.equal(r, 0, out=bad)
            np.copyto(o, nan, where=bad)
        if nodata is not None:
            np.equal(red_slab, nodata, out=bad)
            np.equal(nir_slab, nodata, out=more)
            bad |= more
            np.copyto(o, nan, where=bad)
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
