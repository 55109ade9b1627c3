"""Small pieces around ``odc.stac.load`` for notebook 03: broken scenes and one-pixel reads.

* A broken COG among 73 scenes should not kill a whole data cube, nor vanish silently.
  ``odc.stac.load(..., fail_on_error=False)`` skips an unreadable asset and leaves its
  pixels empty, but only says so in a log record. :func:`reporting_read_failures`
  collects those records while the cube is computed and raises one warning naming the
  scenes and files that were skipped (hand-written: odc-stac has no API for it, see the
  ``TODO: capture errors somehow`` in ``odc.loader._rio``).
* A point time series only needs the pixel that holds the point:
  :func:`first_scene_per_day` keeps one scene per day out of overlapping tiles, and
  :func:`pixel_values` reads that one pixel from each scene's files (one COG block per
  file, straight from the overview at the cube's resolution) instead of a whole
  2048 x 2048 chunk; :func:`pixel_geobox` is the 1 x 1 grid of that pixel.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pystac
import rasterio
import rasterio.windows
import xarray as xr
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from shapely.geometry import Point, shape

from helpers.chunks import GDAL_HTTP_OPTIONS

__all__ = [
    "ReadFailure",
    "SkippedScenesWarning",
    "reporting_read_failures",
    "pixel_geobox",
    "pixel_values",
    "solar_day",
    "first_scene_per_day",
]

ODC_READER_LOGGER = "odc.loader._rio"
"""The logger odc-stac's rasterio reader writes "Ignoring read failure ..." to."""


class SkippedScenesWarning(UserWarning):
    """Some scenes could not be read and were left out of the computation."""


@dataclass(frozen=True)
class ReadFailure:
    """One asset odc-stac could not read: which scene, which band, which file, why."""

    item_id: str
    band: str
    href: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item_id} {self.band} ({self.href}): {self.reason}"


class _FailureCollector(logging.Handler):
    """Logging handler that turns odc-stac's skipped-read records into ReadFailure rows."""

    def __init__(self, assets: dict[str, tuple[str, str]]) -> None:
        super().__init__(level=logging.WARNING)
        self.assets = assets
        self.failures: list[ReadFailure] = []
        self._seen: set[tuple[str, str]] = set()
        self._lock_rows = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith("Ignoring read failure"):
            return
        try:
            uri, _band_index, reason = record.args  # type: ignore[misc]
        except (TypeError, ValueError):
            return
        item_id, band = self.assets.get(str(uri), ("(unknown scene)", "?"))
        with self._lock_rows:
            if (str(uri), str(reason)) in self._seen:
                return  # one row per file, not one per dask chunk
            self._seen.add((str(uri), str(reason)))
            self.failures.append(ReadFailure(item_id, band, str(uri), str(reason)))


@contextmanager
def reporting_read_failures(
    items: Iterable[pystac.Item],
) -> Iterator[list[ReadFailure]]:
    """Collect the assets odc-stac skipped while computing inside this block; warn once.

    Use it around the ``.compute()`` / ``.load()`` of a cube made with
    ``odc.stac.load(items, ..., fail_on_error=False)``. The yielded list fills with one
    :class:`ReadFailure` per unreadable file; on leaving the block a
    :class:`SkippedScenesWarning` names them (the cube holds NaN/nodata there).

    Works with dask's threaded scheduler and with eager loads. On a distributed cluster
    the reads happen in the workers, so the records stay in the workers' logs.

    The block also restores the warning filters it started with: before Python 3.14
    ``warnings.catch_warnings`` is not thread-safe, and rasterio uses it inside dask's
    worker threads, so two reads finishing together can leave an "ignore every
    warning" filter behind (measured: after 5 of 30 threaded computes). Without the
    restore, that filter silences this very report and every later warning.
    """
    assets: dict[str, tuple[str, str]] = {}
    for item in items:
        for key, asset in item.assets.items():
            assets[_href(asset)] = (item.id, key)
            assets[asset.href] = (item.id, key)
    collector = _FailureCollector(assets)
    logger = logging.getLogger(ODC_READER_LOGGER)
    previous_level = logger.level
    logger.addHandler(collector)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # restores the filters on exit (see above)
            yield collector.failures
    finally:
        logger.removeHandler(collector)
        logger.setLevel(previous_level)
    if collector.failures:
        # stacklevel: this generator, contextlib's __exit__, then the learner's ``with``
        _warn_skipped(collector.failures, "their pixels are empty in the cube", stacklevel=4)


