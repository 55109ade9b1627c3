"""The checks a learner runs before the workshop (``00-check-setup.ipynb``).

Each check answers one question and, when the answer is no, says in one line what to do.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from importlib import metadata

from helpers import paths

# (import name, distribution name) of what the lessons import.
PACKAGES = [
    ("pystac", "pystac"),
    ("pystac_client", "pystac-client"),
    ("rasterio", "rasterio"),
    ("rioxarray", "rioxarray"),
    ("xarray", "xarray"),
    ("numba", "numba"),  # compiles helpers.ndvi's kernel
    ("dask", "dask"),
    ("distributed", "distributed"),
    ("odc.stac", "odc-stac"),
    ("geopandas", "geopandas"),
    ("shapely", "shapely"),
    ("matplotlib", "matplotlib"),
    ("graphviz", "graphviz"),
]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok     " if self.ok else "MISSING"
        text = f"{mark} {self.name:<24} {self.detail}"
        return text if self.ok else f"{text}\n        -> {self.fix}"


def check_packages() -> list[Check]:
    checks = []
    for module, dist in PACKAGES:
        try:
            importlib.import_module(module)
            checks.append(Check(dist, True, metadata.version(dist)))
        except ImportError as error:
            checks.append(Check(dist, False, str(error), "run `make setup` (or `conda env create -f environment.yml`)"))
    return checks


def check_graphviz() -> Check:
    dot = shutil.which("dot")
    if dot:
        return Check("graphviz (dot)", True, "found")
    return Check("graphviz (dot)", False, "the `dot` program is not on PATH",
                 "install Graphviz: `apt-get install graphviz` or `conda install -c conda-forge graphviz`")


def check_data() -> Check:
    from helpers import synthetic

    if synthetic.is_up_to_date(paths.DATA_DIR):
        return Check("offline data", True, "data/ is built and up to date")
    return Check("offline data", False, "data/ is missing or out of date", "run `make data` (about 5 minutes)")


def check_api(api_url: str) -> Check:
    """The same client the lessons use (``helpers.search.open_client``), so the advice matches theirs."""
    from pystac_client.exceptions import APIError

    from helpers.search import SearchError, open_client, short_reason

    try:
        client = open_client(api_url, retries=0)
        collections = sorted(c.id for c in client.get_collections())
        return Check("STAC API", True, f"reachable, collections: {', '.join(collections)}")
    except APIError as error:  # the landing page answered, the list of collections did not
        return Check("STAC API", False, f"{api_url} failed to list its collections: {short_reason(error)}",
                     "run the check again in a minute (a busy server); if it keeps failing, switch `api_url`")
    except SearchError as error:
        problem, _, advice = str(error).partition("What to do:")
        return Check("STAC API", False, problem.strip().splitlines()[0], advice.strip() or "check `api_url`")


def check_dask() -> Check:
    import dask.array as da

    total = int(da.ones((1000, 1000), chunks=250).sum().compute(scheduler="threads"))
    if total == 1_000_000:
        return Check("dask", True, "a 16-chunk sum computes with threads")
    return Check("dask", False, f"a sum of ones gave {total}", "reinstall dask: `make setup`")


def run_checks(api_url: str) -> list[Check]:
    """Every check, in the order a learner would fix them."""
    return [*check_packages(), check_graphviz(), check_data(), check_api(api_url), check_dask()]


def report(checks: list[Check]) -> str:
    missing = [c for c in checks if not c.ok]
    lines = [c.line() for c in checks]
    lines.append("All set for the workshop." if not missing else f"{len(missing)} thing(s) to fix, see the lines marked MISSING.")
    return "\n".join(lines)
