"""Load the offline catalogue files into pgstac, with asset hrefs served by the API.

The generator writes asset hrefs relative to each item file so the data folder can be
moved; the API serves the data folder at ``/data/``, so each relative href becomes
``http://127.0.0.1:PORT/data/<path in the data folder>`` when loaded: GDAL then reads
the COGs block by block over HTTP, as it reads the live S3 hrefs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate

from helpers import paths
from helpers.server.names import DATA_ROUTE


INFERRED_LINK_RELS = {"self", "root", "parent", "collection", "item", "items", "child"}
"""Links the API writes itself from its own URL; the files' versions are dropped."""

CLOUD_COVER_QUERYABLE = {
    "description": "Percentage of cloud cover in the scene (0-100)",
    "title": "Cloud cover",
    "type": "number",
    "minimum": 0,
    "maximum": 100,
}
"""``eo:cloud_cover`` read as a number: ``<1`` and sorting compare numbers, not text."""

PGSTAC_SETTINGS = {
    # numberMatched in every search response, so pystac-client's matched() works.
    "context": "on",
}


class CatalogueError(RuntimeError):
    """The offline catalogue files are missing or malformed."""


def stac_dir(data_dir: Path) -> Path:
    """The catalogue files of ``data_dir`` (``paths.STAC_DIR`` for the default data folder)."""
    return Path(data_dir) / paths.STAC_DIR.name


def item_files(data_dir: Path) -> list[Path]:
    """The item files of the catalogue, or a CatalogueError saying how to build them."""
    root = stac_dir(data_dir)
    files = sorted((root / "items").glob("*.json"))
    if not (root / "collection.json").is_file() or not files:
        raise CatalogueError(
            f"No offline catalogue in {root} (collection.json and items/*.json). "
            "Build it first: `make data` (or `python -m helpers.synthetic`)."
        )
    return files


def fingerprint(data_dir: Path) -> str:
    """Changes whenever a catalogue file is added, removed or rewritten (stat only: fast)."""
    h = hashlib.sha1()
    for f in [stac_dir(data_dir) / "collection.json", *item_files(data_dir)]:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def served_href(href: str, base_file: Path, data_dir: Path, root_url: str) -> str:
    """The URL under which the API serves a file named relative to ``base_file``.

    Absolute URLs are kept, as are relative hrefs that leave the data folder (the API
    would answer 404 for those anyway).
    """
    if urlsplit(href).scheme or href.startswith("/"):
        return href
    target = Path(os.path.normpath(base_file.parent / href))
    try:
        relative = target.relative_to(Path(os.path.normpath(Path(data_dir).absolute())))
    except ValueError:
        return href
    return f"{root_url}{DATA_ROUTE}/{quote(relative.as_posix())}"


def _read(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"Cannot read {file}: {exc}. Rebuild it: `make data`.") from exc


def prepared(file: Path, data_dir: Path, root_url: str) -> dict[str, Any]:
    """A collection or item as loaded: served hrefs, no links the API writes itself."""
    doc = _read(file)
    data_dir = Path(data_dir).absolute()
    file = file.absolute()
    for asset in doc.get("assets", {}).values():
        if "href" in asset:
            asset["href"] = served_href(asset["href"], file, data_dir, root_url)
    doc["links"] = [
        {**link, "href": served_href(link["href"], file, data_dir, root_url)}
        for link in doc.get("links", [])
        if link.get("rel") not in INFERRED_LINK_RELS and "href" in link
    ]
    return doc


def migrate(dsn: str) -> str:
    """Install or upgrade the pgstac schema; returns its version."""
    db = PgstacDB(dsn=dsn)
    try:
        return Migrate(db).run_migration()
    finally:
        db.close()


def load(dsn: str, data_dir: Path, root_url: str) -> int:
    """Load (upsert) the collection and items; remove items no longer in the files.

    Returns the number of items in the database afterwards.
    """
    files = item_files(data_dir)
    collection = prepared(stac_dir(data_dir) / "collection.json", data_dir, root_url)
    items = [prepared(f, data_dir, root_url) for f in files]
    collection_id = collection.get("id")
    strays = [f.name for f, item in zip(files, items) if item.get("collection") != collection_id]
    if strays:
        raise CatalogueError(
            f"Items {strays[:3]} do not belong to collection {collection_id!r}. Rebuild: `make data`."
        )
    db = PgstacDB(dsn=dsn)
    try:
        loader = Loader(db=db)
        loader.load_collections(iter([collection]), Methods.upsert)
        loader.load_items(iter(items), Methods.upsert)
    finally:
        db.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute(
            "DELETE FROM items WHERE collection = %s AND NOT (id = ANY(%s))",
            (collection_id, [item["id"] for item in items]),
        )
        configure(conn)
        count = conn.execute(
            "SELECT count(*) FROM items WHERE collection = %s", (collection_id,)
        ).fetchone()
    return int(count[0]) if count else 0


def configure(conn: psycopg.Connection) -> None:
    """pgstac settings for parity with Earth Search (counts, numeric cloud cover)."""
    for name, value in PGSTAC_SETTINGS.items():
        conn.execute(
            "INSERT INTO pgstac_settings (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (name, value),
        )
    conn.execute(
        "SELECT upsert_queryable(%s, %s::jsonb, %s, %s)",
        ("eo:cloud_cover", json.dumps(CLOUD_COVER_QUERYABLE), "to_float", "BTREE"),
    )
