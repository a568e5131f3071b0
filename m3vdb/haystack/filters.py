"""Haystack 2.x filters (``{"field": "meta.x", "operator": "==", "value": ...}`` and
``{"operator": "AND" | "OR" | "NOT", "conditions": [...]}``) against m3vdb's portable filter.

Haystack's semantics are defined by ``haystack.utils.filters.document_matches_filter`` (dates
compared as dates, ``True == 1``, ``!=``, ``not in``, ``NOT``...); m3vdb's portable filter
(``eq``, ``in``, range, ``and``, ``or``) cannot say all of it. So a Haystack filter becomes:

- :func:`pushdown`: the strongest portable filter that every document matching the Haystack
  filter also matches (a superset), run inside the database, plus whether it is exact
  (expresses the whole Haystack filter);
- the Haystack filter itself, evaluated with ``document_matches_filter`` on what the
  database returned, so that no document that does not match is ever returned.

``filter_documents`` lists the pushdown's matches and keeps the exact ones (so it accepts
every Haystack operator); a retriever's top-k search runs the pushdown in the database and
keeps the exact matches, and refuses (``FilterError`` naming the clause) a filter with a
clause the database cannot run, since post-filtering a top-k would silently return fewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from m3vdb.haystack._haystack import FilterError
from m3vdb.schemas.filters import And, Eq, Filter, Or, Range

_LOGICAL = ("AND", "OR", "NOT")
_COMPARISONS = ("==", "!=", ">", ">=", "<", "<=", "in", "not in")
_ORDERING = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def validate(filters: Mapping[str, Any]) -> None:
    """Raises ``FilterError`` for a malformed filter, as Haystack's own stores do, before any
    document is read (an empty store must refuse a bad filter too)."""
    if not isinstance(filters, Mapping):
        raise FilterError(f"a Haystack filter is a dict, got {type(filters).__name__}")
    if "field" in filters:
        for key in ("operator", "value"):
            if key not in filters:
                raise FilterError(f"'{key}' key missing in {dict(filters)}")
        op, value = filters["operator"], filters["value"]
        if op not in _COMPARISONS:
            raise FilterError(f"unknown comparison operator {op!r}; valid: {list(_COMPARISONS)}")
        if op in ("in", "not in") and not isinstance(value, list):
            raise FilterError(
                f"operator {op!r} takes a list value, got {type(value).__name__} {value!r}"
            )
        if op in _ORDERING:
            if isinstance(value, list):
                raise FilterError(f"operator {op!r} cannot compare with a list ({value!r})")
            if isinstance(value, str) and _parse_date(value) is None:
                raise FilterError(
                    f"operator {op!r} compares numbers or ISO dates; got the string {value!r}"
                )
        return
    for key in ("operator", "conditions"):
        if key not in filters:
            raise FilterError(f"'{key}' key missing in {dict(filters)}")
    if filters["operator"] not in _LOGICAL:
        raise FilterError(
            f"unknown logical operator {filters['operator']!r}; valid: {list(_LOGICAL)}"
        )
    conditions = filters["conditions"]
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, got {type(conditions).__name__}")
    for condition in conditions:
        validate(condition)


def pushdown(filters: Mapping[str, Any] | None) -> Filter | None:
    """The portable filter implied by a (valid) Haystack filter; None: no restriction.

    Never narrower than the Haystack filter: a document matching the Haystack filter always
    matches the pushdown (the exact evaluation afterwards removes the rest).
    """
    if not filters:
        return None
    if "field" in filters:
        return _comparison(filters["field"], filters["operator"], filters["value"])
    op = filters["operator"]
    parts = [pushdown(c) for c in filters["conditions"]]
    if op == "AND":
        kept = tuple(f for f in parts if f is not None)
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else And(kept)
    if op == "OR":
        if not parts or any(f is None for f in parts):
            return None
        clauses = tuple(f for f in parts if f is not None)
        return clauses[0] if len(clauses) == 1 else Or(clauses)
    return None  # NOT: the portable filter has no negation


def unpushable(filters: Mapping[str, Any] | None) -> list[str]:
    """The clauses of a (valid) Haystack filter that cannot run inside the database
    (``!=``, ``not in``, ``NOT``, ``None`` values, ISO dates, fields other than ``meta.*``,
    nested keys): a top-k search refuses them."""
    if not filters:
        return []
    if "field" in filters:
        flt = _comparison(filters["field"], filters["operator"], filters["value"])
        return [] if flt is not None else [f"{filters['field']} {filters['operator']} ..."]
    if filters["operator"] == "NOT":
        return ["NOT"]
    return [o for c in filters["conditions"] for o in unpushable(c)]


def _comparison(field: str, op: str, value: Any) -> Filter | None:
    if not field.startswith("meta.") or "." in field[5:] or not field[5:]:
        return None  # content, id, nested keys: only the exact evaluation sees them
    key = field[5:]
    if op == "==":
        return _equal(key, value)
    if op == "in":
        parts = [_equal(key, v) for v in value]
        if not parts or any(f is None for f in parts):
            return None
        clauses = tuple(f for f in parts if f is not None)
        return clauses[0] if len(clauses) == 1 else Or(clauses)
    if op in _ORDERING and _is_number(value):
        # Haystack compares with Python's operators, where True > 0: booleans may match.
        bound = Range(key, **{_ORDERING[op]: float(value)})
        return Or((bound, Eq(key, True), Eq(key, False)))
    return None  # !=, not in, None, dates: evaluated exactly after listing


def _equal(key: str, value: Any) -> Filter | None:
    """What ``meta[key] == value`` implies in Haystack's sense (Python equality: True == 1 ==
    1.0; ISO dates as dates). A stored list holding the value matches the portable filter but
    not Haystack's: the exact evaluation removes it."""
    if isinstance(value, bool):
        return Or((Eq(key, value), Range(key, gte=float(value), lte=float(value))))
    if _is_number(value):
        # a range, not Eq: Qdrant matches an int exactly and would miss 1.0 for 1
        number: Filter = Range(key, gte=float(value), lte=float(value))
        return Or((number, Eq(key, bool(value)))) if value in (0, 1) else number
    if isinstance(value, str) and _parse_date(value) is None:
        return Eq(key, value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_date(value: str) -> Any:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["pushdown", "unpushable", "validate"]
