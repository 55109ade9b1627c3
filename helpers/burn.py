"""The burned area from a data cube, and how well it matches a mapped scar.

Burned vegetation loses its near-infrared brightness (no more leaf structure) and gets
brighter in the short-wave infrared (dry, charred ground). The normalised burn ratio
``NBR = (nir - swir22) / (nir + swir22)`` captures both, and its drop between a
composite before and after the fire, ``dNBR = NBR_before - NBR_after``, is the
standard burn-severity index (Key & Benson 2006, USGS FIREMON). Their classes:
dNBR < 0.10 unburned, 0.10-0.27 low severity, 0.27-0.44 moderate-low, 0.44-0.66
moderate-high, > 0.66 high severity.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import xarray as xr
from odc.geo.geom import Geometry
from odc.geo.xr import rasterize

from helpers.ndvi import ScaleOffset, SENTINEL2_L2A_SCALE_OFFSET, ndvi

__all__ = [
    "DNBR_LOW_SEVERITY",
    "DNBR_MODERATE_LOW_SEVERITY",
    "DNBR_SEVERITY_CLASSES",
    "BurnedAreaCheck",
    "nbr",
    "clear_median",
    "burned_mask",
    "compare_with_truth",
]

DNBR_LOW_SEVERITY = 0.10
"""Key & Benson's lower bound of low-severity burn: below it a pixel counts as unburned."""

DNBR_MODERATE_LOW_SEVERITY = 0.27
"""Key & Benson's lower bound of moderate-low severity."""

DNBR_SEVERITY_CLASSES: dict[str, tuple[float, float]] = {
    "unburned": (-np.inf, 0.10),
    "low": (0.10, 0.27),
    "moderate-low": (0.27, 0.44),
    "moderate-high": (0.44, 0.66),
    "high": (0.66, np.inf),
}
"""Key & Benson's burn-severity classes as half-open dNBR ranges ``[low, high)``
("unburned" includes their "enhanced regrowth" below -0.1)."""


def nbr(
    nir: xr.DataArray,
    swir22: xr.DataArray,
    *,
    nir_scale_offset: ScaleOffset = SENTINEL2_L2A_SCALE_OFFSET,
    swir22_scale_offset: ScaleOffset = SENTINEL2_L2A_SCALE_OFFSET,
    nodata: float | None = 0,
) -> xr.DataArray:
    """Normalised burn ratio from near-infrared (B08) and SWIR 2.2 um (B12) digital numbers.

    NBR is the same normalised difference as NDVI with the SWIR band in place of red,
    so it reuses :func:`helpers.ndvi.ndvi` (float32, reflectance conversion, nodata to
    NaN, lazy on dask) rather than a second copy of that arithmetic.
    """
    result = ndvi(
        swir22,
        nir,
        red_scale_offset=swir22_scale_offset,
        nir_scale_offset=nir_scale_offset,
        nodata=nodata,
    )
    result.name = "nbr"
    result.attrs = {"long_name": "normalised burn ratio", "units": "1"}
    return result


