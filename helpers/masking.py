"""Scene classification (SCL) masks and the digital-number-to-reflectance rule.

Two things every Sentinel-2 L2A analysis needs and most tutorials get wrong:

* which pixels to drop: the SCL band of each scene labels every 20 m pixel with one of
  twelve classes (:class:`SCL`); clouds, their shadows, water and pixels without data
  must not enter an NDVI or a burn index;
* how to turn the stored digital numbers (DN) into surface reflectance
  (``reflectance = dn * scale + offset``, :func:`reflectance_scale_offset`). Since
  processing baseline 04.00 (January 2022) ESA adds +1000 to every DN. Earth Search's
  ``sentinel-2-l2a`` has already removed it again (``earthsearch:boa_offset_applied``)
  while ``raster:bands`` still advertises ``offset: -0.1``; ``sentinel-2-c1-l2a`` keeps
  it; scenes from before 04.00 never had it. Applying the offset twice shifts
  reflectance by -0.1 and corrupts every index.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import TypeVar

import numpy as np
import pystac

__all__ = [
    "SCL",
    "WORKSHOP_MASKED_CLASSES",
    "DEFAULT_MASKED_CLASSES",
    "REFLECTANCE_BANDS",
    "scl_mask",
    "apply_scl_mask",
    "processing_baseline",
    "reflectance_scale_offset",
    "common_scale_offset",
    "OffsetWarning",
    "NEGATIVE_REFLECTANCE_WARN_SHARE",
    "check_reflectance_offset",
]


class SCL(IntEnum):
    """The twelve classes of the Sentinel-2 L2A scene classification (SCL) band."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    """Topographic or cast shadow, not cloud shadow."""
    CLOUD_SHADOWS = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW_OR_ICE = 11


WORKSHOP_MASKED_CLASSES: tuple[SCL, ...] = (
    SCL.CLOUD_SHADOWS,
    SCL.WATER,
    SCL.CLOUD_MEDIUM_PROBABILITY,
    SCL.CLOUD_HIGH_PROBABILITY,
    SCL.THIN_CIRRUS,
)
"""The classes the workshop masks (3, 6, 8, 9, 10): clouds, their shadows and water."""

DEFAULT_MASKED_CLASSES: tuple[SCL, ...] = (
    SCL.NO_DATA,
    SCL.SATURATED_OR_DEFECTIVE,
    *WORKSHOP_MASKED_CLASSES,
)
"""The workshop's classes plus no data (0) and saturated/defective (1).

Class 0 is also what odc-stac writes where no scene of a solar day covers a pixel, so
masking it keeps the fill value out of NDVI as well.
"""

REFLECTANCE_BANDS: frozenset[str] = frozenset(
    {
        "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
        "nir", "nir08", "nir09", "cirrus", "swir16", "swir22",
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
        "B10", "B11", "B12",
    }
)
"""Asset keys that hold surface reflectance (Earth Search names and ESA band names)."""

_QUANTIFICATION_VALUE = 10_000
"""ESA's BOA_QUANTIFICATION_VALUE: reflectance 1.0 is stored as DN 10000."""

_BOA_ADD_OFFSET_DN = -1_000
"""ESA's BOA_ADD_OFFSET since baseline 04.00: reflectance = (DN - 1000) / 10000."""

_FIRST_BASELINE_WITH_OFFSET = (4, 0)

ArrayLike = TypeVar("ArrayLike")


def _check_classes(classes: Iterable[int]) -> list[int]:
    """Turn classes into plain ints, refusing numbers that are not SCL classes."""
    checked = []
    for value in classes:
        try:
            checked.append(int(SCL(int(value))))
        except (ValueError, TypeError):
            names = ", ".join(f"{c.value} {c.name}" for c in SCL)
            raise ValueError(
                f"{value!r} is not an SCL class; use one of: {names}"
            ) from None
    return sorted(set(checked))


