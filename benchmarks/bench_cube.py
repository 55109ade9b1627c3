"""Notebook 03's data cube, timed: the point time series two ways, and the full-cube load.

1. NDVI time series at the workshop's point (x=585000, y=3995000, EPSG:32635) over
   July-August 2023:
   - the workshop's way: the island's cube in 2048 x 2048 chunks, ``.sel(method="nearest")``,
     ``.compute(scheduler="threads", num_workers=4)`` (Dask reads the whole chunk that
     holds the pixel, every day);
   - the notebook's way: per day the first scene whose footprint contains the point
     (``helpers.cube.first_scene_per_day``), and that one pixel read from each of its
     files (``helpers.cube.pixel_values``, 4 threads).
   Same data, same run; the two series must be equal. Target: >= 20x faster. Each way
   runs in a fresh process, twice: "cold" (GDAL has cached no file header yet, as in a
   fresh kernel) and "warm" (as in the notebook, where earlier cells opened the files);
   ``--repeat`` fresh processes per way, interleaved, and the fastest of each is compared
   (the medians are printed too).
   Then, in one more fresh process per way, the HTTP requests and bytes of a cold call,
   counted by GDAL itself (``CPL_VSIL_SHOW_NETWORK_STATS``): what the live service would
   charge in latency and bandwidth, whatever the speed of this machine.
2. The full cube of red, nir and scl at 20 m over the island, computed with Dask threads
   (odc-stac reading the 20 m overview of the 10 m bands), in pixels per second, against
   a plain rasterio read of the same overview windows of the same files (a thread per
   core), which is what the reading costs without odc-stac's mosaicking; each in a fresh
   process after a warm-up read of every file (so the OS file cache is warm for both).

Reads through the embedded STAC API (``make bench`` starts it). Prints the figures and
writes ``build/bench/cube.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import odc.stac
import pystac
import rasterio
import rasterio.windows
from rasterio.errors import NotGeoreferencedWarning
from pyproj import Transformer
from rasterio.warp import transform_bounds

from helpers import paths
from helpers.cube import POINT_READ_THREADS, first_scene_per_day, pixel_values
from helpers.masking import common_scale_offset, scl_mask
from helpers.ndvi import ndvi
from helpers.search import search_items
from helpers.server import ensure_api

POINT = (585_000, 3_995_000)
CRS = "EPSG:32635"
RESOLUTION = 20
WORKSHOP_CHUNKS = 2048
WORKSHOP_WORKERS = 4
"""The workshop computed the point with ``compute(scheduler="threads", num_workers=4)``."""
DATES = "2023-07-01/2023-08-31"
BANDS = ("red", "nir", "scl")
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "10",
            "GDAL_HTTP_RETRY_DELAY": "0.5"}


def _setup(item_dicts):
    """In a fresh process: GDAL settings as in the notebook, the items back from dicts."""
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)  # odc-stac's overview warp
    odc.stac.configure_rio(cloud_defaults=True)
    return [pystac.Item.from_dict(d) for d in item_dicts]


def _workshop(items, bbox, so):
    cube = odc.stac.load(items, bands=list(BANDS), groupby="solar_day",
                         chunks={"x": WORKSHOP_CHUNKS, "y": WORKSHOP_CHUNKS},
                         resolution=RESOLUTION, use_overviews=True, bbox=bbox, crs=CRS)
    index = ndvi(cube.red, cube.nir, red_scale_offset=so[0], nir_scale_offset=so[1]).where(~scl_mask(cube.scl))
    at_point = index.sel(x=POINT[0], y=POINT[1], method="nearest")
    series = at_point.compute(scheduler="threads", num_workers=WORKSHOP_WORKERS)
    return series.dropna("time"), (float(at_point.x), float(at_point.y))


def _notebook(items, centre, so):
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(*centre)
    point_items = first_scene_per_day(items, lon, lat)
    pixel = pixel_values(point_items, list(BANDS), centre[0], centre[1], RESOLUTION, CRS)
    index = ndvi(pixel.red, pixel.nir, red_scale_offset=so[0], nir_scale_offset=so[1]).where(~scl_mask(pixel.scl))
    return index.dropna("time"), len(point_items)


def _cold_and_warm(func, *args):
    """Seconds of a first call (fresh process: GDAL has no file header cached) and a second."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - start)
    return times, result


