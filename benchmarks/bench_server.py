"""Benchmark the embedded STAC API: cold start, warm start, search latency, item_collection().

Targets (issue 4): cold start (new cluster, migrate, load) <= 30 s, warm start (existing
cluster) <= 3 s, median latency of the workshop's searches <= 25 ms, item_collection() of
the 73-item island search <= 250 ms. Also the median time of the requests GDAL makes
for a COG at ``/data/`` (HEAD, the 16 kB header, a 200 kB block range), which every
cold file open pays. Runs on its own cluster folder and a free port, so a
server started by ``make serve`` is neither used nor disturbed. Prints the figures and
writes ``build/bench/server.json``.

    python benchmarks/bench_server.py [--data-dir DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from helpers import paths

TARGETS = {"cold_start_s": 30.0, "warm_start_s": 3.0, "search_median_ms": 25.0, "item_collection_ms": 250.0}
POINT = {"type": "Point", "coordinates": [27.95, 36.20]}
ISLAND_BBOX = [27.68, 35.87, 28.25, 36.46]
DATES = "2023-07-01/2023-08-31"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workshop_searches(url: str) -> dict[str, dict]:
    """The workshop's three searches, as the POST /search bodies pystac-client sends."""
    from pystac_client.item_search import ItemSearch

    base = {"collections": [paths.COLLECTION], "datetime": DATES}
    searches = {
        "point": {**base, "intersects": POINT},
        "point_cloud_below_1": {**base, "intersects": POINT, "query": ["eo:cloud_cover<1"]},
        "island_bbox": {**base, "bbox": ISLAND_BBOX},
    }
    return {name: ItemSearch(f"{url}/search", **kw).get_parameters() for name, kw in searches.items()}


ASSET_REQUESTS = {"HEAD": None, "range_16kB": "bytes=0-16383", "range_200kB": "bytes=1000000-1199999"}
"""What GDAL sends for a COG: HEAD (the size), the first 16 kB (the header), then blocks."""


def asset_requests(url: str, href: str, repeats: int) -> dict[str, float]:
    """Median milliseconds of each kind of asset request, on one kept-alive connection."""
    import http.client
    import urllib.parse

    parsed = urllib.parse.urlsplit(href)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    medians = {}
    for name, byte_range in ASSET_REQUESTS.items():
        times = []
        for _ in range(repeats + 1):  # the first one opens the connection: not counted
            t0 = time.perf_counter()
            connection.request("HEAD" if byte_range is None else "GET", parsed.path,
                               headers={} if byte_range is None else {"Range": byte_range})
            response = connection.getresponse()
            response.read()
            times.append((time.perf_counter() - t0) * 1000)
            if response.status != (200 if byte_range is None else 206):
                raise SystemExit(f"{name} of {href}: HTTP {response.status}")
        medians[name] = statistics.median(times[1:])
    connection.close()
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=paths.DATA_DIR)
    parser.add_argument("--repeats", type=int, default=50, help="requests per search (median)")
    args = parser.parse_args(argv)

    # A private cluster folder for the benchmark (reachable by the postgres user when root).
    base = Path(tempfile.mkdtemp(prefix="rhodes-bench-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    base.chmod(0o755)
    os.environ["RHODES_PGSTAC_DIR"] = str(base)

    import requests
    from pystac_client import Client

    from helpers import server
    from helpers.server.catalogue import CatalogueError

    port = free_port()
    results: dict[str, object] = {"port": port, "data_dir": str(args.data_dir)}
    try:
        t0 = time.perf_counter()
        try:
            url = server.start(port=port, data_dir=args.data_dir)
        except CatalogueError as exc:
            print(exc, file=sys.stderr)
            return 1
        results["cold_start_s"] = time.perf_counter() - t0

        server.stop(data_dir=args.data_dir)
        t0 = time.perf_counter()
        server.start(port=port, data_dir=args.data_dir)
        results["warm_start_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        server.start(port=port, data_dir=args.data_dir)
        results["reuse_running_s"] = time.perf_counter() - t0

        session = requests.Session()
        latencies: dict[str, float] = {}
        matched: dict[str, int] = {}
        all_ms: list[float] = []
        for name, body in workshop_searches(url).items():
            session.post(f"{url}/search", json=body, timeout=30).raise_for_status()  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                response = session.post(f"{url}/search", json=body, timeout=30)
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            matched[name] = response.json().get("numberMatched")
            latencies[name] = statistics.median(times)
            all_ms += times
        results["search_median_ms_by_query"] = latencies
        results["search_numberMatched"] = matched
        results["search_median_ms"] = statistics.median(all_ms)

        client = Client.open(url)
        times = []
        for _ in range(max(5, args.repeats // 10)):
            search = client.search(collections=[paths.COLLECTION], bbox=ISLAND_BBOX, datetime=DATES)
            t0 = time.perf_counter()
            items = search.item_collection()
            times.append((time.perf_counter() - t0) * 1000)
        results["item_collection_items"] = len(items)
        results["item_collection_ms"] = statistics.median(times)
        # The same pages as plain dicts: the server's and HTTP's share, without pystac's
        # Item.from_dict (deep copies, extension migrations) on the client.
        times = []
        for _ in range(max(5, args.repeats // 10)):
            search = client.search(collections=[paths.COLLECTION], bbox=ISLAND_BBOX, datetime=DATES)
            t0 = time.perf_counter()
            search.item_collection_as_dict()
            times.append((time.perf_counter() - t0) * 1000)
        results["item_collection_as_dict_ms"] = statistics.median(times)
        results["asset_request_median_ms"] = asset_requests(url, items[0].assets["red"].href, args.repeats * 4)
    finally:
        server.stop(data_dir=args.data_dir)
        shutil.rmtree(base, ignore_errors=True)

    # The machine is shared (2 cores): the load says how much the figures are worth.
    results["load_average_1min"] = os.getloadavg()[0]
    results["targets"] = TARGETS
    results["ratios"] = {k: results[k] / v for k, v in TARGETS.items()}  # < 1: within target
    print(f"Embedded STAC API on {args.data_dir} (load average {results['load_average_1min']:.1f} on {os.cpu_count()} cores)")
    units = {"cold_start_s": "s", "warm_start_s": "s", "search_median_ms": "ms", "item_collection_ms": "ms"}
    for key, target in TARGETS.items():
        value = results[key]
        verdict = "ok" if value <= target else "OVER TARGET"
        print(f"  {key:<20} {value:8.3f} {units[key]:<2} (target {target:g} {units[key]}, ratio {value / target:.2f}) {verdict}")
    for name, ms in latencies.items():
        print(f"    {name:<22} median {ms:6.2f} ms, numberMatched {matched[name]}")
    print(
        f"  item_collection() returned {results['item_collection_items']} items; "
        f"the same pages as dicts (no pystac parsing) {results['item_collection_as_dict_ms']:.1f} ms"
    )
    print("  COG requests (median): " + ", ".join(
        f"{name} {ms:.2f} ms" for name, ms in results["asset_request_median_ms"].items()))
    out = paths.BUILD_DIR / "bench" / "server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
