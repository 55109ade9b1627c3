"""NDVI of the full workshop scene: serial vs the workshop's Dask vs notebook 02's way.

Every case runs in a fresh Python process, so that each peak RSS (``VmHWM``: the
process's high-water mark, imports included) is its own. The cases are interleaved, in
an order shuffled anew each round (seeded by the round, so a run can be repeated): what
one process leaves behind, such as a few GB of memory just freed, must not always fall
on the same case. The fastest run of each case is reported (the machine is shared, so
the minimum is the least disturbed figure), with the median next to it. Imports and the
first use of dask and GDAL (about 0.1 s, once per process) happen before the clock
starts, as in notebook 02, where earlier cells have paid them.

Cases (``red.tif`` and ``nir.tif`` of S2A_35SNA_20230827_0_L2A, 10980 x 10980 uint16):

* ``serial``: the workshop's serial code, ``open_rasterio(masked=True)`` then
  ``(nir - red) / (nir + red)``. xarray keeps what it reads in the copy an arithmetic
  step works on, not in ``red`` and ``nir``, so this reads each band twice (GDAL's block
  cache spares the second decoding);
* ``serial_loaded``: the same with both bands ``.load()``-ed first (each read once):
  the fairer serial baseline, printed next to the workshop's;
* ``workshop_dask``: the workshop's Dask code, 6144 x 6144 chunks, ``lock=False``,
  ``persist(scheduler="threads", num_workers=4)``;
* ``notebook``: notebook 02's way: block-aligned chunks from
  :func:`helpers.chunks.suggest_chunks`, GDAL block cache shrunk, :func:`helpers.ndvi.ndvi`
  (float32, reflectance, nodata), ``persist(scheduler="threads")``;
* ``notebook_compute``: the same with ``compute()`` (one numpy array at the end);
* ``notebook_read``: the notebook's way without the NDVI: both bands in block-aligned
  chunks, persisted. The notebook's figure minus this one is what the NDVI costs;
* ``decode_limit``: both bands read into memory with GDAL multi-threaded
  (``GDAL_NUM_THREADS``), no arithmetic: no NDVI on this machine can be faster than
  reading its inputs. Like every case it holds what it made until the clock stops: the
  two bands, 482 MB, as much memory as the NDVI that ``persist`` holds;
* ``decode_discard``: the same reads, each band thrown away as soon as it is read, so the
  second reuses the first one's memory (the decode limit of earlier runs of this
  benchmark, printed for comparison). On a VM whose balloon takes freed memory back,
  fresh memory costs up to 1.8 s of system time per GB (482 MB in 0.85 s, measured),
  which this way mostly escapes and an NDVI result cannot;
* ``write_cog``: notebook 02's write: the lazy NDVI streamed chunk by chunk into a tiled
  GeoTIFF with ``to_raster(tiled=True, lock=...)``, then copied to a COG by GDAL's COG
  driver (overviews, DEFLATE).

Every case returns what it computed and keeps it until the clock has stopped, so that
freeing it is not timed. Targets (2 cores): notebook within 1.2x of the decode limit,
>= 4x faster than serial, peak RSS <= 40% of serial's; the COG write with peak RSS < 1 GB.

On this VM identical runs of a case differ several-fold in system CPU time (the notebook's
way 0.08-0.37 s, the serial code 2.5-7.3 s, in three runs of this benchmark), depending on
whether the host still backs the memory the guest hands out: first touches of memory the
host took back cost up to 1.8 s per GB. Each case's least and greatest system seconds
are printed, to tell that noise from the code's.

``--warm-mb N`` makes each case's process touch N MB of memory and free it before the
clock starts, so that the memory the case then gets has been handed out once already: the
host's cost of backing memory for the first time (about 2 s per GB here, against 0.1 s
for 482 MB once backed, measured) is then left out of every case alike, and what remains
is the code's own cost, the kernel zeroing the pages it hands out included. The peak RSS
starts afresh after the warm-up (``/proc/self/clear_refs``), so it is still the case's
own; each result records the warm-up's seconds and page faults. Off by default (0), as in
the runs the notes on issue 6 quote.

A case cannot take less wall time than its CPU seconds shared out over every core, so
``notebook_cpu_per_core_vs_decode_limit`` is the least ``notebook_vs_decode_limit`` can be on
this machine for the work the notebook's way does, with every core busy from start to end;
``notebook_read_cpu_per_core_vs_decode_limit`` is the same for reading in chunks alone,
before any arithmetic.

    python benchmarks/bench_dask.py [--scene-dir DIR] [--repeat 5] [--noisy-copy]
                                    [--chunk-mb 8] [--cache-mb 64|gdal] [--warm-mb 0]

``--chunk-mb`` and ``--cache-mb`` change the notebook's way (the chunk target handed to
``suggest_chunks`` and GDAL's block cache) in the four cases that read it, to measure
what notebook 02 says of other chunks and of GDAL's default cache; the JSON records them.

``--noisy-copy`` runs the same cases on a copy of the scene with sensor-like noise
(written under ``build/bench/noisy-scene/``, JSON to ``build/bench/dask-noisy.json``).
Since generator version 4 the workshop scene itself carries sensor-like noise (its
10 m bands are ~159 MB, a real one ~240 MB), so the default run already decodes like
real data; the noisy copy (60 DN everywhere, GDAL's DEFLATE) is a heavier variant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from helpers import paths
from helpers.chunks import CHUNKED_READ_CACHE_MB, DEFAULT_TARGET_MB

CASES = (
    "serial", "serial_loaded", "workshop_dask", "notebook", "notebook_compute", "notebook_read",
    "decode_limit", "decode_discard", "write_cog",
)
NOTEBOOK_CASES = ("notebook", "notebook_compute", "notebook_read", "write_cog")
"""The cases that read the notebook's way, whose chunk target and GDAL block cache
``--chunk-mb`` and ``--cache-mb`` change (to measure what notebook 02 says of them)."""
TARGETS = {
    "notebook_vs_decode_limit_max": 1.2,
    "serial_vs_notebook_min": 4.0,
    "notebook_rss_vs_serial_max": 0.40,
    "write_cog_rss_mb_max": 1000.0,
}


def _cpu_seconds() -> float:
    """User + system CPU time of this process: unlike wall time, hardly moved by other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _system_seconds() -> float:
    """System CPU time of this process: mostly the kernel zeroing fresh memory for it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _minor_faults() -> int:
    """Page faults served without I/O: mostly first touches of fresh memory, each a 4 KiB
    page (or a 2 MiB huge page) that the kernel zeroes. Where the time goes when two
    cases decode the same bytes but one of them is slower."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: ``VmHWM``, which starts afresh at ``exec``.

    (``ru_maxrss`` would not do: Linux carries it over from the parent across fork+exec.)
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # kB (KiB) to MB, as the targets count
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _serial(red_path: Path, nir_path: Path):
    import rioxarray

    red = rioxarray.open_rasterio(red_path, masked=True)
    nir = rioxarray.open_rasterio(nir_path, masked=True)
    return (nir - red) / (nir + red)


