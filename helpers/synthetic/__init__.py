"""Offline Rhodes: a synthetic Sentinel-2 L2A catalogue shaped like Earth Search's.

The real MGRS tiles, orbits, dates, item ids and metadata layout of July-August 2023
over Rhodes, with simulated pixels (sea, vegetation, soil, villages, clouds and the
July 2023 burn scar) in real Cloud Optimized GeoTIFFs. ``build()`` writes everything
into :data:`helpers.paths.DATA_DIR`; ``python -m helpers.synthetic`` does the same.
"""

from helpers.synthetic.pipeline import (
    DEFAULT_SEED,
    GENERATOR_VERSION,
    BuildReport,
    build,
    disk_usage,
    is_up_to_date,
)

__all__ = ["DEFAULT_SEED", "GENERATOR_VERSION", "BuildReport", "build", "disk_usage", "is_up_to_date"]
