"""Small pieces around ``odc.stac.load`` for notebook 03: broken scenes and one-pixel cubes.

* A broken COG among 73 scenes should not kill a whole data cube, nor vanish silently.
  ``odc.stac.load(..., fail_on_error=False)`` skips an unreadable asset and leaves its
  pixels empty, but only says so in a log record. :func:`reporting_read_failures`
  collects those records while the cube is computed and raises one warning naming the
  scenes and files that were skipped (hand-written: odc-stac has no API for it, see the
  ``TODO: capture errors somehow`` in ``odc.loader._rio``).
* A point time series only needs the pixel that holds the point: :func:`pixel_geobox`
  is the 1 x 1 grid of that pixel, so ``odc.stac.load(..., geobox=...)`` reads one COG
  block per scene instead of a whole 2048 x 2048 chunk, and
  :func:`first_scene_per_day` keeps one scene per day out of overlapping tiles.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import pystac
from odc.geo.geobox import GeoBox
from shapely.geometry import Point, shape

__all__ = [
    "ReadFailure",
    "SkippedScenesWarning",
    "reporting_read_failures",
    "pixel_geobox",
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
            assets[asset.get_absolute_href() or asset.href] = (item.id, key)
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
        scenes = sorted({f.item_id for f in collector.failures})
        listing = "\n".join(f"  - {f}" for f in sorted(collector.failures, key=str))
        warnings.warn(
            f"{len(collector.failures)} file(s) of {len(scenes)} scene(s) could not be read "
            f"and were skipped (their pixels are empty in the cube):\n{listing}\n"
            "What to do: the other scenes are fine; re-download or remove the broken "
            "file(s), or leave those scenes out of the search.",
            SkippedScenesWarning,
            stacklevel=3,
        )


def pixel_geobox(x: float, y: float, resolution: float, crs: str) -> GeoBox:
    """The 1 x 1 grid of the ``resolution``-metre pixel centred on ``(x, y)``.

    ``(x, y)`` is a pixel centre of the data cube (e.g. ``cube.x.sel(x=..., method=
    "nearest")``), in ``crs`` units; loading with ``geobox=pixel_geobox(...)`` gives
    exactly that pixel of the cube, read from the same COG overview.
    """
    if not (math.isfinite(x) and math.isfinite(y)) or resolution <= 0:
        raise ValueError(
            f"need a finite pixel centre and a positive resolution, got x={x}, y={y}, "
            f"resolution={resolution}"
        )
    half = resolution / 2
    return GeoBox.from_bbox(
        (x - half, y - half, x + half, y + half), crs=crs, resolution=resolution
    )


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