def _serial_loaded(red_path: Path, nir_path: Path):
    import rioxarray

    red = rioxarray.open_rasterio(red_path, masked=True).load()
    nir = rioxarray.open_rasterio(nir_path, masked=True).load()
    return (nir - red) / (nir + red)


def _workshop_dask(red_path: Path, nir_path: Path):
    import rioxarray

    chunks = {"x": 6144, "y": 6144}
    red = rioxarray.open_rasterio(red_path, masked=True, chunks=chunks, lock=False)
    nir = rioxarray.open_rasterio(nir_path, masked=True, chunks=chunks, lock=False)
    ndvi = (nir - red) / (nir + red)
    return ndvi.persist(scheduler="threads", num_workers=4)


def _notebook_bands(red_path: Path, nir_path: Path, chunk_mb: float = DEFAULT_TARGET_MB,
                    cache_mb: float | None = CHUNKED_READ_CACHE_MB):
    import rioxarray

    from helpers.chunks import configure_gdal, suggest_chunks

    configure_gdal(cache_mb)  # notebook 02 shrinks it to 64 MB (None: GDAL's own)
    chunks = suggest_chunks(red_path, target_mb=chunk_mb).chunks
    red = rioxarray.open_rasterio(red_path, chunks=chunks, lock=False)
    nir = rioxarray.open_rasterio(nir_path, chunks=chunks, lock=False)
    return red, nir


