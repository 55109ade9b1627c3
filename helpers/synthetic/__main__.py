"""``python -m helpers.synthetic`` / ``rhodes-data``: generate the offline catalogue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import paths
from helpers.synthetic.stamp import DEFAULT_SEED, is_up_to_date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rhodes-data",
        description="Generate the offline Rhodes Sentinel-2 L2A catalogue (STAC JSON, COGs, "
                    "vector files). Skips the work when the data folder is already up to date.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--data-dir", type=Path, default=paths.DATA_DIR,
                        help=f"output folder (default {paths.DATA_DIR}, or $RHODES_DATA_DIR)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if not args.force and args.data_dir.is_dir() and is_up_to_date(args.data_dir, args.seed):
        print(f"{args.data_dir}: up to date, nothing to do (seed {args.seed})")
        return 0
    from helpers.synthetic.pipeline import build  # numpy, rasterio, geopandas: only now

    try:
        report = build(args.data_dir, seed=args.seed, force=args.force, workers=args.workers)
    except (NotADirectoryError, PermissionError) as exc:
        print(f"rhodes-data: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.skipped:
        for stage, seconds in report.timings.items():
            print(f"  {stage:<24} {seconds:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
