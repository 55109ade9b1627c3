"""STAC search shared by the notebooks and the tests.

Public STAC APIs throttle and fail under workshop load (502, 503, slow answers), and a
learner who mistypes ``api_url`` should read what to do, not a 30-line traceback from
``requests``. The functions here add timeouts, retries and clear errors around
`pystac-client <https://pystac-client.readthedocs.io>`_; the notebooks still show the
plain ``Client.open(...).search(...)`` calls first, so the helpers shorten repetition
without hiding the lesson.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import pandas as pd
import pystac
import pystac_client
import shapely.geometry
from pystac_client.exceptions import APIError
from pystac_client.item_search import DatetimeLike, ItemSearch
from pystac_client.stac_api_io import StacApiIO
from pystac_client.warnings import DoesNotConformTo
from urllib3.util.retry import Retry

from helpers import paths

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "GDF_COLUMNS",
    "NoScenesFound",
    "SearchError",
    "items_to_geodataframe",
    "matched",
    "open_client",
    "search_items",
]

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
"""(connect, read) seconds: a dead host fails fast, a busy archive gets time to answer."""

DEFAULT_RETRIES = 3
"""Retries of a request that failed with 429/5xx or a dropped connection."""

RETRY_STATUS = (429, 500, 502, 503, 504)
"""HTTP statuses worth retrying: throttling and overloaded gateways (earth-search #17, #19)."""

GDF_COLUMNS = ["id", "datetime", "cloud_cover", "platform", "tile", "epsg", "geometry"]
"""Columns of :func:`items_to_geodataframe`, in order."""


class SearchError(RuntimeError):
    """A STAC search could not be done; the message says what is wrong and what to do."""


class NoScenesFound(SearchError):
    """The search ran fine but no scene matches the area, dates and cloud limit."""


def _retry(retries: int) -> Retry:
    """Retry throttled and failed requests, POST searches included, with backoff.

    A refused connection is retried once only: nothing listens at that address, and
    waiting longer does not change that.
    """
    return Retry(
        total=retries,
        connect=min(retries, 1),
        read=retries,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # also retry POST /search: a search changes nothing
        raise_on_status=False,  # hand the last error response to pystac-client
    )


def _unreachable_message(api_url: str, reason: str) -> str:
    return (
        f"Could not reach a STAC API at {api_url!r}: {reason}\n"
        "What to do: check the URL in the `api_url` parameter. For the offline Rhodes "
        f"catalogue use the embedded API {paths.EMBEDDED_API_URL!r} (the notebooks start "
        "it with helpers.server.ensure_api(api_url), or run `make serve` in a terminal); "
        f"when online, the live Earth Search API is {paths.EARTH_SEARCH_URL!r}."
    )


def short_reason(err: BaseException) -> str:
    """The first line of an error, without requests' nested reprs where possible."""
    text = str(err).strip() or type(err).__name__
    status = getattr(err, "status_code", None)
    if status is not None:  # the server answered, with an HTTP error
        return f"HTTP {status}: {text.splitlines()[0][:300]}"
    if "Connection refused" in text:
        return "connection refused (nothing is listening at that address)"
    if "timed out" in text.lower():
        return "the server did not answer in time"
    if "Name or service not known" in text or "Failed to resolve" in text:
        return "the host name could not be resolved (offline, or a typo in the URL?)"
    return text.splitlines()[0][:300]


def open_client(
    api_url: str,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> pystac_client.Client:
    """Open the STAC API at ``api_url`` with timeouts and retries.

    Raises :class:`SearchError` when nothing answers there or the answer is not a
    STAC API landing page.
    """
    if not str(api_url).startswith(("http://", "https://")):
        # pystac-client would take it for a local file and fail with a bare FileNotFoundError
        raise SearchError(_unreachable_message(api_url, "it does not start with http:// or https://"))
    stac_io = StacApiIO(timeout=timeout, max_retries=_retry(retries))
    try:
        return pystac_client.Client.open(api_url, stac_io=stac_io, timeout=timeout)
    except APIError as err:
        raise SearchError(_unreachable_message(api_url, short_reason(err))) from None
    except (ValueError, KeyError, pystac.STACError) as err:
        raise SearchError(
            f"{api_url!r} answered, but not with a STAC API landing page ({err}).\n"
            "What to do: check the URL in the `api_url` parameter: it is the root of a "
            f"STAC API, such as {paths.EMBEDDED_API_URL!r} (offline) or "
            f"{paths.EARTH_SEARCH_URL!r} (live)."
        ) from None


def _describe(
    collection: str,
    intersects: Any,
    bbox: Iterable[float] | None,
    datetime: DatetimeLike | None,
    max_cloud_cover: float | None,
) -> str:
    parts = [f"collection {collection!r}"]
    if intersects is not None:
        geom = shapely.geometry.shape(_geo_interface(intersects))
        parts.append(f"intersecting {geom.wkt[:120]}")
    if bbox is not None:
        parts.append(f"in bbox {[round(v, 4) for v in bbox]}")
    if datetime is not None:
        parts.append(f"dated {datetime}")
    if max_cloud_cover is not None:
        parts.append(f"with eo:cloud_cover < {max_cloud_cover}")
    return ", ".join(parts)


def _geo_interface(geometry: Any) -> Mapping[str, Any]:
    """A GeoJSON mapping from a shapely geometry, a GeoJSON dict or anything geo-like."""
    if isinstance(geometry, Mapping):
        return geometry
    if hasattr(geometry, "__geo_interface__"):
        return geometry.__geo_interface__
    raise SearchError(
        f"`intersects` must be a shapely geometry or a GeoJSON dict, not {type(geometry).__name__}."
    )


def search_items(
    api_url: str,
    *,
    collection: str = paths.COLLECTION,
    intersects: Any = None,
    bbox: Iterable[float] | None = None,
    datetime: DatetimeLike | None = None,
    max_cloud_cover: float | None = None,
    limit: int = 100,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> pystac.ItemCollection:
    """Search ``collection`` for scenes and return them as an ItemCollection.

    ``intersects`` is a shapely geometry or GeoJSON dict (lon/lat), ``bbox`` is
    ``(west, south, east, north)`` in degrees, ``datetime`` a STAC interval such as
    ``"2023-07-01/2023-08-31"``, ``max_cloud_cover`` keeps scenes with
    ``eo:cloud_cover`` strictly below it (the workshop's ``query=["eo:cloud_cover<1"]``).
    ``limit`` is the page size; all pages are fetched.

    Raises :class:`SearchError` when the API cannot be reached or the collection does
    not exist, :class:`NoScenesFound` when nothing matches.
    """
    if intersects is not None and bbox is not None:
        raise SearchError("Give either `intersects` or `bbox`, not both (STAC API rule).")
    client = open_client(api_url, timeout=timeout, retries=retries)
    kwargs: dict[str, Any] = {"collections": [collection], "limit": limit}
    if intersects is not None:
        kwargs["intersects"] = dict(_geo_interface(intersects))
    if bbox is not None:
        kwargs["bbox"] = [float(v) for v in bbox]
    if datetime is not None:
        kwargs["datetime"] = datetime
    if max_cloud_cover is not None:
        kwargs["query"] = {"eo:cloud_cover": {"lt": float(max_cloud_cover)}}
    what = _describe(collection, intersects, bbox, datetime, max_cloud_cover)
    try:
        items = client.search(**kwargs).item_collection()
    except DoesNotConformTo:
        raise SearchError(
            f"The STAC API at {api_url!r} is a static catalogue or declares no item search "
            "(conformance class item-search), so it cannot be searched.\nWhat to do: use "
            f"a STAC API such as {paths.EMBEDDED_API_URL!r} (offline) or "
            f"{paths.EARTH_SEARCH_URL!r} (live)."
        ) from None
    except APIError as err:
        raise SearchError(
            f"The STAC API at {api_url!r} failed the search for {what}: "
            f"{short_reason(err)}\nWhat to do: run the cell again in a minute (public "
            "APIs throttle under load); if it keeps failing, check the search arguments "
            f"or switch `api_url` (offline: {paths.EMBEDDED_API_URL!r})."
        ) from None
    if len(items) == 0:
        _check_collection(client, api_url, collection)
        raise NoScenesFound(
            f"No scenes found at {api_url!r} for {what}.\n"
            "What to do: widen the date range, raise the cloud limit or check the area "
            "(lon/lat order: Point(27.95, 36.20) is Rhodes). The offline Rhodes catalogue "
            "only holds July-August 2023 around Rhodes; the live Earth Search archive "
            f"({paths.EARTH_SEARCH_URL}) holds the whole Sentinel-2 record."
        )
    return items


def _check_collection(client: pystac_client.Client, api_url: str, collection: str) -> None:
    """Raise a clear error when ``collection`` is not in the catalogue (a typo)."""
    try:
        ids = sorted(c.id for c in client.get_collections())
    except APIError:
        return  # cannot list them: the plain "no scenes" message is still true
    if collection not in ids:
        raise SearchError(
            f"The STAC API at {api_url!r} has no collection {collection!r}.\n"
            f"What to do: pick one of {ids}."
        )


def matched(search: ItemSearch) -> int:
    """How many items ``search`` matches, counting them when the server sends no count.

    ``ItemSearch.matched()`` returns None when a server omits ``numberMatched`` and
    ``context.matched`` (pystac-client #22, #177); then the result pages are fetched
    and their items counted (bounded by the search's ``max_items``, if set).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="numberMatched or context.matched")
            found = search.matched()
        if found is not None:
            return int(found)
        return sum(len(page.get("features", [])) for page in search.pages_as_dicts())
    except APIError as err:
        raise SearchError(
            f"The STAC API at {search.url!r} failed to count the search: {short_reason(err)}\n"
            "What to do: run the cell again (a busy server often answers the second time); "
            "if it keeps failing, narrow the search or switch `api_url`."
        ) from None


def items_to_geodataframe(
    items: pystac.ItemCollection | Iterable[pystac.Item],
) -> gpd.GeoDataFrame:
    """One row per scene: id, datetime (UTC), cloud cover, platform, MGRS tile, EPSG, footprint.

    A table and a map of the footprints are how a learner checks a search result at a
    glance; the column names are in :data:`GDF_COLUMNS`.
    """
    rows = []
    for item in items:
        props = item.properties
        rows.append(
            {
                "id": item.id,
                "datetime": item.datetime or props.get("start_datetime"),
                "cloud_cover": props.get("eo:cloud_cover"),
                "platform": props.get("platform"),
                "tile": _tile(props),
                "epsg": props.get("proj:epsg") or _epsg_from_code(props.get("proj:code")),
                "geometry": shapely.geometry.shape(item.geometry) if item.geometry else None,
            }
        )
    frame = pd.DataFrame(rows, columns=GDF_COLUMNS)
    frame["datetime"] = pd.to_datetime(frame["datetime"], utc=True)
    frame["cloud_cover"] = frame["cloud_cover"].astype("float64")
    frame["epsg"] = frame["epsg"].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")


def _tile(props: Mapping[str, Any]) -> str | None:
    """MGRS tile such as ``35SNA`` from ``grid:code`` or the ``mgrs:*`` properties."""
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code.removeprefix("MGRS-")
    parts = [props.get(k) for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")]
    if all(p is not None for p in parts):
        return f"{int(parts[0]):02d}{parts[1]}{parts[2]}"
    return None


def _epsg_from_code(code: Any) -> int | None:
    """EPSG number from projection extension v2's ``proj:code`` (``"EPSG:32635"``)."""
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None
