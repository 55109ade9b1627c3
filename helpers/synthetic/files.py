"""Writing outputs safely: JPEG thumbnails, JSON, GeoPackages (COGs: :mod:`.cog`).

Every writer goes to a temporary name in the target folder and renames at the end, so an
interrupted build never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
from PIL import Image


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def overview_factors(size: int, blocksize: int = 1024) -> list[int]:
    """2, 4, ... until the overview fits in one block (GDAL's COG default)."""
    factors, f = [], 2
    while size / (f // 2) > blocksize:
        factors.append(f)
        f *= 2
    return factors


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 80) -> int:
    """(rows, cols, 3) uint8 -> baseline JPEG (deterministic with the same Pillow)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(tmp, format="JPEG", quality=quality)
    return path.stat().st_size


def write_json(path: Path, obj: object) -> int:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path.stat().st_size


def write_gpkg(path: Path, frame, layer: str) -> int:
    """A GeoDataFrame as a one-layer GeoPackage, byte-stable (fixed GPKG timestamp)."""
    with atomic_path(path) as tmp:
        tmp_gpkg = tmp.with_suffix(".gpkg")  # the GPKG driver wants the extension
        try:
            # pyogrio bundles its own GDAL: configure that one
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2023-08-31T00:00:00.000Z"})
            frame.to_file(tmp_gpkg, layer=layer, driver="GPKG", engine="pyogrio")
            os.replace(tmp_gpkg, tmp)
        finally:
            if tmp_gpkg.exists():
                tmp_gpkg.unlink()
    return path.stat().st_size
