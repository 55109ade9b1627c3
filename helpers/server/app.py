"""The ASGI app uvicorn runs: stac-fastapi-pgstac plus the data folder at ``/data/``.

Started by :func:`helpers.server.start` through ``python -m helpers.server.serve``
(uvicorn, factory mode) with its settings in environment variables (``names.ENV_*``
and ``names.API_ENVIRONMENT``). What differs from a stock stac-fastapi-pgstac app is
written here by hand, each with its reason: the socket DSN, the ``/data/`` files, Sort
v1.0.0 conformance, the full Query operators, 400s for bad searches, orjson responses,
and the COGs served beside the API (as stored, a byte range in one read).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import orjson
from fastapi import FastAPI, Request
from stac_fastapi.extensions.sort import ItemCollectionSortExtension, SearchSortExtension
from stac_fastapi.extensions.sort.sort import SortConformanceClasses
from stac_fastapi.pgstac.app import instantiate_api
from stac_fastapi.pgstac.config import PostgresSettings, Settings
from stac_fastapi.pgstac.core import CoreCrudClient
from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
from stac_fastapi.pgstac.models.extensions import Extensions
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
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
    """The data folder, with HTTP Range answered as S3 does (206 and Content-Range).

    StaticFiles already refuses paths that resolve outside the folder; hidden names
    (``.something``) are refused too, so nothing but catalogue files is ever served.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        if any(part.startswith(".") for part in Path(path).parts if part not in ("", ".")):
            raise HTTPException(status_code=404)
        try:
            # starlette looks the file up in a worker thread; for a local stat that hop
            # costs more than the stat itself
            full_path, stat_result = self.lookup_path(path)
        except (OSError, ValueError):  # name too long, null byte, no permission
            raise HTTPException(status_code=404) from None
        if stat_result is None or not stat.S_ISREG(stat_result.st_mode):
            raise HTTPException(status_code=404)
        return self.file_response(full_path, stat_result, scope)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        """A single byte range (what GDAL asks for) read at once; anything else as starlette does.

        starlette's FileResponse reads a range through several hops to a worker thread
        (open, seek, each 64 kB, close) and a disconnect watcher: 0.67 ms of the app's time
        for a 16 kB range, against 0.08 ms here with one ``pread`` (measured in-process);
        a cold COG open makes three requests per file. Written by hand for that reason.
        """
        response = super().file_response(full_path, stat_result, scope, status_code)
        request = Headers(scope=scope)
        byte_range = _single_byte_range(request.get("range"), stat_result.st_size)
        if (
            byte_range is None
            or response.status_code != 200
            or scope["method"] != "GET"
            or "if-range" in request
        ):
            return response  # whole file, HEAD, several ranges, malformed or unsatisfiable
        start, end = byte_range
        with open(full_path, "rb") as file:
            body = os.pread(file.fileno(), end - start, start)
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        headers["content-range"] = f"bytes {start}-{start + len(body) - 1}/{stat_result.st_size}"
        return Response(body, status_code=206, headers=headers)


_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _single_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a satisfiable single range, else None."""
    match = _BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # "-N": the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    return (start, end) if start < end else None


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


def create_app() -> FilesBesideAPI:
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
    return FilesBesideAPI(api.app, DataFiles(directory=data_dir, follow_symlink=False))


class FilesBesideAPI:
    """The COGs at ``/data/`` answered directly, everything else (and lifespan) by the API.

    Like S3 beside Earth Search: a byte range never passes through the API's middleware
    (CORS, proxy headers, and Brotli, which compressed ranges for clients that accept br,
    so that Content-Range counted other bytes than the body). A 404 or 405 from the files
    is still a proper HTTP answer (starlette's ExceptionMiddleware).
    """

    def __init__(self, api: FastAPI, files: StaticFiles) -> None:
        self.api = api
        self.files = ExceptionMiddleware(files)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(f"{DATA_ROUTE}/"):
            await self.files({**scope, "root_path": scope.get("root_path", "") + DATA_ROUTE}, receive, send)
        else:
            await self.api(scope, receive, send)
