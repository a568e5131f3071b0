"""A portable metadata filter, compiled by each connector into its database's native filter.

Build it with the helpers::

    from m3vdb.schemas.filters import eq, in_, range_, and_, or_
    f = and_(eq("lang", "en"), range_("year", gte=2020))

or from a plain dict (the form the CLI and LangChain's ``filter=`` use)::

    {"lang": "en", "year": {"gte": 2020}, "tag": {"in": ["a", "b"]}}
    {"$or": [{"lang": "en"}, {"lang": "de"}]}

Semantics (:func:`matches` is the exact definition every connector is tested against):

- ``eq(k, v)`` matches when ``metadata[k] == v``, or when ``metadata[k]`` is a list with an
  element equal to ``v``. ``in_(k, vs)`` matches when ``metadata[k]``, or any element of a
  list ``metadata[k]``, equals one of ``vs``. This is how Qdrant, Elasticsearch and MongoDB
  treat arrays: a document tagged ``["wiki", "news"]`` matches ``eq("tags", "wiki")``.
- ``range_(k, ...)`` matches when ``metadata[k]`` is a number within every bound, or a list
  with ONE numeric element within every bound (``[1, 10]`` does not match ``gte=4, lte=6``),
  as Qdrant and Elasticsearch evaluate ranges over arrays. Milvus cannot express a range over
  a list element (see ``schemas.milvus.compile_filter``): there, ranges match scalars only.
- Equality is typed as in JSON: ``True`` is not ``1`` and ``False`` is not ``0`` (Python
  would say otherwise); ``1`` equals ``1.0`` (not on Qdrant, which matches an int exactly
  and so misses a value stored as ``1.0``). Booleans are not numbers for ranges.
- A key absent from the metadata matches nothing; nested lists and dicts are not searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m3vdb.schemas.errors import InputError

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class And:
    clauses: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    clauses: tuple[Filter, ...]


Filter = Eq | In | Range | And | Or


def eq(field: str, value: Scalar) -> Eq:
    return Eq(field, value)


def in_(field: str, values: Sequence[Scalar]) -> In:
    if isinstance(values, (str, bytes)) or len(values) == 0:
        raise InputError(f"in_({field!r}, ...) needs a non-empty list of values, got {values!r}")
    return In(field, tuple(values))


def range_(
    field: str,
    *,
    gt: float | None = None,
    gte: float | None = None,
    lt: float | None = None,
    lte: float | None = None,
) -> Range:
    if gt is None and gte is None and lt is None and lte is None:
        raise InputError(f"range_({field!r}) needs at least one of gt, gte, lt, lte")
    return Range(field, gt, gte, lt, lte)


def and_(*clauses: Filter) -> And:
    return And(tuple(clauses))


def or_(*clauses: Filter) -> Or:
    return Or(tuple(clauses))


_RANGE_KEYS = {"gt", "gte", "lt", "lte"}


def parse_filter(value: Filter | Mapping[str, Any] | None) -> Filter | None:
    """Accepts a built filter, a dict in the form shown in the module docstring, or None."""
    if value is None or isinstance(value, (Eq, In, Range, And, Or)):
        return value
    if not isinstance(value, Mapping):
        raise InputError(
            f"a filter must be a dict or a m3vdb.schemas.filters object, got {type(value).__name__}"
        )
    clauses: list[Filter] = []
    for key, cond in value.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, Sequence) or isinstance(cond, (str, bytes)) or not cond:
                raise InputError(f"{key} takes a non-empty list of filters, got {cond!r}")
            parts = tuple(p for p in (parse_filter(c) for c in cond) if p is not None)
            clauses.append(And(parts) if key == "$and" else Or(parts))
        elif isinstance(cond, Mapping):
            ops = set(cond)
            if ops == {"in"}:
                clauses.append(in_(key, cond["in"]))
            elif ops == {"eq"}:
                clauses.append(Eq(key, cond["eq"]))
            elif ops and ops <= _RANGE_KEYS:
                clauses.append(range_(key, **cond))
            else:
                raise InputError(
                    f"filter on {key!r} has operators {sorted(ops)}; use 'eq', 'in' or any of "
                    f"{sorted(_RANGE_KEYS)}"
                )
        elif isinstance(cond, (str, int, float, bool)):
            clauses.append(Eq(key, cond))
        else:
            raise InputError(
                f"filter value for {key!r} must be a scalar or an operator dict, got {cond!r}"
            )
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else And(tuple(clauses))


def _values(metadata: Mapping[str, Any], key: str) -> list[Any]:
    """The values a clause on ``key`` tests: the elements of a list, else the value itself."""
    if key not in metadata:
        return []
    value = metadata[key]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(a: Any, b: Any) -> bool:
    """JSON equality: a bool equals only a bool (Python has ``True == 1``)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _in_range(flt: Range, v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    return (
        (flt.gt is None or v > flt.gt)
        and (flt.gte is None or v >= flt.gte)
        and (flt.lt is None or v < flt.lt)
        and (flt.lte is None or v <= flt.lte)
    )


def matches(flt: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Evaluates the filter on one metadata dict: the exact reference the tests compare with.

    See the module docstring for the semantics (lists match when any element does).
    """
    if flt is None:
        return True
    if isinstance(flt, Eq):
        return any(_same(v, flt.value) for v in _values(metadata, flt.field))
    if isinstance(flt, In):
        return any(_same(v, w) for v in _values(metadata, flt.field) for w in flt.values)
    if isinstance(flt, Range):
        return any(_in_range(flt, v) for v in _values(metadata, flt.field))
    if isinstance(flt, And):
        return all(matches(c, metadata) for c in flt.clauses)
    return any(matches(c, metadata) for c in flt.clauses)