def scl_mask(scl: ArrayLike, classes: Iterable[int] = DEFAULT_MASKED_CLASSES) -> ArrayLike:
    """True where a pixel's SCL class is one of ``classes`` (the pixels to drop).

    Works on numpy arrays and on (lazy, dask-backed) xarray DataArrays; with xarray the
    result keeps the coordinates and stays lazy, so it can mask a whole data cube
    before anything is read.
    """
    values = _check_classes(classes)
    if hasattr(scl, "isin"):  # xarray.DataArray / Dataset
        return scl.isin(values)
    return np.isin(np.asarray(scl), values)


def apply_scl_mask(
    data: ArrayLike, scl: ArrayLike, classes: Iterable[int] = DEFAULT_MASKED_CLASSES
) -> ArrayLike:
    """``data`` with NaN wherever the SCL class is one of ``classes``.

    The result is floating point (NaN needs it), which is also what reflectance and
    NDVI need; integer DNs would wrap around in ``nir - red``.
    """
    mask = scl_mask(scl, classes)
    if hasattr(data, "where"):
        return data.where(~mask)
    return np.where(mask, np.nan, np.asarray(data, dtype="float64"))


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """The scene's ESA processing baseline as ``(major, minor)``, or None if unknown.

    Read from ``s2:processing_baseline`` ("05.09"), else from the ``_Nxxyy_`` part of
    ``s2:product_uri``, else from ``processing:version``.
    """
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version"):
        value = props.get(key)
        if value is None:
            continue
        match = re.fullmatch(r"\s*(\d{1,2})\.(\d{1,2})\s*", str(value))
        if match:
            return int(match.group(1)), int(match.group(2))
    product_uri = props.get("s2:product_uri")
    if product_uri:
        match = re.search(r"_N(\d{2})(\d{2})_", str(product_uri))
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _raster_band(asset: pystac.Asset) -> dict:
    """The first ``raster:bands`` entry of an asset (STAC raster extension), or {}."""
    bands = asset.extra_fields.get("raster:bands") or []
    if bands and isinstance(bands[0], dict):
        return bands[0]
    # raster extension v2 / STAC 1.1 puts scale and offset on the asset itself
    return {
        key: asset.extra_fields[f"raster:{key}"]
        for key in ("scale", "offset")
        if f"raster:{key}" in asset.extra_fields
    }


def reflectance_scale_offset(item: pystac.Item, band: str) -> tuple[float, float]:
    """``(scale, offset)`` such that ``reflectance = dn * scale + offset`` for this scene.

    * ``scale`` comes from ``raster:bands`` (1/10000 when the item does not say).
    * ``offset`` is 0 when the digital numbers carry no +1000: either the catalogue
      removed it (``earthsearch:boa_offset_applied: true``, Earth Search's
      ``sentinel-2-l2a``, whatever ``raster:bands`` claims) or the scene predates
      baseline 04.00. Otherwise (baseline >= 04.00, offset still in the DNs, e.g.
      ``sentinel-2-c1-l2a``) it is the ``raster:bands`` offset, -0.1 by default.
      Without a baseline or the flag, the ``raster:bands`` offset is trusted.

    Raises KeyError when the item has no such asset and ValueError when the asset is not
    a reflectance band (the SCL band holds class numbers: use :func:`scl_mask`).
    """
    asset = item.assets.get(band)
    if asset is None:
        available = sorted(k for k in item.assets if k in REFLECTANCE_BANDS)
        raise KeyError(
            f"item {item.id} has no asset {band!r}; its reflectance bands are: "
            f"{', '.join(available) or 'none'}"
        )
    roles = asset.roles or []
    if "reflectance" not in roles and band not in REFLECTANCE_BANDS:
        raise ValueError(
            f"asset {band!r} of item {item.id} is not a surface reflectance band "
            f"(roles {roles}); scale/offset to reflectance only apply to bands such as "
            "red, nir, swir22. For 'scl' use helpers.masking.scl_mask."
        )

    raster = _raster_band(asset)
    scale = float(raster.get("scale", 1.0 / _QUANTIFICATION_VALUE))
    advertised_offset = raster.get("offset")

    boa_offset_applied = item.properties.get("earthsearch:boa_offset_applied")
    baseline = processing_baseline(item)
    if boa_offset_applied is True:
        offset = 0.0
    elif baseline is not None and baseline < _FIRST_BASELINE_WITH_OFFSET:
        offset = 0.0
    elif baseline is not None:
        offset = (
            float(advertised_offset)
            if advertised_offset is not None
            else _BOA_ADD_OFFSET_DN * scale
        )
    else:
        offset = float(advertised_offset) if advertised_offset is not None else 0.0
    return scale, offset