def point_series_workshop(item_dicts, bbox, so):
    """The workshop's code: whole-island cube, 2048 chunks, nearest pixel, compute."""
    times, (series, centre) = _cold_and_warm(_workshop, _setup(item_dicts), bbox, so)
    return times, [str(t)[:10] for t in series.time.values], series.values.tolist(), centre


def point_series_notebook(item_dicts, centre, so):
    """The notebook's way: the scenes whose footprint holds the point, their one pixel."""
    times, (series, n_items) = _cold_and_warm(_notebook, _setup(item_dicts), centre, so)
    return times, [str(t)[:10] for t in series.time.values], series.values.tolist(), n_items


def full_cube_odc(item_dicts, bbox):
    """The cube of red, nir and scl at 20 m, computed with Dask threads."""
    items = _setup(item_dicts)
    cube = odc.stac.load(items, bands=list(BANDS), groupby="solar_day",
                         chunks={"x": WORKSHOP_CHUNKS, "y": WORKSHOP_CHUNKS},
                         resolution=RESOLUTION, use_overviews=True, bbox=bbox, crs=CRS)
    start = time.perf_counter()
    cube.compute(scheduler="threads")
    return time.perf_counter() - start, int(sum(cube[b].size for b in BANDS)), {k: int(v) for k, v in cube.sizes.items()}


def full_cube_rasterio(jobs, threads):
    """The same overview windows of the same files, read with rasterio in a thread pool."""
    _setup([])
    with rasterio.Env(**GDAL_ENV):
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            sizes = list(pool.map(read_window, jobs))
        return time.perf_counter() - start, int(sum(sizes))


