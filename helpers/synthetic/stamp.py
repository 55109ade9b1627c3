"""The build stamp: is the data folder up to date? (Light imports: answered in milliseconds.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import paths

GENERATOR_VERSION = "4"
"""Bump whenever the output changes: a stamp with another version means out of date."""

DEFAULT_SEED = 20230718

STAMP = ".rhodes-data.json"
"""Written last in the data folder: generator version, seed and every file with its size."""

LOCK = ".rhodes-data.lock"
"""Held by a running build (``flock``), so that a second one waits, then finds it done."""


def read_stamp(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(data_dir) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_up_to_date(data_dir: Path = paths.DATA_DIR, seed: int = DEFAULT_SEED) -> bool:
    """True when the stamp matches this generator and seed and every listed file is there
    with its recorded size (a few hundred ``stat`` calls: well under a second)."""
    data_dir = Path(data_dir)
    stamp = read_stamp(data_dir)
    if not stamp or stamp.get("generator_version") != GENERATOR_VERSION or stamp.get("seed") != seed:
        return False
    for rel, size in stamp.get("files", {}).items():
        try:
            if (data_dir / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True
