"""stac-api-validator (a peer's conformance suite) against the embedded API.

Runs core, features, item-search, filter, query, sort and fields on the hand-written
catalogue (tests/server_fixtures.py, whose values the query checks need). The machine
is offline: the validator's JSON-schema checks (stac-validator, pystac) fetch schemas
from schemas.stacspec.org and stac-extensions.github.io, which pytest-socket blocks, so
those checks are reported as NOT RUN, never as passed. Every other error must be one
of the known, explained failures below; a new error, or a known one that no longer
occurs, fails the test (update KNOWN_FAILURES and the report then).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import server_fixtures as fx
from server_fixtures import Served, served  # noqa: F401  (served: fixture)

pytestmark = pytest.mark.slow

CONFORMANCE = [
    "core", "features", "item-search", "filter",
    "item-search#query", "item-search#sort", "item-search#fields",
]

NOT_RUN_OFFLINE: Callable[[str], bool] = lambda e: bool(
    re.search(r"schemas\.stacspec\.org|stac-extensions\.github\.io|geojson\.org", e)
)

KNOWN_FAILURES: dict[str, Callable[[str], bool]] = {
    # The validator sends "collections": "<id>" (a string) in POST bodies; the STAC API
    # spec says an array, and stac-fastapi answers 400. The same checks over GET pass.
    "validator: POST collections sent as a string (400)": lambda e: (
        '"collections": "sentinel-2-l2a"' in e and "status code 400 instead of 200" in e
    ),
    # The validator's "in" check treats the property as a list (set of characters for a
    # string), and after a failed POST it re-checks the previous GET's body.
    "validator: 'in' check assumes an array-valued property": lambda e: (
        '{"in": ' in e and "had non-matching results" in e
    ),
    # stac-fastapi accepts "fields": null (treated as absent) instead of answering 400.
    "stac-fastapi: fields=null accepted": lambda e: '{"fields": null}' in e,
    # pgstac's Fields semantics: an exclude-only request keeps every other property, and
    # include of a property under an excluded parent returns only that (no default set).
    "pgstac: exclude-only fields keeps the other properties": lambda e: "should have been excluded" in e,
    "pgstac: include under an excluded parent drops the default fields": lambda e: "fewer than 5 fields" in e,
}


def test_stac_api_validator(served: Served) -> None:  # noqa: F811
    from stac_api_validator.validations import QueryConfig, validate_api

    warnings, errors = validate_api(
        root_url=served.start(),
        ccs_to_validate=CONFORMANCE,
        collection="sentinel-2-l2a",
        geometry=json.dumps({"type": "Point", "coordinates": list(fx.POINT)}),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property="properties.eo:cloud_cover",
        validate_pagination=True,
        query_config=QueryConfig(
            query_comparison_field="eo:cloud_cover",
            query_eq_value="0.5", query_neq_value="0.5",
            query_lt_value="1", query_lte_value="1", query_gt_value="1", query_gte_value="1",
            query_substring_field="platform",
            query_starts_with_value="sentinel", query_ends_with_value="2a",
            query_contains_value="nel-2",
            query_in_field="platform", query_in_values="sentinel-2a,sentinel-2b",
        ),
        transaction_collection=None,
        headers={},
    )
    errors = list(errors)
    not_run = [e for e in errors if NOT_RUN_OFFLINE(e)]
    explained = {name: [e for e in errors if match(e) and not NOT_RUN_OFFLINE(e)] for name, match in KNOWN_FAILURES.items()}
    unexplained = [e for e in errors if not NOT_RUN_OFFLINE(e) and not any(m(e) for m in KNOWN_FAILURES.values())]

    print(f"\nstac-api-validator on {served.url}: {len(errors)} errors, {len(list(warnings))} warnings")
    print(f"  NOT RUN offline (JSON schema fetches blocked): {len(not_run)}")
    for name, hits in explained.items():
        print(f"  known failure, {len(hits):2d}x: {name}")
    assert not unexplained, "unexplained validator errors:\n" + "\n".join(unexplained)
    assert all(explained.values()), (
        "a known failure no longer occurs; update KNOWN_FAILURES: "
        + ", ".join(name for name, hits in explained.items() if not hits)
    )
