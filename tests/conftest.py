"""Shared fixtures: the generated offline catalogue and the embedded STAC API."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from helpers import paths


@pytest.fixture(scope="session")
def catalogue() -> Path:
    """The offline Rhodes catalogue in ``data/``, built first when missing or out of date."""
    from helpers import synthetic

    synthetic.build(paths.DATA_DIR)
    return paths.DATA_DIR


@pytest.fixture(scope="session")
def api(catalogue: Path) -> Iterator[str]:
    """Root URL of the embedded STAC API, started for the session unless already running."""
    from helpers import server

    with server.embedded_api() as url:
        yield url
