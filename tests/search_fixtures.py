"""A tiny loopback STAC API for the unit tests of ``helpers.search``.

Hand-written on purpose (``http.server``): it must misbehave on demand, which a real
stac-fastapi does not: send no ``numberMatched``, fail the first searches with 503,
or answer with something that is not a STAC API. It pages results like Earth Search
(POST ``next`` links with a token) and records every search body it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "search"
"""Earth-Search-shaped ``sentinel-2-l2a`` items, one JSON file each."""


def fixture_items() -> list[dict[str, Any]]:
    """The fixture items, newest first (Earth Search's default order)."""
    items = [json.loads(p.read_text()) for p in sorted(FIXTURE_DIR.glob("*.json"))]
    return sorted(items, key=lambda i: i["properties"]["datetime"], reverse=True)


@dataclass
class FakeStac:
    """What the fake API serves and how it misbehaves; ``searches`` records the bodies."""

    features: list[dict[str, Any]] = field(default_factory=fixture_items)
    collections: list[str] = field(default_factory=lambda: ["sentinel-2-l2a"])
    send_count: bool = False
    fail_first: int = 0
    fail_after: int | None = None  # answer this many searches, then 503 to every one
    not_stac: bool = False
    no_search: bool = False
    collections_busy: bool = False  # the landing page answers, /collections says 503
    searches: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


def _handler(state: FakeStac) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if state.not_stac and path == "":
                self._send(200, "<html><body>Welcome to nginx!</body></html>", "text/html")
            elif path == "":
                self._send(200, self._landing())
            elif path == "/collections" and state.collections_busy:
                self._send(503, {"code": "ServiceUnavailable", "description": "busy"})
            elif path == "/collections":
                cols = [self._collection(c) for c in state.collections]
                self._send(200, {"collections": cols, "links": []})
            else:
                self._send(404, {"code": "NotFound", "description": f"no {path}"})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/search":
                self._send(404, {"code": "NotFound", "description": self.path})
                return
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.searches.append(body)
            if state.fail_after is not None and len(state.searches) > state.fail_after:
                self._send(503, {"code": "ServiceUnavailable", "description": "busy"})
                return
            if state.fail_first > 0:
                state.fail_first -= 1
                self._send(503, {"code": "ServiceUnavailable", "description": "busy"})
                return
            features = [
                f for f in state.features if f["collection"] in body.get("collections", [])
            ]
            start = int(body.get("token", 0))
            limit = int(body.get("limit", 10))
            page = features[start : start + limit]
            links: list[dict[str, Any]] = []
            if start + limit < len(features):
                links.append(
                    {
                        "rel": "next",
                        "href": f"{state.url}/search",
                        "method": "POST",
                        "body": {"token": start + limit},
                        "merge": True,
                    }
                )
            answer: dict[str, Any] = {
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberReturned": len(page),
            }
            if state.send_count:
                answer["numberMatched"] = len(features)
            self._send(200, answer)

        def _landing(self) -> dict[str, Any]:
            conforms = [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/collections",
            ]
            if not state.no_search:
                conforms += [
                    "https://api.stacspec.org/v1.0.0/item-search",
                    "https://api.stacspec.org/v1.0.0/item-search#query",
                ]
            return {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "fake-earth-search",
                "description": "A loopback STAC API for unit tests",
                "conformsTo": conforms,
                "links": [
                    {"rel": "self", "type": "application/json", "href": state.url},
                    {"rel": "root", "type": "application/json", "href": state.url},
                    {"rel": "data", "type": "application/json", "href": f"{state.url}/collections"},
                    {
                        "rel": "search",
                        "type": "application/geo+json",
                        "href": f"{state.url}/search",
                        "method": "POST",
                    },
                ],
            }

        def _collection(self, cid: str) -> dict[str, Any]:
            return {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": cid,
                "description": cid,
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
                },
                "links": [],
            }

    return Handler


@contextmanager
def fake_stac_api(state: FakeStac | None = None) -> Iterator[FakeStac]:
    """Serve ``state`` on a free loopback port for the duration of the block."""
    state = state or FakeStac()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
