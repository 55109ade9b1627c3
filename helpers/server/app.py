"""The ASGI app uvicorn runs: stac-fastapi-pgstac plus the data folder at ``/data/``.

Started by :func:`helpers.server.start` through ``python -m helpers.server.serve``
(uvicorn, factory mode) with its settings in environment variables (``names.ENV_*``
and ``names.API_ENVIRONMENT``). What differs from a stock stac-fastapi-pgstac app is
written here by hand, each with its reason: the socket DSN, the ``/data/`` files, Sort
v1.0.0 conformance, the full Query operators, 400s for bad searches, orjson responses,
COG byte ranges sent uncompressed.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import orjson
from brotli_asgi import BrotliMiddleware
from fastapi import FastAPI, Request
from stac_fastapi.extensions.sort import ItemCollectionSortExtension, SearchSortExtension
from stac_fastapi.extensions.sort.sort import SortConformanceClasses
from stac_fastapi.pgstac.app import instantiate_api
from stac_fastapi.pgstac.config import PostgresSettings, Settings
from stac_fastapi.pgstac.core import CoreCrudClient
from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
from stac_fastapi.pgstac.models.extensions import Extensions
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpers.server.names import DATA_ROUTE, ENV_DATA_DIR, ENV_DSN
from helpers.server.query import FullQueryExtension

SORT_V1_0 = {
    # Earth Search declares Sort v1.0.0 and pystac-client 0.9 recognises only v1.0.x
    # (it warns "does not conform to SORT" otherwise); sortby is the same in v1.1.0,
    # which only adds /sortables, so both versions are declared.
    "search": "https://api.stacspec.org/v1.0.0/item-search#sort",
    "features": "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
}


class SocketPostgresSettings(PostgresSettings):
    """PostgresSettings whose connection string is given whole (a Unix socket DSN)."""

    dsn: str = ""
    pguser: str = "postgres"
    pgpassword: str = ""
    pghost: str = ""
    pgport: int = 5432
    pgdatabase: str = "pgstac"

    @property
    def connection_string(self) -> str:  # type: ignore[override]
        return self.dsn


class DataFiles(StaticFiles):
    """The data folder with HTTP Range (starlette's FileResponse answers 206).

    StaticFiles already refuses paths that resolve outside the folder; hidden names
    (``.something``) are refused too, so nothing but catalogue files is ever served.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") for part in Path(path).parts if part not in ("", ".")):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


class GeoJSONResponse(Response):
    """A FeatureCollection serialised with orjson."""

    media_type = "application/geo+json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def _direct(result: object) -> object:
    return result if isinstance(result, Response) else GeoJSONResponse(result)


class DirectResponseClient(CoreCrudClient):
    """CoreCrudClient whose item searches return a ready Response.

    FastAPI serialises a returned dict through ``jsonable_encoder``, two thirds of a
    search's time in the API for Earth-Search-sized items. stac-fastapi's
    ``ENABLE_DIRECT_RESPONSE`` would skip it, but it looks for APIRoute objects in
    ``app.routes``, which FastAPI 0.165 hides behind included routers, so it finds none.
    """

    async def post_search(self, search_request, request, **kwargs):  # type: ignore[no-untyped-def]
        return _direct(await super().post_search(search_request, request=request, **kwargs))

    async def get_search(self, request, **kwargs):  # type: ignore[no-untyped-def]
        return _direct(await super().get_search(request, **kwargs))

    async def item_collection(self, collection_id, request, **kwargs):  # type: ignore[no-untyped-def]
        return _direct(await super().item_collection(collection_id, request, **kwargs))


class GeoJSONContentType:
    """Label item searches ``application/geo+json`` also when the Fields extension is used.

    stac-fastapi-pgstac answers a search with ``fields`` through a plain JSONResponse
    (``application/json``), although the body is the same GeoJSON FeatureCollection;
    the STAC API spec (and stac-api-validator) expect ``application/geo+json``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _is_item_search(path: str) -> bool:
        parts = path.rstrip("/").split("/")
        return path.rstrip("/") == "/search" or (
            len(parts) >= 4 and parts[1] == "collections" and parts[3] == "items"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_item_search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def relabel(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                message["headers"] = [
                    (k, b"application/geo+json")
                    if k.lower() == b"content-type" and v.startswith(b"application/json")
                    else (k, v)
                    for k, v in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relabel)


async def _bad_search(request: Request, exc: Exception) -> JSONResponse:
    """A search that pgstac cannot run because of its input is the client's error: HTTP 400.

    Without this, a value of the wrong type (``eo:cloud_cover < "abc"``) or malformed
    JSON in a GET parameter surfaces as a bare 500 with no hint for the learner.
    """
    if isinstance(exc, asyncpg.exceptions.PostgresError):
        message = exc.args[0] if exc.args else type(exc).__name__
        hint = getattr(exc, "hint", None)
        detail = f"Invalid search: {message}" + (f" ({hint})" if hint else "")
    else:
        detail = f"Invalid search: a parameter is not valid JSON ({exc})"
    return JSONResponse({"code": "BadRequest", "description": detail, "detail": detail}, status_code=400)


def create_app() -> FastAPI:
    """Build the app from the environment (uvicorn's ``--factory``)."""
    dsn = os.environ[ENV_DSN]
    data_dir = Path(os.environ[ENV_DATA_DIR])
    # Title, landing id and extensions come from API_ENVIRONMENT (set by the launcher).
    settings = Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await connect_to_db(app, postgres_settings=SocketPostgresSettings(dsn=dsn))
        yield
        await close_db_connection(app)

    extensions = Extensions(
        settings=settings,
        search_map={
            "query": FullQueryExtension(),
            "sort": SearchSortExtension(
                conformance_classes=[
                    SortConformanceClasses.ITEM_SEARCH_SORT,
                    SortConformanceClasses.ITEM_SEARCH_SORTABLES,
                    SORT_V1_0["search"],
                ]
            )
        },
        item_collection_map={
            "sort": ItemCollectionSortExtension(
                conformance_classes=[
                    SortConformanceClasses.FEATURES_SORT,
                    SortConformanceClasses.FEATURES_SORTABLES,
                    SORT_V1_0["features"],
                ]
            )
        },
    )
    api = instantiate_api(
        client=DirectResponseClient, settings=settings, extensions=extensions, lifespan=lifespan
    )
    api.app.add_exception_handler(asyncpg.exceptions.DataError, _bad_search)
    # pgstac's RAISE EXCEPTION on a search it cannot translate (unknown CQL2 operator, ...).
    api.app.add_exception_handler(asyncpg.exceptions.RaiseError, _bad_search)
    api.app.add_exception_handler(json.JSONDecodeError, _bad_search)
    api.app.add_middleware(GeoJSONContentType)
    _send_data_files_as_stored(api.app)
    api.app.mount(DATA_ROUTE, DataFiles(directory=data_dir, follow_symlink=False), name="data")
    return api.app


def _send_data_files_as_stored(app: FastAPI) -> None:
    """Keep stac-fastapi's compression for the API's JSON, not for the files at ``/data/``.

    Its Brotli middleware also compressed byte ranges of COGs for clients that accept it
    (browsers, ``requests``): CPU spent on DEFLATE tiles, and a 206 whose Content-Range
    counts other bytes than the body. S3 serves the ranges as stored; so does this.
    """
    app.user_middleware = [
        Middleware(BrotliMiddleware, *m.args, **{**m.kwargs, "excluded_handlers": [f"^{DATA_ROUTE}/"]})
        if m.cls is BrotliMiddleware
        else m
        for m in app.user_middleware
    ]