def _notebook_ndvi(red_path: Path, nir_path: Path, **notebook_way):
    from helpers.ndvi import ndvi

    red, nir = _notebook_bands(red_path, nir_path, **notebook_way)
    # Earth Search sentinel-2-l2a: (0.0001, 0.0), as helpers.masking.reflectance_scale_offset says
    return ndvi(red, nir, red_scale_offset=(1e-4, 0.0), nir_scale_offset=(1e-4, 0.0))


def _notebook(red_path: Path, nir_path: Path, **notebook_way):
    return _notebook_ndvi(red_path, nir_path, **notebook_way).persist(scheduler="threads")


def _notebook_compute(red_path: Path, nir_path: Path, **notebook_way):
    return _notebook_ndvi(red_path, nir_path, **notebook_way).compute(scheduler="threads")


def _notebook_read(red_path: Path, nir_path: Path, **notebook_way):
    import dask

    return dask.persist(*_notebook_bands(red_path, nir_path, **notebook_way), scheduler="threads")


def _read_bands(files: tuple[Path, ...], keep: bool) -> list:
    import rasterio

    bands = []
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        for path in files:
            with rasterio.open(path) as src:
                band = src.read(1)
            if keep:
                bands.append(band)
            del band
    return bands


def _decode_limit(red_path: Path, nir_path: Path) -> list:
    return _read_bands((red_path, nir_path), keep=True)


def _decode_discard(red_path: Path, nir_path: Path) -> list:
    return _read_bands((red_path, nir_path), keep=False)


def _write_cog(red_path: Path, nir_path: Path, **notebook_way) -> dict:
    import threading

    import rasterio
    import rasterio.shutil

    ndvi = _notebook_ndvi(red_path, nir_path, **notebook_way)
    paths.BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.BUILD_DIR) as tmp:
        tiled, cog = Path(tmp) / "ndvi_tiled.tif", Path(tmp) / "ndvi.tif"
        ndvi.rio.to_raster(tiled, tiled=True, blockxsize=1024, blockysize=1024, lock=threading.Lock())
        rasterio.shutil.copy(
            tiled, cog, driver="COG", blocksize=1024, compress="DEFLATE", predictor=3,
            level=1, overview_resampling="average", num_threads="ALL_CPUS",
        )
        with rasterio.open(cog) as src:
            layout = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
            overviews = src.overviews(1)
        return {"layout": layout, "overviews": overviews, "cog_mb": round(cog.stat().st_size / 1e6, 1)}


RUNNERS: dict[str, Callable[[Path, Path], object]] = {
    "serial": _serial,
    "serial_loaded": _serial_loaded,
    "workshop_dask": _workshop_dask,
    "notebook": _notebook,
    "notebook_compute": _notebook_compute,
    "notebook_read": _notebook_read,
    "decode_limit": _decode_limit,
    "decode_discard": _decode_discard,
    "write_cog": _write_cog,
}