def in_fresh_process(func, *args):
    """Run ``func`` in a new Python process: no GDAL cache or open file carried over."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def overview_windows(items, bbox):
    """(href, overview_level or None, window) of every asset the 20 m cube reads."""
    west, south, east, north = transform_bounds("EPSG:4326", CRS, *bbox)
    jobs = []
    for item in items:
        for band in BANDS:
            href = item.assets[band].href
            with rasterio.open(href) as src:
                level = None
                if abs(src.res[0] - RESOLUTION) > 1e-6:
                    factors = src.overviews(1)
                    level = factors.index(int(round(RESOLUTION / src.res[0])))
                    scale = RESOLUTION / src.res[0]
                    transform = src.transform * src.transform.scale(scale, scale)
                    width, height = int(np.ceil(src.width / scale)), int(np.ceil(src.height / scale))
                else:
                    transform, width, height = src.transform, src.width, src.height
            window = rasterio.windows.from_bounds(west, south, east, north, transform=transform)
            window = window.round_offsets().round_lengths().intersection(
                rasterio.windows.Window(0, 0, width, height))
            jobs.append((href, level, window))
    return jobs


def read_window(job) -> int:
    href, level, window = job
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(href, **kwargs) as src:
        return src.read(1, window=window).size


NETWORK_STATS_HEADING = "Network statistics:"
"""What GDAL prints (to stdout) before its HTTP counters at exit with ``CPL_VSIL_SHOW_NETWORK_STATS=YES``."""


def _one_call_of(way: str, args_file: Path) -> None:
    """In a child process: one cold call of ``way``; GDAL prints its HTTP counters at exit."""
    args = json.loads(args_file.read_text())
    items = _setup(args["items"])
    if way == "workshop":
        _workshop(items, args["bbox"], args["so"])
    else:
        _notebook(items, args["centre"], args["so"])


def http_traffic(way: str, item_dicts, bbox, centre, so) -> dict:
    """HTTP requests and bytes of one cold call of ``way``, from GDAL's own counters.

    Independent of how fast this machine and the embedded server are: on the live
    service every request pays the network's latency and every byte its bandwidth.
    """
    with tempfile.TemporaryDirectory(dir=paths.BUILD_DIR) as tmp:
        args_file = Path(tmp) / "args.json"
        args_file.write_text(json.dumps({"items": item_dicts, "bbox": bbox, "centre": centre, "so": so}))
        done = subprocess.run(
            [sys.executable, __file__, "--one-call-of", way, "--args-file", str(args_file)],
            env={**os.environ, "CPL_VSIL_SHOW_NETWORK_STATS": "YES"},
            capture_output=True, text=True, check=False,
        )
    if done.returncode != 0 or NETWORK_STATS_HEADING not in done.stdout:
        raise SystemExit(f"measuring the HTTP traffic of the {way} way failed:\n{done.stderr[-3000:]}")
    text = done.stdout.split(NETWORK_STATS_HEADING, 1)[1].lstrip()
    stats, _ = json.JSONDecoder().raw_decode(text)
    methods = stats.get("methods", {})
    return {
        "requests": sum(m.get("count", 0) for m in methods.values()),
        "megabytes": sum(m.get("downloaded_bytes", 0) for m in methods.values()) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", default=paths.EMBEDDED_API_URL)
    parser.add_argument("--aoi-file", type=Path, default=paths.AOI_FILE)
    parser.add_argument("--out", type=Path, default=paths.BUILD_DIR / "bench" / "cube.json")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per point-series way")
    parser.add_argument("--one-call-of", choices=("workshop", "notebook"), help=argparse.SUPPRESS)
    parser.add_argument("--args-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_call_of:
        _one_call_of(args.one_call_of, args.args_file)
        return 0

    api_url = ensure_api(args.api_url)
    odc.stac.configure_rio(cloud_defaults=True)
    bbox = tuple(float(v) for v in gpd.read_file(args.aoi_file).to_crs(4326).total_bounds)
    items = search_items(api_url, bbox=bbox, datetime=DATES)
    item_dicts = [item.to_dict() for item in items]
    so = (common_scale_offset(items, "red"), common_scale_offset(items, "nir"))
    threads = os.cpu_count() or 1
    print(f"{len(items)} scenes over the island, {DATES}; {threads} cores; each timing in a fresh process")

    with rasterio.Env(**GDAL_ENV):
        # warm-up: every file once, so that no measurement pays the cold disk cache alone
        jobs = overview_windows(items, bbox)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(read_window, jobs))

    workshop_runs, notebook_runs = [], []
    for _ in range(args.repeat):
        workshop_runs.append(in_fresh_process(point_series_workshop, item_dicts, bbox, so))
        centre = workshop_runs[-1][3]
        notebook_runs.append(in_fresh_process(point_series_notebook, item_dicts, centre, so))
    _, days_w, values_w, centre = workshop_runs[0]
    same_values = all(
        w[1] == days_w and n[1] == days_w and np.array_equal(w[2], values_w) and np.array_equal(n[2], values_w)
        for w, n in zip(workshop_runs, notebook_runs)
    )
    days_n, n_point_items = notebook_runs[0][1], notebook_runs[0][3]
    t_workshop = [min(run[0][k] for run in workshop_runs) for k in (0, 1)]
    t_notebook = [min(run[0][k] for run in notebook_runs) for k in (0, 1)]
    median_workshop = [statistics.median(run[0][k] for run in workshop_runs) for k in (0, 1)]
    median_notebook = [statistics.median(run[0][k] for run in notebook_runs) for k in (0, 1)]
    speedup = [w / n for w, n in zip(t_workshop, t_notebook)]
    median_speedup = [w / n for w, n in zip(median_workshop, median_notebook)]
    print(f"point time series at x={centre[0]:.0f}, y={centre[1]:.0f}: {len(days_n)} clear days; "
          f"seconds of the first call in a fresh process (cold) and of a second call (warm), "
          f"fastest of {args.repeat} processes (median)")
    print(f"  workshop (2048 chunks, {len(items)} scenes, {WORKSHOP_WORKERS} threads):"
          f"  cold {t_workshop[0]:6.3f} ({median_workshop[0]:.3f})  warm {t_workshop[1]:6.3f} ({median_workshop[1]:.3f})")
    print(f"  notebook (one pixel, {n_point_items} scenes, {POINT_READ_THREADS} threads):"
          f"     cold {t_notebook[0]:6.3f} ({median_notebook[0]:.3f})  warm {t_notebook[1]:6.3f} ({median_notebook[1]:.3f})")
    print(f"  speed-up: cold {speedup[0]:.1f}x ({median_speedup[0]:.1f}x), warm {speedup[1]:.1f}x "
          f"({median_speedup[1]:.1f}x) (target >= 20x); same values in every run: {same_values}")
    traffic = {way: http_traffic(way, item_dicts, bbox, centre, so) for way in ("workshop", "notebook")}
    fewer_requests = traffic["workshop"]["requests"] / traffic["notebook"]["requests"]
    fewer_bytes = traffic["workshop"]["megabytes"] / traffic["notebook"]["megabytes"]
    print("  HTTP traffic of one cold call (GDAL's counters): "
          + "; ".join(f"{way} {t['requests']} requests, {t['megabytes']:.1f} MB" for way, t in traffic.items())
          + f": {fewer_requests:.0f}x fewer requests, {fewer_bytes:.0f}x fewer bytes")

    t_cube, cube_pixels, shape_ = in_fresh_process(full_cube_odc, item_dicts, bbox)
    t_plain, plain_pixels = in_fresh_process(full_cube_rasterio, jobs, threads)
    cube_rate, plain_rate = cube_pixels / t_cube, plain_pixels / t_plain
    print(f"full cube {shape_} x {len(BANDS)} bands at {RESOLUTION} m:")
    print(f"  odc-stac + dask threads: {cube_pixels / 1e6:8.1f} Mpixel in {t_cube:6.2f} s = {cube_rate / 1e6:6.1f} Mpixel/s")
    print(f"  plain rasterio windows:  {plain_pixels / 1e6:8.1f} Mpixel in {t_plain:6.2f} s = {plain_rate / 1e6:6.1f} Mpixel/s")
    print(f"  wall-time ratio odc-stac / rasterio: {t_cube / t_plain:.2f}")

    result = {
        "machine": {"cores": threads, "python": platform.python_version(), "odc_stac": odc.stac.__version__},
        "scenes": len(items),
        "point_series": {
            "pixel_centre": list(centre), "clear_days": len(days_n),
            "repeat": args.repeat, "workshop_threads": WORKSHOP_WORKERS,
            "workshop_seconds": {"cold": t_workshop[0], "warm": t_workshop[1]},
            "notebook_seconds": {"cold": t_notebook[0], "warm": t_notebook[1]},
            "workshop_seconds_median": {"cold": median_workshop[0], "warm": median_workshop[1]},
            "notebook_seconds_median": {"cold": median_notebook[0], "warm": median_notebook[1]},
            "speedup_median": {"cold": median_speedup[0], "warm": median_speedup[1]},
            "workshop_scenes": len(items), "notebook_scenes": n_point_items, "notebook_threads": POINT_READ_THREADS,
            "speedup": {"cold": speedup[0], "warm": speedup[1]}, "target_speedup": 20, "same_values": bool(same_values),
            "http_traffic": traffic, "fewer_requests": fewer_requests, "fewer_bytes": fewer_bytes,
        },
        "full_cube": {
            "bands": list(BANDS), "resolution": RESOLUTION, "shape": shape_,
            "odc_stac_seconds": t_cube, "odc_stac_pixels": cube_pixels, "odc_stac_pixels_per_second": cube_rate,
            "rasterio_seconds": t_plain, "rasterio_pixels": plain_pixels, "rasterio_pixels_per_second": plain_rate,
            "rasterio_threads": threads, "wall_time_ratio": t_cube / t_plain,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
