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
- Keys are literal metadata keys: ``eq("a.b", v)`` tests the key ``a.b``, never ``a`` -> ``b``
  (each backend escapes or quotes keys; one it cannot name is refused, at write and query).
- Operands are checked once, when a filter is built (here, for every backend): keys are
  non-empty str, ``eq`` / ``in_`` values str, bool, int or finite float (``in_`` a non-empty
  list), range bounds finite numbers (not str, not bool), ``and_`` / ``or_`` non-empty;
  anything else is an InputError naming the key and what to write instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from m3vdb.errors import InputError

Scalar = str | int | float | bool

_SCALARS = "a str, bool, int or finite float"


def _key(field: object) -> str:
    """``field`` when it is a usable metadata key; InputError otherwise."""
    if not isinstance(field, str) or not field:
        raise InputError(
            f"a filter key must be a non-empty str (a metadata key), got {field!r} "
            f"({type(field).__name__}); write the key as it appears in the metadata"
        )
    return field


def _scalar(field: str, what: str, value: object, hint: str) -> Scalar:
    """``value`` as a filter scalar: str, bool, int or finite float (numpy scalars become
    their Python value). InputError naming the key, what was found and what to write."""
    if isinstance(value, np.generic) and isinstance(value, (np.bool_, np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(
            f"filter on {field!r}: {what} is {value!r}; NaN and infinity match nothing, "
            f"write {_SCALARS}"
        )
    if not isinstance(value, (str, bool, int, float)):
        raise InputError(
            f"filter on {field!r}: {what} is {value!r} ({type(value).__name__}); it must be "
            f"{_SCALARS}{hint}"
        )
    return value


def _bound(field: str, op: str, value: object) -> float | None:
    """A range bound: None or a finite int/float (not a bool, not a numeric string)."""
    if value is None:
        return None
    if isinstance(value, np.generic) and isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        example = f"{float(str(value))!r}" if _is_number_text(value) else "2020"
        raise InputError(
            f"filter on {field!r}: range bound {op}={value!r} is a {type(value).__name__}; "
            f"range bounds must be finite numbers, e.g. {{{field!r}: {{{op!r}: {example}}}}}"
        )
    if not math.isfinite(value):
        raise InputError(
            f"filter on {field!r}: range bound {op}={value!r}; bounds must be finite numbers "
            "(leave a side out for an open range)"
        )
    return value


def _is_number_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


@dataclass(frozen=True)
class Eq:
    """``metadata[field] == value`` (or a list holding it). Checked on construction."""

    field: str
    value: Scalar

    def __post_init__(self) -> None:
        _key(self.field)
        hint = ""
        if isinstance(self.value, (list, tuple, set, frozenset)):
            hint = f"; to match any of several values write {{{self.field!r}: {{'in': [...]}}}}"
        object.__setattr__(self, "value", _scalar(self.field, "eq value", self.value, hint))


@dataclass(frozen=True)
class In:
    """``metadata[field]`` (or an element of it) equals one of ``values``; non-empty."""

    field: str
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        _key(self.field)
        values = self.values
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise InputError(
                f"filter on {self.field!r}: 'in' takes a non-empty list of values, got "
                f"{values!r} ({type(values).__name__}); write {{{self.field!r}: {{'in': [...]}}}}"
                f" or {{{self.field!r}: {values!r}}} for one value"
            )
        checked = tuple(_scalar(self.field, "an 'in' value", v, "") for v in values)
        if not checked:
            raise InputError(
                f"filter on {self.field!r}: 'in' got an empty list, which would match nothing; "
                "give at least one value or leave the clause out"
            )
        object.__setattr__(self, "values", checked)


@dataclass(frozen=True)
class Range:
    """``metadata[field]`` is a number within every given bound; at least one bound."""

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _key(self.field)
        for op in ("gt", "gte", "lt", "lte"):
            object.__setattr__(self, op, _bound(self.field, op, getattr(self, op)))
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise InputError(f"range on {self.field!r} needs at least one of gt, gte, lt, lte")


def _clauses(kind: str, clauses: object) -> tuple[Filter, ...]:
    if isinstance(clauses, (str, bytes, Mapping)) or not isinstance(clauses, Iterable):
        raise InputError(f"{kind} takes filters, got {clauses!r}")
    out = tuple(clauses)
    if not out:
        raise InputError(
            f"{kind} needs at least one clause; leave the filter out to match everything"
        )
    for i, c in enumerate(out):
        if not isinstance(c, (Eq, In, Range, And, Or)):
            raise InputError(
                f"{kind} clause {i} is {c!r} ({type(c).__name__}); clauses are filters built "
                "with eq, in_, range_, and_, or_ (or dicts given to parse_filter)"
            )
    return out


@dataclass(frozen=True)
class And:
    """Every clause matches; at least one clause."""

    clauses: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "clauses", _clauses("and_()", self.clauses))


@dataclass(frozen=True)
class Or:
    """Some clause matches; at least one clause."""

    clauses: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "clauses", _clauses("or_()", self.clauses))