def _first_use(any_raster: Path) -> None:
    """Pay the once-per-process set-up of dask, numba and GDAL before the clock starts.

    The first dask computation of a process imports its scheduler modules and starts the
    thread pool, the first GDAL open registers the drivers (together about 0.1 s,
    measured), and :func:`helpers.ndvi.ndvi` compiles its kernel for uint16 bands (0.28 s),
    or loads it from numba's cache (0.16 s). All paid once per kernel, in notebook 02 by
    the cells before the timed ones. Done here for every case alike: a 4 x 4 dask array, the
    NDVI of a 4 x 4 uint16 array, and a header-only open.
    """
    import dask.array as da
    import numpy as np
    import rasterio
    import xarray as xr

    from helpers.ndvi import ndvi

    xr.DataArray(da.ones((4, 4), chunks=2)).persist(scheduler="threads")
    ones = xr.DataArray(np.ones((4, 4), "uint16"))
    ndvi(ones, ones)
    with rasterio.open(any_raster) as src:
        src.profile  # noqa: B018  (reads the header only)


def _warm_up_memory(megabytes: float) -> dict:
    """Touch ``megabytes`` of fresh memory, free it, and start the peak RSS afresh.

    The freed pages go back to the kernel, which hands them out again to the case that
    follows: memory the host already backs. Returns the warm-up's seconds and page faults.
    """
    import numpy as np

    faults_start, start = _minor_faults(), time.perf_counter()
    memory = np.empty(int(megabytes * 1e6), np.uint8)
    memory[::4096] = 1  # a byte per 4 KiB page backs every page
    del memory
    seconds, faults = time.perf_counter() - start, _minor_faults() - faults_start
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := the RSS now, so the warm-up is not the case's peak
    return {"warm_up_seconds": round(seconds, 3), "warm_up_faults": faults}


def run_case(case: str, scene_dir: Path, chunk_mb: float = DEFAULT_TARGET_MB,
             cache_mb: float | None = CHUNKED_READ_CACHE_MB, warm_mb: float = 0) -> dict:
    """One measurement in this process: wall seconds and peak RSS.

    ``chunk_mb`` and ``cache_mb`` (``None``: GDAL's default cache) apply to the
    :data:`NOTEBOOK_CASES`; each result says which chunks and cache its case used.
    ``warm_mb`` above 0 first touches and frees that much memory (:func:`_warm_up_memory`).
    """
    red_path, nir_path = scene_dir / "red.tif", scene_dir / "nir.tif"
    # Imports (about half a second for xarray, dask and rioxarray) are not the computation:
    # load them before the clock starts, for every case alike.
    import dask.array  # noqa: F401
    import rasterio
    import rasterio.shutil  # noqa: F401
    import rioxarray  # noqa: F401
    from rasterio.env import get_gdal_config

    import helpers.chunks  # noqa: F401
    import helpers.ndvi  # noqa: F401

    _first_use(red_path)
    warm_up = _warm_up_memory(warm_mb) if warm_mb > 0 else {}
    load = os.getloadavg()[0]
    cpu_start, system_start, faults_start = _cpu_seconds(), _system_seconds(), _minor_faults()
    start = time.perf_counter()
    try:
        if case in NOTEBOOK_CASES:
            made = RUNNERS[case](red_path, nir_path, chunk_mb=chunk_mb, cache_mb=cache_mb)
        else:
            made = RUNNERS[case](red_path, nir_path)
    except rasterio.errors.RasterioIOError as error:
        if not str(error).startswith("Read failed"):  # e.g. write_cog's "Write failed": not the scene
            raise
        raise _unreadable_scene(scene_dir, error) from None
    seconds = time.perf_counter() - start
    cpu_seconds, faults = _cpu_seconds() - cpu_start, _minor_faults() - faults_start
    system_seconds = _system_seconds() - system_start
    extra = {**(made if isinstance(made, dict) else {}), **warm_up}  # made: write_cog's facts about its file
    first = made[0] if isinstance(made, (tuple, list)) and made else made
    if isinstance(getattr(first, "chunks", None), tuple):  # a dask-backed result
        extra["chunk_shape"] = [max(sizes) for sizes in first.chunks]
    extra["gdal_cache_mb"] = round(int(get_gdal_config("GDAL_CACHEMAX")) / 2**20, 1)
    del made, first
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "system_seconds": system_seconds,
        "minor_faults": faults,
        "peak_rss_mb": _peak_rss_mb(),
        "load_before": load,
        **extra,
    }


