"""Build the whole offline catalogue, or skip it when the stamp says it is up to date."""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from affine import Affine

from helpers import paths
from helpers.synthetic import cog, files, landscape, scenario, scene, stac
from helpers.synthetic.stamp import DEFAULT_SEED, GENERATOR_VERSION, LOCK, STAMP, is_up_to_date

AOI_LAYER = "rhodes"
SCAR_LAYER = "burn_scar_truth"
_MANAGED_DIRS = ("stac", "sentinel-s2-l2a-cogs", "sentinel2")


@dataclass
class BuildReport:
    """What a build did: skipped or not, wall time per stage, files and bytes on disk."""

    data_dir: str
    seed: int
    skipped: bool
    seconds: float = 0.0
    items: int = 0
    files: int = 0
    bytes: int = 0
    burned_area_km2: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.skipped:
            return f"{self.data_dir}: up to date, nothing to do (seed {self.seed})"
        return (f"{self.data_dir}: built {self.items} items, {self.files} files, "
                f"{self.bytes / 1e9:.2f} GB in {self.seconds:.0f} s (seed {self.seed}); "
                f"burn scar {self.burned_area_km2:.1f} km2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ per item (workers)

_WORLD: landscape.World | None = None
_SEED = DEFAULT_SEED
_DATA_DIR = paths.DATA_DIR


def _render_item(acq: scenario.Acquisition) -> tuple[str, dict[str, int], dict[str, float], list[float]]:
    """Write one item's COGs, thumbnail and JSON (JSON last); return sizes and timings."""
    assert _WORLD is not None
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t
        t = now

    cog_rel = f"sentinel-s2-l2a-cogs/{acq.cog_dir}"
    folder = _DATA_DIR / cog_rel
    x0, y0 = scenario.TILE_ORIGINS[acq.tile]
    t10, t20 = Affine(10, 0, x0, 0, -10, y0), Affine(20, 0, x0, 0, -20, y0)
    states = scene.sky_states(acq, _SEED, scene.cloud_target(acq, _SEED))
    codes10, codes20 = scene.scene_codes(acq, _WORLD, states, out=_buffer("codes10", (scene.TILE_PX10,) * 2, np.uint16))
    del states
    luts = scene.item_luts(acq, _SEED)
    lap("render")
    sizes: dict[str, int] = {}
    levels10 = cog.pyramid(codes10)
    const10 = [cog.constant_blocks(level) for level in levels10]
    levels20 = cog.pyramid(codes20)
    const20 = [cog.constant_blocks(level) for level in levels20]
    lap("blocks")
    noisy = acq.item_id in scene.NOISY_ITEM_IDS
    sigma = scene.code_noise_sigma() if noisy else None

    def noise_key(band: str) -> tuple[int, ...]:
        return (_SEED, zlib.crc32(acq.item_id.encode()), 100 + scene.BANDS.index(band))

    band10 = cog.template(1, scene.TILE_PX10, "uint16", tuple(t10)[:6], scenario.EPSG)
    for key in ("blue", "green", "red", "nir"):
        name = stac.ASSET_FILES[key]
        sizes[f"{cog_rel}/{name}"] = cog.write(folder / name, band10, levels10, const10, luts.dn[key],
                                               sigma if key in scene.NOISY_BANDS else None, noise_key(key))
    visual = cog.template(3, scene.TILE_PX10, "uint8", tuple(t10)[:6], scenario.EPSG)
    sizes[f"{cog_rel}/{stac.VISUAL_FILE}"] = cog.write(folder / stac.VISUAL_FILE, visual, levels10, const10, luts.tci)
    swir_name = stac.BAND_ASSETS["swir22"][0]
    band20 = cog.template(1, scene.TILE_PX20, "uint16", tuple(t20)[:6], scenario.EPSG)
    sizes[f"{cog_rel}/{swir_name}"] = cog.write(folder / swir_name, band20, levels20, const20, luts.dn["swir22"],
                                                sigma if "swir22" in scene.NOISY_BANDS else None, noise_key("swir22"))
    scl20 = cog.template(1, scene.TILE_PX20, "uint8", tuple(t20)[:6], scenario.EPSG)
    sizes[f"{cog_rel}/{stac.SCL_FILE}"] = cog.write(folder / stac.SCL_FILE, scl20, levels20, const20, luts.scl)
    lap("cog")
    step = 32  # thumbnail: every 32nd pixel of the true-colour image, 344 x 344
    idx = np.arange(step // 2, scene.TILE_PX10, step)
    thumb = luts.tci[codes10[np.ix_(idx, idx)]]
    sizes[f"{cog_rel}/{stac.THUMBNAIL_FILE}"] = files.write_jpeg(folder / stac.THUMBNAIL_FILE, thumb)
    code_counts = np.bincount(codes20.ravel(), minlength=luts.scl.size)
    stats = scene.scl_statistics_from_counts(np.bincount(luts.scl, weights=code_counts, minlength=12))
    start, stop = scenario.valid_columns(acq.orbit.name, acq.tile, 10)
    stats["s2:nodata_pixel_percentage"] = (1 - float(np.sum(stop - start)) / scene.TILE_PX10**2) * 100
    lap("thumbnail+stats")
    item = stac.item_dict(acq, stats, f"../../{cog_rel}", GENERATOR_VERSION)
    item_rel = f"stac/items/{acq.item_id}.json"
    sizes[item_rel] = files.write_json(_DATA_DIR / item_rel, item)
    lap("json")
    return acq.item_id, sizes, timings, item["bbox"]


_BUFFERS: dict[str, np.ndarray] = {}


def _buffer(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A worker's reusable full-tile array (fresh 240 MB arrays cost page faults every item)."""
    buf = _BUFFERS.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _BUFFERS[name] = np.empty(shape, dtype=dtype)
    return buf


# ------------------------------------------------------------------ whole build


def _write_vectors(data_dir: Path, world: landscape.World) -> dict[str, int]:
    aoi = gpd.GeoDataFrame({"name": ["Rhodes"]}, geometry=[landscape.island()], crs="EPSG:4326")
    scar = gpd.GeoDataFrame(
        {"name": ["Rhodes wildfire, 18-27 July 2023 (synthetic truth)"],
         "area_km2": [round(world.scar_utm.area / 1e6, 4)],
         "start": ["2023-07-18"], "end": ["2023-07-27"]},
        geometry=[world.scar_utm], crs=f"EPSG:{scenario.EPSG}",
    )
    return {
        paths.AOI_FILE.name: files.write_gpkg(data_dir / paths.AOI_FILE.name, aoi, AOI_LAYER),
        paths.BURN_SCAR_TRUTH_FILE.name: files.write_gpkg(
            data_dir / paths.BURN_SCAR_TRUTH_FILE.name, scar, SCAR_LAYER),
    }


def _link_workshop_scene(data_dir: Path) -> dict[str, int]:
    """``sentinel2/red.tif`` and ``nir.tif``: relative symlinks to the workshop scene."""
    acq = next(a for a in scenario.schedule() if a.item_id == scenario.WORKSHOP_ITEM_ID)
    out = {}
    folder = data_dir / "sentinel2"
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in (("red.tif", "red"), ("nir.tif", "nir")):
        link = folder / name
        tmp = folder / f".{name}.part"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(f"../sentinel-s2-l2a-cogs/{acq.cog_dir}/{stac.ASSET_FILES[key]}", tmp)
        os.replace(tmp, link)
        out[f"sentinel2/{name}"] = link.stat().st_size
    return out


def _remove_stale(data_dir: Path, keep: set[str]) -> None:
    """Delete files of earlier builds (and leftover ``.part`` files) that are not in ``keep``."""
    for top in _MANAGED_DIRS:
        root = data_dir / top
        if not root.exists():
            continue
        for path in sorted(root.rglob("*"), reverse=True):
            rel = path.relative_to(data_dir).as_posix()
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif rel not in keep:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold ``.rhodes-data.lock`` in the data folder: concurrent builds (two pytest
    sessions, ``make test`` and ``make run``) wait for each other instead of racing."""
    with open(data_dir / LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"rhodes-data: another build is writing {data_dir}; waiting for it", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(data_dir: Path = paths.DATA_DIR, seed: int = DEFAULT_SEED, force: bool = False,
          workers: int | None = None, acquisitions: list[scenario.Acquisition] | None = None) -> BuildReport:
    """Generate the catalogue into ``data_dir`` unless it is already up to date.

    ``acquisitions`` restricts the build to some items (tests); such a partial build
    writes no stamp, so it never counts as up to date.
    """
    data_dir = Path(data_dir)
    if not force and acquisitions is None and is_up_to_date(data_dir, seed):
        return BuildReport(str(data_dir), seed, skipped=True)
    if data_dir.exists() and not data_dir.is_dir():
        raise NotADirectoryError(f"{data_dir} is a file; pass --data-dir with a folder")
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(data_dir):
        if not force and acquisitions is None and is_up_to_date(data_dir, seed):
            return BuildReport(str(data_dir), seed, skipped=True)  # built while we waited
        return _build_locked(data_dir, seed, workers, acquisitions)


def _build_locked(data_dir: Path, seed: int, workers: int | None,
                  acquisitions: list[scenario.Acquisition] | None) -> BuildReport:
    global _WORLD, _SEED, _DATA_DIR
    (data_dir / STAMP).unlink(missing_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    world = landscape.build_world(seed)
    timings["world"] = time.perf_counter() - t0
    sizes = _write_vectors(data_dir, world)
    plan = acquisitions if acquisitions is not None else scenario.schedule()
    # tiles in turn, so that workers' memory stays on one tile's arrays
    plan = sorted(plan, key=lambda a: (a.tile, a.datetime))
    _WORLD, _SEED, _DATA_DIR = world, seed, data_dir
    n_workers = workers or min(2, os.cpu_count() or 1)
    items_t = time.perf_counter()
    try:
        if n_workers == 1:
            results = [_render_item(a) for a in plan]
        else:
            # fork: the workers share the world arrays instead of pickling 200 MB each
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(n_workers) as pool:
                results = list(pool.imap_unordered(_render_item, plan, chunksize=1))
    finally:
        _WORLD = None
        _BUFFERS.clear()
    timings["items"] = time.perf_counter() - items_t
    for _, item_sizes, item_timings, _bbox in results:
        sizes.update(item_sizes)
        for k, v in item_timings.items():
            timings[f"items.{k} (summed)"] = timings.get(f"items.{k} (summed)", 0.0) + v
    item_json = [json.loads((data_dir / "stac/items" / f"{r[0]}.json").read_text()) for r in results]
    sizes["stac/collection.json"] = files.write_json(data_dir / "stac/collection.json", stac.collection_dict(item_json))
    if any(a.item_id == scenario.WORKSHOP_ITEM_ID for a in plan):
        sizes.update(_link_workshop_scene(data_dir))
    if acquisitions is None:
        _remove_stale(data_dir, set(sizes))
        stamp = {"generator_version": GENERATOR_VERSION, "seed": seed, "files": dict(sorted(sizes.items()))}
        files.write_json(data_dir / STAMP, stamp)
    seconds = time.perf_counter() - t0
    timings["total"] = seconds
    return BuildReport(
        str(data_dir), seed, skipped=False, seconds=seconds, items=len(results), files=len(sizes),
        bytes=sum(n for name, n in sizes.items() if not (data_dir / name).is_symlink()),  # links: counted once
        burned_area_km2=round(world.scar_utm.area / 1e6, 3),
        timings={k: round(v, 2) for k, v in timings.items()},
    )


def disk_usage(data_dir: Path = paths.DATA_DIR) -> int:
    """Bytes used by the generated files (``du``-like, symlinks not followed)."""
    total = 0
    for top in (*_MANAGED_DIRS, paths.AOI_FILE.name, paths.BURN_SCAR_TRUTH_FILE.name):
        p = Path(data_dir) / top
        if p.is_file():
            total += p.stat().st_blocks * 512
        elif p.is_dir():
            total += sum(f.lstat().st_blocks * 512 for f in p.rglob("*") if not f.is_dir())
    return total


__all__ = ["BuildReport", "DEFAULT_SEED", "GENERATOR_VERSION", "LOCK", "STAMP", "build", "disk_usage", "is_up_to_date"]
