"""LlamaIndex ``MetadataFilters`` as m3vdb's portable filter.

Supported (with ``m3vdb.schemas.filters.matches`` semantics, which every backend is tested
against): ``==`` (``EQ``), ``in`` (``IN``), ``>``, ``>=``, ``<``, ``<=`` (numbers),
``any`` (a list holding any of the values), ``contains`` (a list holding the value), ``all``
(a list holding every value), combined with ``AND`` / ``OR`` and nested. ``!=``, ``nin``,
``text_match``, ``text_match_insensitive``, ``is_empty`` and ``NOT`` have no portable form:
they raise ``InputError``, never a silently ignored filter.
"""

from __future__ import annotations

from m3vdb.errors import InputError
from m3vdb.llama_index._llama_index import (
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from m3vdb.schemas.filters import And, Eq, Filter, In, Or, Range

_RANGES = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
SUPPORTED = ("==", "in", ">", ">=", "<", "<=", "any", "contains", "all")


def to_portable(filters: MetadataFilters | None) -> Filter | None:
    """The portable filter of ``filters`` (None: no filter).

    Raises:
        InputError: an operator or condition the portable filter cannot express, or a value
            of the wrong type for its operator.
    """
    if filters is None or not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in (FilterCondition.AND, FilterCondition.OR):
        raise InputError(
            f"MetadataFilters condition {condition.value!r} has no m3vdb equivalent; use 'and' "
            "or 'or' (a negation cannot run in every database's filter the same way)"
        )
    clauses = tuple(_clause(f) for f in filters.filters)
    if len(clauses) == 1:
        return clauses[0]
    return And(clauses) if condition == FilterCondition.AND else Or(clauses)


def _clause(f: MetadataFilter | ExactMatchFilter | MetadataFilters) -> Filter:
    if isinstance(f, MetadataFilters):
        out = to_portable(f)
        if out is None:
            raise InputError("an empty nested MetadataFilters filters nothing; remove it")
        return out
    op = getattr(f, "operator", FilterOperator.EQ)
    key, value = f.key, f.value
    if op == FilterOperator.EQ:
        return Eq(key, _scalar(key, op, value))
    if op in (FilterOperator.IN, FilterOperator.ANY):
        return In(key, tuple(_list(key, op, value)))
    if op == FilterOperator.CONTAINS:
        return Eq(key, _scalar(key, op, value))
    if op == FilterOperator.ALL:
        return And(tuple(Eq(key, v) for v in _list(key, op, value)))
    if op in _RANGES:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(
                f"filter {key!r} {op.value} needs a number, got {value!r}; ranges compare numbers"
            )
        return Range(key, **{_RANGES[op]: float(value)})
    raise InputError(
        f"filter operator {op.value!r} (on {key!r}) has no m3vdb equivalent; supported: "
        f"{', '.join(SUPPORTED)} combined with and / or. Rewrite the filter (e.g. 'in' the "
        "allowed values instead of 'nin')"
    )


def _scalar(key: str, op: FilterOperator, value: object) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise InputError(f"filter {key!r} {op.value} needs a single value, got {value!r}")


def _list(key: str, op: FilterOperator, value: object) -> list[str | int | float | bool]:
    if not isinstance(value, list) or not value:
        raise InputError(f"filter {key!r} {op.value} needs a non-empty list, got {value!r}")
    return [_scalar(key, op, v) for v in value]