def _in_subprocess(case: str, scene_dir: Path, chunk_mb: float = DEFAULT_TARGET_MB,
                   cache_mb: float | None = CHUNKED_READ_CACHE_MB, warm_mb: float = 0) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--case", case, "--scene-dir", str(scene_dir),
         "--chunk-mb", str(chunk_mb), "--cache-mb", GDAL_DEFAULT if cache_mb is None else str(cache_mb),
         "--warm-mb", str(warm_mb)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _unreadable_scene(scene_dir: Path, error: Exception) -> SystemExit:
    """The advice for a band GDAL cannot read, instead of a traceback that ends in "Read failed"."""
    detail = error.__cause__ or error  # rasterio's "Read failed" hides GDAL's message, which names the file
    return SystemExit(
        f"cannot read the scene in {scene_dir}: a band is corrupt or truncated ({detail}). "
        f"If it is the workshop scene, delete {paths.WORKSHOP_SCENE_DIR} and run `make data` to "
        "regenerate it; otherwise pass --scene-dir with an intact red.tif/nir.tif pair"
    )


def _check_scene(scene_dir: Path) -> None:
    missing = [name for name in ("red.tif", "nir.tif") if not (scene_dir / name).exists()]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} missing in {scene_dir}: run `make data` "
            "(or pass --scene-dir with a red.tif/nir.tif pair)"
        )
    for name in ("red.tif", "nir.tif"):  # headers only: a band cut short is refused before any case runs
        try:
            paths.check_geotiff_complete(scene_dir / name)
        except paths.DamagedFileError as error:
            raise _unreadable_scene(scene_dir, error) from None


