"""The offline catalogue's build: wall time, disk, memory, and the up-to-date check.

Builds the full catalogue (73 items, ~580 COGs) into a scratch folder with ``--force``,
measures the wall time per stage, the disk used (blocks, symlinks not followed), the
peak resident memory of the build's processes (``ru_maxrss`` of this process and of the
worker pool), then times ``is_up_to_date`` and the CLI's "nothing to do" path.

Targets (issue 3, this 2-core machine): full build <= 300 s, <= 3 GB on disk; the
up-to-date check < 1 s. The machine is shared: the figure is one run, printed with the
load average before and after, and with the CPU time of the build (this process and its
workers), which other jobs do not inflate: CPU / 2 is the wall time on 2 idle cores.

    python benchmarks/bench_data.py [--data-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from helpers import paths, synthetic

TARGETS = {"build_seconds_max": 300.0, "disk_gb_max": 3.0, "up_to_date_seconds_max": 1.0}


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the worker pool)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=paths.BUILD_DIR / "bench" / "data-scratch",
                        help="scratch folder for the build (deleted afterwards unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch build")
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir
    if data_dir.resolve() == paths.DATA_DIR.resolve():
        parser.error("use a scratch folder, not the project's data/ (it is rebuilt with --force)")

    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    report = synthetic.build(data_dir, force=True)
    build_s = time.perf_counter() - t0
    cpu_s = _cpu_seconds() - cpu0
    load_after = os.getloadavg()[0]
    disk = synthetic.disk_usage(data_dir)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB (KiB) to MB
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6

    t1 = time.perf_counter()
    fresh = synthetic.is_up_to_date(data_dir)
    check_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "helpers.synthetic", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, check=True)
    cli_s = time.perf_counter() - t2

    figures = {
        "items": report.items,
        "files": report.files,
        "build_seconds": round(build_s, 1),
        "build_cpu_seconds": round(cpu_s, 1),
        "build_seconds_if_cores_free": round(cpu_s / min(2, os.cpu_count() or 1), 1),
        "stage_seconds": report.timings,
        "disk_gb": round(disk / 1e9, 3),
        "bytes_on_disk": report.bytes,
        "burned_area_km2": report.burned_area_km2,
        "peak_rss_mb_main": round(rss_self),
        "peak_rss_mb_worker": round(rss_children),
        "up_to_date": fresh,
        "up_to_date_seconds": round(check_s, 4),
        "cli_nothing_to_do_seconds": round(cli_s, 2),
        "cli_output": cli.stdout.strip(),
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "cpu_count": os.cpu_count(),
        "targets": TARGETS,
        "ratios": {
            "build_vs_target": round(build_s / TARGETS["build_seconds_max"], 2),
            "disk_vs_target": round(disk / 1e9 / TARGETS["disk_gb_max"], 2),
            "up_to_date_vs_target": round(check_s / TARGETS["up_to_date_seconds_max"], 4),
        },
    }
    print(f"full build: {build_s:.0f} s for {report.items} items ({build_s / TARGETS['build_seconds_max']:.2f} x the 300 s budget), "
          f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores")
    print(f"  CPU time {cpu_s:.0f} s (this process and its workers): {cpu_s / min(2, os.cpu_count() or 1):.0f} s "
          f"of wall time on 2 otherwise idle cores")
    for stage, seconds in report.timings.items():
        print(f"  {stage:<24} {seconds:8.1f} s")
    print(f"disk: {disk / 1e9:.2f} GB ({disk / 1e9 / TARGETS['disk_gb_max']:.2f} x the 3 GB budget)")
    print(f"peak RSS: main {rss_self:.0f} MB, largest worker {rss_children:.0f} MB")
    print(f"burn scar: {report.burned_area_km2:.1f} km2")
    print(f"up-to-date check: {check_s * 1000:.1f} ms (is_up_to_date={fresh}); CLI 'nothing to do' run: {cli_s:.2f} s")
    out = paths.BUILD_DIR / "bench" / "bench_data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