def _href(asset: pystac.Asset) -> str:
    """The href GDAL opens for ``asset`` (absolute when the item knows its own location),
    which is also the href a :class:`ReadFailure` names."""
    return asset.get_absolute_href() or asset.href


def _warn_skipped(failures: list[ReadFailure], consequence: str, stacklevel: int) -> None:
    scenes = sorted({f.item_id for f in failures})
    listing = "\n".join(f"  - {f}" for f in sorted(failures, key=str))
    warnings.warn(
        f"{len(failures)} file(s) of {len(scenes)} scene(s) could not be read "
        f"and were skipped ({consequence}):\n{listing}\n"
        "What to do: the other scenes are fine; re-download or remove the broken "
        "file(s), or leave those scenes out of the search.",
        SkippedScenesWarning,
        stacklevel=stacklevel,
    )


def pixel_geobox(x: float, y: float, resolution: float, crs: str) -> GeoBox:
    """The 1 x 1 grid of the ``resolution``-metre cube pixel that contains ``(x, y)``.

    The cube's pixel edges lie on multiples of ``resolution`` in ``crs`` units (as
    ``odc.stac.load`` aligns them), so any point inside a pixel, its centre included
    (e.g. ``cube.x.sel(x=..., method="nearest")``), gives that pixel; loading with
    ``geobox=pixel_geobox(...)`` gives exactly that pixel of the cube, read from the same
    COG overview.
    """
    if not (math.isfinite(x) and math.isfinite(y)) or resolution <= 0:
        raise ValueError(
            f"need a finite point and a positive resolution, got x={x}, y={y}, "
            f"resolution={resolution}"
        )
    left = math.floor(x / resolution) * resolution
    bottom = math.floor(y / resolution) * resolution
    return GeoBox.from_bbox(
        (left, bottom, left + resolution, bottom + resolution), crs=crs, resolution=resolution
    )


POINT_READ_THREADS = 4
"""Files :func:`pixel_values` reads side by side: each waits mostly for one small request."""


