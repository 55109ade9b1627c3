"""Names shared by the controlling process and the uvicorn process (cheap to import)."""

ENV_DSN = "RHODES_PGSTAC_DSN"
"""asyncpg connection string of the private cluster (a Unix socket)."""

ENV_DATA_DIR = "RHODES_DATA_DIR"
"""The data folder served at ``/data/`` (the same variable helpers.paths reads)."""

LANDING_ID = "rhodes-offline"
"""The landing page id: how :func:`helpers.server.start` recognises its own server."""

DATA_ROUTE = "/data"
"""Where the API serves the data folder."""

API_ENVIRONMENT = {
    # Read by stac-fastapi's settings at import time (the landing page id among them),
    # hence passed as environment variables to the uvicorn process.
    "STAC_FASTAPI_TITLE": "Rhodes 2023 offline STAC API",
    "STAC_FASTAPI_DESCRIPTION": (
        "Offline replica of Earth Search's sentinel-2-l2a collection over Rhodes, "
        "July-August 2023 (synthetic pixels), for the geospatial Python workshop."
    ),
    "STAC_FASTAPI_LANDING_ID": LANDING_ID,
    "STAC_FASTAPI_VERSION": "1.0.0",
    # Earth Search's search extensions; no transactions (the catalogue is read-only).
    "ENABLED_EXTENSIONS": "query,sort,fields,filter,pagination,collection_search,free_text",
    "ENABLE_TRANSACTIONS_EXTENSIONS": "false",
    # Items are stored dehydrated against the collection's item_assets; merging them back
    # in PL/pgSQL costs ~5 ms per item, in stac-fastapi's (Rust) hydraters a fraction.
    "USE_API_HYDRATE": "true",
}
