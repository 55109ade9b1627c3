"""The Query-extension rewrite (helpers/server/query.py): pure, no server needed."""

from __future__ import annotations

import pytest

from helpers.server.query import to_pgstac_query


def test_comparisons_pass_through() -> None:
    query = {"eo:cloud_cover": {"lt": 1, "gte": 0}, "platform": {"eq": "sentinel-2a"}}
    assert to_pgstac_query(query) == query


@pytest.mark.parametrize(
    ("op", "value", "pattern"),
    [
        ("startsWith", "sentinel", "sentinel%"),
        ("endsWith", "2a", "%2a"),
        ("contains", "nel-2", "%nel-2%"),
        # LIKE wildcards and the escape character in the value match themselves.
        ("startsWith", "50%_off\\", "50\\%\\_off\\\\%"),
    ],
)
def test_string_operators_become_like_patterns(op: str, value: str, pattern: str) -> None:
    assert to_pgstac_query({"platform": {op: value}}) == {"platform": {"like": pattern}}


def test_in_keeps_its_list() -> None:
    assert to_pgstac_query({"platform": {"in": ["sentinel-2a", "sentinel-2b"]}}) == {
        "platform": {"in": ["sentinel-2a", "sentinel-2b"]}
    }


def test_none_is_no_query() -> None:
    assert to_pgstac_query(None) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"platform": {"like": "x%"}}, "unknown operator 'like'"),
        ({"platform": "sentinel-2a"}, "needs an object of operators"),
        ({"platform": {"startsWith": "s", "endsWith": "a"}}, "filter extension"),
        ({"platform": {"in": "sentinel-2a"}}, "non-empty list"),
        ({"eo:cloud_cover": {"startsWith": 1}}, "needs a string"),
        (["eo:cloud_cover<1"], "must be an object"),
    ],
)
def test_bad_queries_say_what_to_write(query: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_pgstac_query(query)