def _nanmedian_quietly(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN; a pixel never seen clear stays NaN, silently.

    ``np.nanmedian`` warns about all-NaN pixels (the sea, always masked); filling them
    before and restoring NaN after avoids the warning without touching the global
    warning filters, which are not thread-safe under Dask's threaded scheduler.
    """
    never_clear = np.isnan(values).all(axis=-1)
    filled = np.where(never_clear[..., np.newaxis], 0, values)
    return np.where(never_clear, np.nan, np.nanmedian(filled, axis=-1)).astype(values.dtype, copy=False)


def clear_median(index: xr.DataArray, dim: str = "time") -> xr.DataArray:
    """Per-pixel median of the clear (non-NaN) observations along ``dim``: a composite.

    One cloudy or missing date does not leave a hole, as long as some other date saw
    the pixel clear. Lazy on dask (``dim`` is gathered into one chunk per pixel block).
    """
    if dim not in index.dims:
        raise ValueError(f"{index.name or 'index'} has no dimension {dim!r} (dims {index.dims})")
    if index.sizes[dim] == 0:
        raise ValueError(f"no {dim} steps to composite: widen the date range")
    result = xr.apply_ufunc(
        _nanmedian_quietly,
        index,
        input_core_dims=[[dim]],
        dask="parallelized",
        output_dtypes=[index.dtype],
        dask_gufunc_kwargs={"allow_rechunk": True},
        keep_attrs=True,
    )
    result.name = index.name
    return result


def burned_mask(dnbr: xr.DataArray, threshold: float = DNBR_LOW_SEVERITY) -> xr.DataArray:
    """True where ``dnbr`` reaches ``threshold``; NaN (no clear view before or after) is False."""
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite dNBR value, got {threshold!r}")
    burned = dnbr >= threshold  # NaN compares False: no clear view, not burned
    burned.name = "burned"
    return burned


@dataclass(frozen=True)
class BurnedAreaCheck:
    """Mapped burned area against the true scar: areas in km2 and intersection over union."""

    area_km2: float
    truth_area_km2: float
    iou: float

    @property
    def relative_error(self) -> float:
        """(mapped - true) / true area: 0.05 means the map is 5 % too large."""
        return (self.area_km2 - self.truth_area_km2) / self.truth_area_km2

    def __str__(self) -> str:
        return (
            f"burned area: {self.area_km2:.1f} km2 (truth {self.truth_area_km2:.1f} km2), "
            f"IoU {self.iou:.2f}"
        )


def compare_with_truth(
    burned: xr.DataArray,
    truth: gpd.GeoDataFrame,
    *,
    area_column: str | None = "area_km2",
) -> BurnedAreaCheck:
    """Area of ``burned`` (a 2-D boolean map from an odc-stac cube) and its IoU with ``truth``.

    The true scar polygons are reprojected to the map's CRS and rasterised onto its
    grid (pixel centres inside the polygon), so both are counted on the same pixels.
    The true area is the sum of ``area_column`` (the surveyed figure) when the scar lies
    inside the map; when the map covers only part of it, the area of the part inside.
    """
    if burned.ndim != 2:
        raise ValueError(
            f"burned must be one 2-D map (y, x), got dims {burned.dims}; "
            "select or reduce the time dimension first"
        )
    geobox = burned.odc.geobox
    if geobox is None or geobox.crs is None:
        raise ValueError("burned has no geographic grid (load it with odc.stac.load)")
    if not geobox.crs.projected or str(geobox.crs.units[0]).lower() not in ("metre", "m", "meter"):
        raise ValueError(
            f"burned is in {geobox.crs}, not in metres: load the cube with a projected "
            "crs (the UTM zone, e.g. EPSG:32635) to measure areas"
        )
    if len(truth) == 0:
        raise ValueError("the truth file holds no polygon")
    if truth.crs is None:
        raise ValueError(
            "the truth file has no CRS: give it the one its coordinates are in, "
            "e.g. truth.set_crs('EPSG:32635'), or fix the file"
        )
    scar = Geometry(truth.to_crs(geobox.crs.to_wkt()).geometry.union_all(), crs=geobox.crs)
    inside = scar & geobox.extent
    truth_mask = rasterize(scar, geobox).values
    mapped = np.asarray(burned.values, dtype=bool)
    pixel_km2 = abs(geobox.resolution.x * geobox.resolution.y) / 1e6
    union = np.count_nonzero(mapped | truth_mask)
    iou = np.count_nonzero(mapped & truth_mask) / union if union else 0.0
    whole_scar_inside = inside.area >= 0.999 * scar.area
    if whole_scar_inside and area_column and area_column in truth.columns:
        truth_km2 = float(truth[area_column].sum())
    else:
        truth_km2 = inside.area / 1e6
    return BurnedAreaCheck(
        area_km2=float(np.count_nonzero(mapped) * pixel_km2),
        truth_area_km2=float(truth_km2),
        iou=float(iou),
    )