def write_noisy_pair(scene_dir: Path, out_dir: Path, sigma_dn: float = 60.0, seed: int = 6) -> Path:
    """The scene's red/nir with sensor-like noise, so the COGs compress like real Sentinel-2.

    Real 10 m bands are about 240 MB on disk (workshop); a smooth synthetic band deflates
    to a few MB, which makes decoding nearly free and the decode limit unrealistically low.
    Gaussian noise of ``sigma_dn`` digital numbers on the valid pixels restores a realistic
    decode cost; layout as Earth Search (COG, 1024 blocks, DEFLATE, overviews).
    """
    import numpy as np
    import rasterio

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in ("red", "nir"):
        target = out_dir / f"{name}.tif"
        with rasterio.open(scene_dir / f"{name}.tif") as src:
            dn = src.read(1)
            profile = src.profile
        noisy = dn + rng.normal(0, sigma_dn, dn.shape).astype(np.float32)
        noisy = np.clip(noisy, 1, 10000).astype(np.uint16)
        noisy[dn == 0] = 0
        profile.update(driver="COG", blocksize=1024, compress="DEFLATE", num_threads="ALL_CPUS")
        for key in ("blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(noisy, 1)
    return out_dir


PER_RUN = (
    "seconds", "cpu_seconds", "system_seconds", "minor_faults", "peak_rss_mb", "load_before",
    "warm_up_seconds", "warm_up_faults",
)
"""What differs from run to run of a case: summed up in its results, or kept in ``runs``."""

GDAL_DEFAULT = "gdal"
"""``--cache-mb gdal``: GDAL's own block cache size."""


def _positive_mb(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: give a size in MB above 0")
    return value


def _cache_mb(text: str) -> float | None:
    return None if text == GDAL_DEFAULT else _positive_mb(text)


def _warm_mb(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text}: give a size in MB, or 0 for no warm-up")
    return value


def round_order(round_: int) -> list[str]:
    """The cases in the order round ``round_`` runs them: shuffled, the same for the same round."""
    order = list(CASES)
    random.Random(round_).shuffle(order)
    return order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene-dir", type=Path, default=paths.WORKSHOP_SCENE_DIR)
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (fresh process each)")
    parser.add_argument("--out", type=Path, default=paths.BUILD_DIR / "bench" / "dask.json")
    parser.add_argument(
        "--noisy-copy", action="store_true",
        help="benchmark a copy of the scene with sensor-like noise (real-world compression), "
        "written to build/bench/noisy-scene/",
    )
    parser.add_argument(
        "--chunk-mb", type=_positive_mb, default=DEFAULT_TARGET_MB,
        help=f"chunk target of the notebook's cases, for suggest_chunks (default {DEFAULT_TARGET_MB:g})",
    )
    parser.add_argument(
        "--cache-mb", type=_cache_mb, default=CHUNKED_READ_CACHE_MB,
        help=f"GDAL block cache of the notebook's cases in MB, or {GDAL_DEFAULT!r} for "
        f"GDAL's own (5%% of the RAM) (default {CHUNKED_READ_CACHE_MB})",
    )
    parser.add_argument(
        "--warm-mb", type=_warm_mb, default=0.0,
        help="touch and free this many MB in each case's process before its clock starts, so "
        "that no case pays the host for backing memory the first time (default 0: no warm-up)",
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one run, JSON on stdout
    args = parser.parse_args(argv)
    _check_scene(args.scene_dir)
    if args.noisy_copy and not args.case:
        noisy_dir = paths.BUILD_DIR / "bench" / "noisy-scene"
        print(f"writing a noisy copy of {args.scene_dir} to {noisy_dir} ...", flush=True)
        args.scene_dir = write_noisy_pair(args.scene_dir, noisy_dir)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in sorted(noisy_dir.glob("*.tif")))
        print(f"  on disk: {sizes}")
        if args.out == parser.get_default("out"):
            args.out = paths.BUILD_DIR / "bench" / "dask-noisy.json"
    paths.BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if args.case:
        print(json.dumps(run_case(args.case, args.scene_dir, args.chunk_mb, args.cache_mb, args.warm_mb)))
        return 0

    runs: dict[str, list[dict]] = {case: [] for case in CASES}
    for round_ in range(args.repeat):
        for case in round_order(round_):
            runs[case].append(_in_subprocess(case, args.scene_dir, args.chunk_mb, args.cache_mb, args.warm_mb))
            print(f"  round {round_ + 1}/{args.repeat} {case:<17} {runs[case][-1]['seconds']:6.2f} s", flush=True)

    results = {}
    for case, measured in runs.items():
        times = [r["seconds"] for r in measured]
        results[case] = {
            "seconds_min": round(min(times), 3),
            "seconds_median": round(statistics.median(times), 3),
            "cpu_seconds_min": round(min(r["cpu_seconds"] for r in measured), 3),
            "system_seconds_range": [round(f(r["system_seconds"] for r in measured), 3) for f in (min, max)],
            "minor_faults_median": int(statistics.median(r["minor_faults"] for r in measured)),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in measured), 1),
            **{k: v for k, v in measured[-1].items() if k not in PER_RUN},
        }
        if args.warm_mb:
            results[case]["warm_up_seconds_range"] = [f(r["warm_up_seconds"] for r in measured) for f in (min, max)]
    t = {case: results[case]["seconds_min"] for case in CASES}
    rss = {case: results[case]["peak_rss_mb"] for case in CASES}
    per_core = {case: results[case]["cpu_seconds_min"] / os.cpu_count() for case in CASES}
    ratios = {
        "notebook_vs_decode_limit": round(t["notebook"] / t["decode_limit"], 2),
        "notebook_vs_decode_discard": round(t["notebook"] / t["decode_discard"], 2),
        "decode_limit_vs_decode_discard": round(t["decode_limit"] / t["decode_discard"], 2),
        "notebook_read_vs_decode_limit": round(t["notebook_read"] / t["decode_limit"], 2),
        "notebook_vs_notebook_read": round(t["notebook"] / t["notebook_read"], 2),
        "notebook_cpu_per_core_vs_decode_limit": round(per_core["notebook"] / t["decode_limit"], 2),
        "notebook_read_cpu_per_core_vs_decode_limit": round(per_core["notebook_read"] / t["decode_limit"], 2),
        "serial_vs_notebook": round(t["serial"] / t["notebook"], 2),
        "serial_loaded_vs_notebook": round(t["serial_loaded"] / t["notebook"], 2),
        "serial_vs_workshop_dask": round(t["serial"] / t["workshop_dask"], 2),
        "workshop_dask_vs_notebook": round(t["workshop_dask"] / t["notebook"], 2),
        "notebook_rss_vs_serial": round(rss["notebook"] / rss["serial"], 2),
        "notebook_compute_rss_vs_serial": round(rss["notebook_compute"] / rss["serial"], 2),
    }
    met = {
        "notebook_within_1.2x_of_decode_limit": ratios["notebook_vs_decode_limit"] <= TARGETS["notebook_vs_decode_limit_max"],
        "notebook_4x_faster_than_serial": ratios["serial_vs_notebook"] >= TARGETS["serial_vs_notebook_min"],
        "notebook_rss_at_most_40pct_of_serial": ratios["notebook_rss_vs_serial"] <= TARGETS["notebook_rss_vs_serial_max"],
        "write_cog_rss_under_1GB": rss["write_cog"] < TARGETS["write_cog_rss_mb_max"],
        "write_cog_is_a_cog": results["write_cog"].get("layout") == "COG",
    }

    loads = [r["load_before"] for measured in runs.values() for r in measured]
    print(
        f"\nNDVI of {args.scene_dir} on {os.cpu_count()} cores, best of {args.repeat} "
        f"(load average during the runs {min(loads):.1f} to {max(loads):.1f}; above 0 means shared CPUs);"
        f"\nthe notebook's way with chunks near {args.chunk_mb:g} MB and GDAL's block cache at "
        + ("GDAL's default" if args.cache_mb is None else f"{args.cache_mb:g} MB") + ";"
        + (f"\neach case after touching and freeing {args.warm_mb:g} MB (--warm-mb):" if args.warm_mb
           else "\neach case on memory its process touches for the first time (no --warm-mb):")
    )
    print(f"  {'case':<17} {'wall s':>7} {'(median)':>9} {'CPU s':>7} {'system s':>11} {'peak RSS':>9} {'page faults':>12}")
    for case in CASES:
        r = results[case]
        least, most = r["system_seconds_range"]
        print(
            f"  {case:<17} {r['seconds_min']:7.2f} {r['seconds_median']:9.2f} "
            f"{r['cpu_seconds_min']:7.2f} {least:5.2f}-{most:<5.2f} {r['peak_rss_mb']:6.0f} MB "
            f"{r['minor_faults_median']:12,}"
        )
    print("  (system s: the least and the greatest of the runs, mostly fresh memory being handed over)")
    if args.warm_mb:
        warm_ups = [r["warm_up_seconds"] for measured in runs.values() for r in measured]
        print(f"  (warm-up of {args.warm_mb:g} MB before each clock: {min(warm_ups):.2f}-{max(warm_ups):.2f} s)")
    print("Ratios (of wall seconds unless named):")
    for name, value in ratios.items():
        print(f"  {name:<42} {value}")
    print(f"  (cpu_per_core: CPU seconds / {os.cpu_count()} cores, less than which no wall time can be)")
    print("Targets:")
    for name, ok in met.items():
        print(f"  {'met ' if ok else 'MISSED'} {name}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "scene_dir": str(args.scene_dir),
        "load_average_range": [min(loads), max(loads)],
        "cpu_count": os.cpu_count(),
        "repeat": args.repeat,
        "round_orders": [round_order(round_) for round_ in range(args.repeat)],
        "notebook_way": {
            "chunk_mb": args.chunk_mb,
            "cache_mb": GDAL_DEFAULT if args.cache_mb is None else args.cache_mb,
        },
        "warm_mb": args.warm_mb,
        "results": results,
        "ratios": ratios,
        "targets": TARGETS,
        "met": met,
        "runs": runs,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