def common_scale_offset(
    items: Sequence[pystac.Item] | Iterable[pystac.Item], band: str
) -> tuple[float, float]:
    """The one ``(scale, offset)`` shared by all items, for a data cube built from them.

    odc-stac ignores ``raster:bands`` scale/offset (odc-stac #55), so a cube holds raw
    DNs and one conversion is applied to all of it. That is only right when every scene
    agrees; mixing conventions (e.g. ``sentinel-2-l2a`` scenes with and without
    ``earthsearch:boa_offset_applied``)
    raises ValueError naming the groups, so the caller can convert per scene instead.
    """
    groups: dict[tuple[float, float], list[str]] = {}
    for item in items:
        groups.setdefault(reflectance_scale_offset(item, band), []).append(item.id)
    if not groups:
        raise ValueError("no items given: search for scenes first")
    if len(groups) > 1:
        detail = "; ".join(
            f"(scale {s}, offset {o}): {len(ids)} items, e.g. {ids[0]}"
            for (s, o), ids in sorted(groups.items())
        )
        raise ValueError(
            f"the items do not share one reflectance conversion for {band!r}: {detail}. "
            "Convert each scene separately or search a narrower date range."
        )
    return next(iter(groups))


class OffsetWarning(UserWarning):
    """The digital numbers do not look like they carry the offset about to be applied."""


NEGATIVE_REFLECTANCE_WARN_SHARE = 0.05
"""Above this share of valid pixels with negative reflectance, the offset looks wrong.

With the +1000 still in the digital numbers, only noise on the darkest targets (deep
water) falls below DN 1000; once it is removed, water and the red of vegetation (DN
100 to 600) do, so a wrongly applied -0.1 makes a large share of a scene negative.
Set from that reasoning, not measured on live scenes (none are reachable offline)."""


def check_reflectance_offset(
    dn: ArrayLike,
    scale_offset: tuple[float, float],
    *,
    nodata: float | None = 0,
    warn_share: float = NEGATIVE_REFLECTANCE_WARN_SHARE,
) -> float:
    """Share of valid pixels whose reflectance ``dn * scale + offset`` is negative.

    Pass the conversion you are about to apply. This is the data's own check of a
    ``false`` ``earthsearch:boa_offset_applied`` flag on an item whose +1000 was already
    removed (Element84/earth-search #66 and #71): applying -0.1 to those makes dark
    pixels negative, and above ``warn_share`` this warns with :class:`OffsetWarning`.
    It cannot catch the opposite (a +1000 still in the data with offset 0: nothing can
    become negative), and the evidence is in dark pixels: use the red band of a scene
    that is not all cloud, snow or bare rock. Pass a sample, such as a COG overview
    (``open_rasterio(href, overview_level=2)``): the values are read.
    """
    scale, offset = (float(v) for v in scale_offset)
    if not scale > 0:
        raise ValueError(f"scale_offset={scale_offset!r}: the scale must be positive (Sentinel-2: 0.0001)")
    values = np.asarray(dn).ravel()
    if nodata is not None:
        values = values[values != nodata]
    if np.issubdtype(values.dtype, np.floating):
        values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError(
            "the sample holds no valid pixels (all no data): take a sample that covers "
            "the scene, e.g. a whole overview instead of a window at its edge"
        )
    share = np.count_nonzero(values < -offset / scale) / values.size  # reflectance < 0, in DN
    if share > warn_share:
        warnings.warn(
            f"{share:.1%} of the valid pixels get negative reflectance with (scale {scale}, "
            f"offset {offset}): these digital numbers look like the +1000 offset was already "
            "removed. If the offset came from an item whose earthsearch:boa_offset_applied is "
            "false, the flag is wrong (it is on some scenes, Element84/earth-search #66, #71): "
            f"use scale_offset=({scale}, 0.0) for this scene.",
            OffsetWarning,
            stacklevel=2,
        )
    return share