def pixel_values(
    items: Sequence[pystac.Item],
    bands: Sequence[str],
    x: float,
    y: float,
    resolution: float,
    crs: str,
    *,
    threads: int = POINT_READ_THREADS,
) -> xr.Dataset:
    """The digital numbers of one cube pixel in each scene: a time series without a cube.

    ``(x, y)`` is a point in the cube pixel (``resolution`` metres, in ``crs``), as for
    :func:`pixel_geobox`, and the result's ``x`` and ``y`` are that pixel's centre; pass
    one scene per day (:func:`first_scene_per_day`). Each file is opened (GDAL fetches
    its header) and the pixel read as a decimated window, so GDAL takes it from the
    overview at ``resolution`` when the band is finer (10 m bands at 20 m), the same
    overview pixel ``odc.stac.load(..., use_overviews=True)`` puts in the cube: one block
    per file, and no resampling step. A file on another grid (another UTM zone than
    ``crs``) is resampled to the pixel, nearest neighbour.

    Returns a Dataset with one variable per band along ``time`` (the scenes' datetimes),
    nodata (0) where a file has no data there. An unreadable file is skipped with a
    :class:`SkippedScenesWarning` naming it, as :func:`reporting_read_failures` does for
    cubes. (Written by hand: ``odc.stac.load(geobox=pixel_geobox(...))`` gives the same
    values, but opens each 10 m file twice and reprojects the pixel: for the workshop's
    36 files, 0.14-0.16 s once the headers are cached, against 0.08 s here.)
    """
    items = list(items)
    if not items:
        raise ValueError("no scenes given: the point lies outside every scene's footprint")
    pixel = pixel_geobox(x, y, resolution, crs)
    jobs = [(item, band) for item in items for band in bands]
    missing = [f"{item.id}: {band}" for item, band in jobs if band not in item.assets]
    if missing:
        raise KeyError(f"assets missing: {', '.join(missing[:5])}; bands available: {sorted(items[0].assets)}")

    def read(job: tuple[pystac.Item, str]) -> int | ReadFailure:
        item, band = job
        href = _href(item.assets[band])
        try:
            with rasterio.Env(**GDAL_HTTP_OPTIONS):  # per thread: no directory listing, retries
                return _read_pixel(href, pixel)
        except RasterioError as err:
            return ReadFailure(item.id, band, href, str(err))

    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = list(pool.map(read, jobs))
    failures = [r for r in results if isinstance(r, ReadFailure)]
    values = np.array([0 if isinstance(r, ReadFailure) else r for r in results]).reshape(len(items), len(bands))
    if failures:
        _warn_skipped(failures, "their values are nodata, 0", stacklevel=3)  # the caller's line
    times = np.array([np.datetime64(item.datetime.replace(tzinfo=None), "us") for item in items])
    left, _, _, top = pixel.boundingbox
    return xr.Dataset(
        {band: ("time", values[:, i]) for i, band in enumerate(bands)},
        coords={"time": times, "x": left + resolution / 2, "y": top - resolution / 2},
        attrs={"crs": str(pixel.crs), "resolution": resolution},
    )


def _read_pixel(href: str, pixel: GeoBox) -> int:
    with rasterio.open(href) as src:
        window = rasterio.windows.from_bounds(*pixel.boundingbox, transform=src.transform)
        aligned = src.crs == pixel.crs.to_wkt() and all(
            abs(v - round(v)) < 1e-6 for v in (window.col_off, window.row_off, window.width, window.height)
        )
        if aligned:
            window = window.round_offsets().round_lengths()
            if not (0 <= window.col_off <= src.width - window.width and 0 <= window.row_off <= src.height - window.height):
                return 0  # outside this file: no data, as in the cube
            return src.read(1, window=window, out_shape=(1, 1), resampling=Resampling.nearest).item()
        with WarpedVRT(
            src, crs=pixel.crs.to_wkt(), transform=pixel.transform, width=1, height=1,
            resampling=Resampling.nearest,
        ) as vrt:
            return vrt.read(1).item()


def solar_day(item: pystac.Item, lon: float) -> date:
    """The local solar date of ``item`` at longitude ``lon``: odc-stac's ``groupby="solar_day"``."""
    if item.datetime is None:
        raise ValueError(f"item {item.id} has no datetime")
    return (item.datetime + timedelta(hours=lon / 15)).date()


def first_scene_per_day(items: Iterable[pystac.Item], lon: float, lat: float) -> list[pystac.Item]:
    """Per solar day, the first scene (by time, then id) whose footprint contains the point.

    Neighbouring Sentinel-2 tiles overlap by about 10 km and, on one pass, hold the same
    pixels there. ``odc.stac.load(groupby="solar_day")`` fuses a day's scenes in
    (time, id) order, first valid pixel wins, so inside that first scene's footprint
    the other scenes are never used: reading only it gives the same values with half
    the files. (A footprint that claimed a pixel its file has no data for would lose
    the fallback; Earth Search footprints follow the data.)
    """
    point = Point(lon, lat)
    covering = sorted(
        (item for item in items if item.geometry and shape(item.geometry).intersects(point)),
        key=lambda item: (item.datetime, item.id),
    )
    first: dict[date, pystac.Item] = {}
    for item in covering:
        first.setdefault(solar_day(item, lon), item)
    return list(first.values())
