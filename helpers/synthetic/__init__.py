"""Offline Rhodes: a synthetic Sentinel-2 L2A catalogue shaped like Earth Search's.

The real MGRS tiles, orbits, dates, item ids and metadata layout of July-August 2023
over Rhodes, with simulated pixels (sea, vegetation, soil, villages, clouds and the
July 2023 burn scar) in real Cloud Optimized GeoTIFFs. ``build()`` writes everything
into :data:`helpers.paths.DATA_DIR`; ``python -m helpers.synthetic`` does the same.

``is_up_to_date`` is imported eagerly and is cheap; the generator itself (numpy,
rasterio, geopandas) is imported on first use of ``build``, so that the "nothing to do"
path of ``make data`` stays well under a second.
"""

from __future__ import annotations

from typing import Any

from helpers.synthetic.stamp import DEFAULT_SEED, GENERATOR_VERSION, is_up_to_date

__all__ = ["DEFAULT_SEED", "GENERATOR_VERSION", "BuildReport", "build", "disk_usage", "is_up_to_date"]


def __getattr__(name: str) -> Any:
    if name in ("build", "BuildReport", "disk_usage"):
        from helpers.synthetic import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'helpers.synthetic' has no attribute {name!r}")
