"""The portable filter checks every operand once, on construction (issue 14, item 5).

Every backend compiles only filters that passed these checks, so a malformed operand is the
same InputError everywhere, naming the key, what was found and what to write instead. The
contract suite (``test_contract_adversarial.py``) checks the same cases through ``search`` on
every backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from m3vdb.errors import InputError
from m3vdb.schemas.filters import (
    And,
    Eq,
    In,
    Or,
    Range,
    and_,
    eq,
    in_,
    matches,
    or_,
    parse_filter,
    range_,
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"year": {"gte": "2020"}}, r"'year'.*gte='2020' is a str.*\{'year': \{'gte': 2020\.0\}\}"),
        ({"year": {"lt": True}}, r"'year'.*lt=True is a bool.*finite numbers"),
        ({"year": {"lt": math.inf}}, r"'year'.*lt=inf.*finite"),
        ({"$or": [{}]}, r"\$or clause 0 is \{\}, an empty filter"),
        ({"$and": [{"lang": "en"}, None]}, r"\$and clause 1 is None, an empty filter"),
        ({"$or": []}, r"\$or takes a non-empty list"),
        ({"$or": {"lang": "en"}}, r"\$or takes a non-empty list"),
        ({"lang": {"eq": ["en"]}}, r"'lang'.*\['en'\] \(list\).*'in'"),
        ({"lang": ["en", "de"]}, r"'lang'.*'in': \['en', 'de'\]"),
        ({"lang": None}, r"'lang'.*None \(NoneType\)"),
        ({"lang": {"in": []}}, r"'lang'.*empty list"),
        ({"lang": {"in": "en"}}, r"'lang'.*non-empty list.*\{'lang': 'en'\}"),
        ({"lang": {"in": [["en"]]}}, r"'lang'.*\['en'\] \(list\)"),
        ({"rating": math.nan}, r"'rating'.*nan"),
        ({1: "en"}, r"non-empty str.*got 1 \(int\)"),
        ({"": "en"}, r"non-empty str.*got ''"),
        ({"$not": {"lang": "en"}}, r"unknown filter operator '\$not'.*eq\('\$not'"),
        ({"lang": b"en"}, r"'lang'.*bytes"),
        ({"year": {"near": 3}}, r"'year'.*operators \['near'\]"),
    ],
)
def test_parse_filter_refuses_malformed_operands(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_filter(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: eq("lang", ["en"]),  # type: ignore[arg-type]
        lambda: eq("", "en"),
        lambda: eq(3, "en"),  # type: ignore[arg-type]
        lambda: eq("lang", {"v": 1}),  # type: ignore[arg-type]
        lambda: eq("rating", float("nan")),
        lambda: in_("lang", []),
        lambda: in_("lang", "en"),
        lambda: in_("lang", [None]),  # type: ignore[list-item]
        lambda: range_("year"),
        lambda: range_("year", gte="2020"),  # type: ignore[arg-type]
        lambda: range_("year", gte=False),
        lambda: range_("year", lte=float("-inf")),
        lambda: and_(),
        lambda: or_(),
        lambda: or_({"lang": "en"}),  # type: ignore[arg-type]
        lambda: Or(()),
        lambda: And(()),
        lambda: Eq("lang", ["en"]),  # type: ignore[arg-type]
        lambda: In("lang", ()),
        lambda: Range("year", gte="1"),  # type: ignore[arg-type]
    ],
)
def test_constructors_refuse_malformed_operands(build) -> None:
    with pytest.raises(InputError):
        build()


def test_well_formed_filters_are_unchanged() -> None:
    flt = parse_filter(
        {
            "lang": "en",
            "public": True,
            "year": {"gte": 2020, "lt": 2024.5},
            "tag": {"in": ["a", 1, 2.5, False]},
            "$or": [{"x": 1}, {"y": {"eq": "z"}}],
        }
    )
    assert flt == And(
        (
            Eq("lang", "en"),
            Eq("public", True),
            Range("year", gte=2020, lt=2024.5),
            In("tag", ("a", 1, 2.5, False)),
            Or((Eq("x", 1), Eq("y", "z"))),
        )
    )
    assert parse_filter({}) is None
    assert parse_filter(None) is None
    assert parse_filter(flt) is flt


def test_numpy_scalars_become_python_values() -> None:
    assert eq("n", np.int64(3)) == Eq("n", 3)
    assert type(eq("n", np.int64(3)).value) is int
    assert eq("b", np.bool_(True)).value is True
    assert range_("y", gte=np.float32(1.5)) == Range("y", gte=1.5)
    assert in_("n", np.array([1, 2])).values == (1, 2)


def test_a_str_bound_would_have_compared_strings() -> None:
    """Why a str bound is refused: as strings, '999' > '2020' and '10000' < '2020'."""
    assert "999" >= "2020" and "10000" < "2020"
    flt = range_("year", gte=2020)
    assert not matches(flt, {"year": 999}) and matches(flt, {"year": 10000})
