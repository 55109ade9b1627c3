"""The Query extension with Earth Search's full operator set.

stac-fastapi-pgstac accepts only ``eq ne neq lt lte gt gte``; Earth Search (stac-server)
also answers ``startsWith``, ``endsWith``, ``contains`` and ``in``. pgstac translates a
``query`` into CQL2 by operator name, and CQL2 has ``like`` and ``in``, so the string
operators are rewritten into ``like`` patterns (wildcards in the value escaped) before
the search reaches the database. Written by hand: no library offers this translation.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator
from stac_fastapi.pgstac.extensions import QueryExtension

COMPARISONS = ("eq", "ne", "neq", "lt", "lte", "gt", "gte")
LIKE_PATTERNS = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
OPERATORS = (*COMPARISONS, *LIKE_PATTERNS, "in")


def _escape_like(value: str) -> str:
    """Match ``value`` literally inside a LIKE pattern (backslash is LIKE's escape)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def to_pgstac_query(query: Any) -> dict[str, dict[str, Any]] | None:
    """Validate a Query-extension object and rewrite it into operators pgstac knows.

    Raises ValueError (HTTP 400 through pydantic) with what to write instead.
    """
    if query is None:
        return None
    if not isinstance(query, dict):
        raise ValueError('query must be an object such as {"eo:cloud_cover": {"lt": 10}}')
    rewritten: dict[str, dict[str, Any]] = {}
    for prop, ops in query.items():
        if not isinstance(ops, dict) or not ops:
            raise ValueError(f'query: {prop} needs an object of operators, e.g. {{"lt": 10}}')
        out: dict[str, Any] = {}
        for op, value in ops.items():
            if op not in OPERATORS:
                raise ValueError(f"query: unknown operator {op!r} for {prop}; use one of {', '.join(OPERATORS)}")
            if op in LIKE_PATTERNS:
                if "like" in out:
                    raise ValueError(
                        f"query: only one of startsWith, endsWith, contains per property ({prop}); "
                        "combine them with the filter extension (CQL2 like)"
                    )
                if not isinstance(value, str):
                    raise ValueError(f"query: {op} on {prop} needs a string")
                out["like"] = LIKE_PATTERNS[op].format(_escape_like(value))
            elif op == "in":
                if not isinstance(value, list) or not value:
                    raise ValueError(f"query: in on {prop} needs a non-empty list")
                out["in"] = value
            else:
                out[op] = value
        rewritten[prop] = out
    return rewritten


class FullQueryPostRequest(BaseModel):
    """The ``query`` member of a search, with the rewrite applied on validation."""

    query: Annotated[dict[str, dict[str, Any]] | None, BeforeValidator(to_pgstac_query)] = None


class FullQueryExtension(QueryExtension):
    """stac-fastapi-pgstac's Query extension with the wider POST model."""

    POST = FullQueryPostRequest