Filter = Eq | In | Range | And | Or


def eq(field: str, value: Scalar) -> Eq:
    return Eq(field, value)


def in_(field: str, values: Sequence[Scalar]) -> In:
    return In(field, values)  # type: ignore[arg-type]  # In checks and converts to a tuple


def range_(
    field: str,
    *,
    gt: float | None = None,
    gte: float | None = None,
    lt: float | None = None,
    lte: float | None = None,
) -> Range:
    return Range(field, gt, gte, lt, lte)


def and_(*clauses: Filter) -> And:
    return And(tuple(clauses))


def or_(*clauses: Filter) -> Or:
    return Or(tuple(clauses))


_RANGE_KEYS = {"gt", "gte", "lt", "lte"}
_COMBINATORS = ("$and", "$or")


def parse_filter(value: Filter | Mapping[str, Any] | None) -> Filter | None:
    """Accepts a built filter, a dict in the form shown in the module docstring, or None.

    Every operand is checked here (and in the filter classes), once, for every backend: keys
    are non-empty str, ``eq`` / ``in`` values are str, bool, int or finite float, range
    bounds finite numbers, ``$and`` / ``$or`` non-empty lists of non-empty filters.
    An empty dict is no filter.

    Raises:
        InputError: naming the key, what was found and what to write instead.
    """
    if value is None or isinstance(value, (Eq, In, Range, And, Or)):
        return value
    if not isinstance(value, Mapping):
        raise InputError(
            f"a filter must be a dict or a m3vdb.schemas.filters object, got {type(value).__name__}"
        )
    clauses: list[Filter] = []
    for key, cond in value.items():
        if key in _COMBINATORS:
            clauses.append(_combinator(key, cond))
            continue
        _key(key)
        if key.startswith("$"):
            raise InputError(
                f"unknown filter operator {key!r}; use $and or $or (for a metadata key that "
                f"starts with '$', build the filter with eq({key!r}, ...))"
            )
        if isinstance(cond, Mapping):
            ops = set(cond)
            if ops == {"in"}:
                clauses.append(In(key, cond["in"]))
            elif ops == {"eq"}:
                clauses.append(Eq(key, cond["eq"]))
            elif ops and ops <= _RANGE_KEYS:
                clauses.append(Range(key, **cond))
            else:
                raise InputError(
                    f"filter on {key!r} has operators {sorted(map(str, ops))}; use 'eq', 'in' or "
                    f"any of {sorted(_RANGE_KEYS)}"
                )
        elif isinstance(cond, (list, tuple, set, frozenset)):
            raise InputError(
                f"filter on {key!r}: the value is a {type(cond).__name__} {cond!r}; for any of "
                f"several values write {{{key!r}: {{'in': {list(cond)!r}}}}}"
            )
        else:
            clauses.append(Eq(key, cond))
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else And(tuple(clauses))


def _combinator(key: str, cond: object) -> Filter:
    """The And / Or of a ``$and`` / ``$or`` entry; every clause a non-empty filter."""
    if isinstance(cond, (str, bytes, Mapping)) or not isinstance(cond, Sequence) or not cond:
        raise InputError(
            f"{key} takes a non-empty list of filters, got {cond!r}; write "
            f'{{"{key}": [{{"lang": "en"}}, {{"lang": "de"}}]}}'
        )
    parts: list[Filter] = []
    for i, c in enumerate(cond):
        part = parse_filter(c)
        if part is None:
            raise InputError(
                f"{key} clause {i} is {c!r}, an empty filter; give every clause at least one "
                "condition (or leave the filter out to match everything)"
            )
        parts.append(part)
    return And(tuple(parts)) if key == "$and" else Or(tuple(parts))


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
