"""Root conftest: applies to the notebooks collected by nbval as well as to tests/."""

from __future__ import annotations

import pytest


def pytest_collectstart(collector: pytest.Collector) -> None:
    """nbval: compare ``text/plain``, not HTML reprs (xarray and dask embed random ids in them)."""
    if type(collector).__name__ == "IPyNbFile":
        collector.skip_compare = (*collector.skip_compare, "text/html")
