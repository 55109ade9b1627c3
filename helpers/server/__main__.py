"""``python -m helpers.server start|stop|status|reset [--port N]`` (``rhodes-server``).

``make serve`` / ``make stop`` / ``make status`` call the first three; ``reset`` deletes
the private PostgreSQL cluster (rebuilt from the catalogue files on the next start).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import paths
from helpers.server import ServerError, reset, start, status, stop
from helpers.server.catalogue import CatalogueError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rhodes-server",
        description="The embedded STAC API of the offline Rhodes catalogue "
        "(PostgreSQL + pgstac + stac-fastapi, COGs over HTTP at /data/).",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "reset"])
    parser.add_argument("--port", type=int, default=paths.PORT, help=f"API port (default {paths.PORT}, or $PORT)")
    parser.add_argument("--data-dir", type=Path, default=paths.DATA_DIR, help="data folder (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(start(port=args.port, data_dir=args.data_dir))
        elif args.command == "stop":
            print(stop(data_dir=args.data_dir))
        elif args.command == "reset":
            print(reset(data_dir=args.data_dir))
        else:
            print(status(data_dir=args.data_dir))
    except (ServerError, CatalogueError) as exc:
        print(f"rhodes-server {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
