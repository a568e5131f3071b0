"""m3vdb.schemas.milvus: capabilities, field layouts, pymilvus schema objects, filter expressions,
rows and their inverses, the validator, and Milvus's fusion formulas. No Milvus needed."""

from __future__ import annotations

import math

import numpy as np
import oracles
import pytest

from m3vdb.errors import InputError
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import and_, eq, in_, or_, parse_filter, range_
from m3vdb.schemas.spec import IndexSpec, MetadataField
from m3vdb.schemas.versions import parse_version

DIM = 8
SPEC = IndexSpec(dense_dim=DIM, colbert_dim=DIM)
LITE = ms.MilvusCapabilities.for_lite()
SERVER_264 = ms.MilvusCapabilities.for_server("v2.6.4")


def _embedding(rng: np.random.Generator, rows: int = 3) -> M3Embedding:
    dense = rng.normal(size=DIM).astype(np.float32)
    colbert = rng.normal(size=(rows, DIM)).astype(np.float32)
    return M3Embedding(
        dense=dense / np.linalg.norm(dense),
        sparse={5: 0.25, 17: 1.5, 2**31: 0.125},
        colbert=colbert / np.linalg.norm(colbert, axis=1, keepdims=True),
    )


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize(
    ("version", "native", "json_index"),
    [
        ("v2.6.4", True, True),
        ("2.6.10-dev", True, True),
        ("v2.6.3", False, True),
        ("v2.5.14", False, False),
        ("v3.0.0", True, True),
        ("not-a-version", False, False),
    ],
)
def test_server_capabilities_follow_the_version(version: str, native: bool, json_index: bool):
    caps = ms.MilvusCapabilities.for_server(version)
    assert (caps.native_multivector, caps.json_path_index, caps.lite) == (native, json_index, False)


def test_colbert_layout_choice():
    assert LITE.colbert_layout(SPEC) == "companion"
    assert SERVER_264.colbert_layout(SPEC) == "struct"
    # The struct's vector sub-field stores float32 only: float16 keeps the companion.
    assert SERVER_264.colbert_layout(IndexSpec(colbert_precision="float16")) == "companion"
    assert SERVER_264.colbert_layout(IndexSpec(max_colbert_rows=8191)) == "companion"
    assert LITE.colbert_layout(IndexSpec(colbert=False)) == "none"


def test_parse_version():
    assert parse_version("v2.6.4-rc1") == (2, 6, 4)
    assert parse_version("2.5") == (2, 5, 0)
    assert parse_version("latest") is None


# --------------------------------------------------------------------------- field layouts


def test_main_fields_companion_layout():
    fields = {f.name: f for f in ms.main_fields(SPEC, "companion")}
    assert fields["id"].is_primary and fields["id"].dtype == "VARCHAR"
    assert fields["text"].params["max_length"] == 65535
    assert fields["metadata"].dtype == "JSON"
    assert fields["dense"].params == {"dim": DIM}
    assert fields["sparse"].dtype == "SPARSE_FLOAT_VECTOR"
    assert fields["colbert_version"].dtype == "VARCHAR"
    assert "colbert" not in fields


def test_main_fields_struct_layout_and_indexes():
    fields = {f.name: f for f in ms.main_fields(SPEC, "struct")}
    colbert = fields["colbert"]
    assert colbert.dtype == "ARRAY" and colbert.params["element_type"] == "STRUCT"
    assert colbert.struct_fields[0].params == {"dim": DIM}
    indexes = {i.field: i for i in ms.main_indexes(SPEC, "struct", SERVER_264)}
    assert indexes["colbert[vec]"].metric == "MAX_SIM_IP"
    assert indexes["dense"].index_type == "AUTOINDEX"
    assert indexes["sparse"].index_type == "SPARSE_INVERTED_INDEX"


def test_lite_indexes_are_ones_lite_builds():
    indexes = {i.field: i for i in ms.main_indexes(SPEC, "companion", LITE)}
    assert (indexes["dense"].index_type, indexes["dense"].metric) == ("FLAT", "IP")
    cosine = IndexSpec(dense_dim=DIM, colbert_dim=DIM, dense_metric="cosine")
    assert ms.main_indexes(cosine, "companion", LITE)[0].metric == "COSINE"
    assert ms.companion_indexes(SPEC, LITE) == [ms.IndexDef("vec", "FLAT", "IP")]


def test_companion_fields_follow_precision():
    f16 = IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert_precision="float16")
    vec = {f.name: f for f in ms.companion_fields(f16)}["vec"]
    assert (vec.dtype, vec.params) == ("FLOAT16_VECTOR", {"dim": DIM})
    assert {f.name for f in ms.companion_fields(SPEC)} == {
        "pk",
        "doc_id",
        "version",
        "row",
        "metadata",
        "vec",
    }


def test_json_path_indexes_on_servers_only():
    spec = IndexSpec(
        dense_dim=DIM,
        colbert_dim=DIM,
        metadata_fields=(MetadataField("lang"), MetadataField("year", "int")),
    )
    on_server = [i for i in ms.main_indexes(spec, "struct", SERVER_264) if i.metric is None]
    assert [i.params["json_path"] for i in on_server] == ['metadata["lang"]', 'metadata["year"]']
    assert [i.params["json_cast_type"] for i in on_server] == ["varchar", "double"]
    assert all(i.metric is not None for i in ms.main_indexes(spec, "companion", LITE))


def test_build_schema_and_index_params():
    pytest.importorskip("pymilvus")
    schema = ms.build_schema(ms.main_fields(SPEC, "companion")).to_dict()
    by_name = {f["name"]: f for f in schema["fields"]}
    assert by_name["id"]["is_primary"] is True
    assert by_name["dense"]["params"]["dim"] == DIM
    assert schema["enable_dynamic_field"] is False
    struct_schema = ms.build_schema(ms.main_fields(SPEC, "struct")).to_dict()
    assert "colbert" in {f["name"] for f in struct_schema.get("struct_fields", [])} | {
        f["name"] for f in struct_schema["fields"]
    }
    params = list(ms.build_index_params(ms.main_indexes(SPEC, "struct", SERVER_264)))
    assert {p.field_name for p in params} == {"dense", "sparse", "colbert[vec]"}


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (eq("lang", "en"), 'metadata["lang"] == "en" or json_contains(metadata["lang"], "en")'),
        (
            eq("q", 'say "hi"\\now'),
            'metadata["q"] == "say \\"hi\\"\\\\now"'
            ' or json_contains(metadata["q"], "say \\"hi\\"\\\\now")',
        ),
        (
            eq("name", "Zoë €"),
            'metadata["name"] == "Zoë €" or json_contains(metadata["name"], "Zoë €")',
        ),
        (eq('we"ird', 1), 'metadata["we\\"ird"] == 1 or json_contains(metadata["we\\"ird"], 1)'),
        (eq("flag", True), 'metadata["flag"] == true or json_contains(metadata["flag"], true)'),
        (eq("x", 0.5), 'metadata["x"] == 0.5 or json_contains(metadata["x"], 0.5)'),
        (
            in_("tag", ["a", "b"]),
            'metadata["tag"] in ["a", "b"] or json_contains_any(metadata["tag"], ["a", "b"])',
        ),
        (
            # one pair per JSON type (Milvus refuses mixed ``in`` lists); booleans one by one
            in_("v", ["a", 2, 3, True, 1.5]),
            'metadata["v"] == "a" or json_contains(metadata["v"], "a")'
            ' or metadata["v"] in [2, 3] or json_contains_any(metadata["v"], [2, 3])'
            ' or metadata["v"] == 1.5 or json_contains(metadata["v"], 1.5)'
            ' or metadata["v"] == true or json_contains(metadata["v"], true)',
        ),
        (range_("year", gte=2020, lt=2024), 'metadata["year"] >= 2020 and metadata["year"] < 2024'),
        (range_("p", gt=1e-6), 'metadata["p"] > 1e-06'),
        (
            and_(eq("a", 1), or_(eq("b", "x"), range_("c", lt=0))),
            '(metadata["a"] == 1 or json_contains(metadata["a"], 1)) and '
            '((metadata["b"] == "x" or json_contains(metadata["b"], "x")) or (metadata["c"] < 0))',
        ),
    ],
)
def test_compile_filter(flt, expected):
    assert ms.compile_filter(flt) == expected


def test_compile_filter_from_dict_and_none():
    flt = parse_filter({"lang": "en", "year": {"gte": 2020}})
    assert ms.compile_filter(flt, "meta") == (
        '(meta["lang"] == "en" or json_contains(meta["lang"], "en")) and (meta["year"] >= 2020)'
    )
    assert ms.compile_filter(None) == ""


@pytest.mark.parametrize("value", ["two\nlines", "tab\there", "\x00"])
def test_control_characters_are_refused(value):
    with pytest.raises(InputError, match="control character"):
        ms.compile_filter(eq("k", value))


def test_in_refuses_a_non_scalar_value():
    with pytest.raises(InputError, match="must be a str"):
        ms.compile_filter(in_("k", ["a", None]))  # type: ignore[list-item]


def test_non_finite_range_is_refused():
    with pytest.raises(InputError, match="finite"):
        ms.compile_filter(range_("x", lt=math.nan))


def test_ids_and_and_expressions():
    assert ms.ids_expression("id", ['a"1', "b"]) == 'id in ["a\\"1", "b"]'
    assert ms.and_expressions("", "x > 1") == "x > 1"
    assert ms.and_expressions("a", "", "b") == "(a) and (b)"
    assert ms.and_expressions() == ""


# --------------------------------------------------------------------------- rows


def test_main_row_and_back_struct_layout():
    emb = _embedding(np.random.default_rng(0))
    doc = Document("d1", "hello", {"lang": "en", "tags": ["a", "b"]})
    row = ms.main_row(doc, emb, SPEC, "struct")
    assert row["sparse"] == {5: 0.25, 17: 1.5, 2**31: 0.125}
    assert len(row["colbert"]) == 3
    assert ms.document_from_row(row, SPEC) == doc
    back = ms.embedding_from_rows(row, SPEC)
    np.testing.assert_array_equal(back.dense, emb.dense)
    np.testing.assert_array_equal(back.colbert, emb.colbert)
    assert back.sparse == emb.sparse


def test_companion_rows_and_back():
    emb = _embedding(np.random.default_rng(1), rows=5)
    doc = Document("d/2", "text", {"n": 1})
    main = ms.main_row(doc, emb, SPEC, "companion", "v1")
    assert main["colbert_version"] == "v1" and "colbert" not in main
    rows = ms.colbert_rows(doc, emb, SPEC, "v1", 7)
    assert [r["pk"] for r in rows[:2]] == ["v1/7/0", "v1/7/1"]
    assert all(r["doc_id"] == "d/2" and r["metadata"] == {"n": 1} for r in rows)
    # Out of order and with a duplicate (a retried write): rebuilt in row order, once each.
    back = ms.embedding_from_rows(main, SPEC, rows[::-1] + rows[:1])
    np.testing.assert_array_equal(back.colbert, emb.colbert)


def test_float16_rows_decode_from_pymilvus_bytes():
    spec = IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert_precision="float16")
    emb = _embedding(np.random.default_rng(2))
    rows = ms.colbert_rows(Document("d", "t"), emb, spec, "v", 0)
    assert rows[0]["vec"].dtype == np.float16
    # pymilvus returns a FLOAT16_VECTOR as [bytes]
    as_returned = [{**r, "vec": [r["vec"].tobytes()]} for r in rows]
    np.testing.assert_allclose(ms.colbert_from_rows(as_returned), emb.colbert, atol=1e-3)


def _limits(doc: Document) -> None:
    for lite in (True, False):
        ms.check_document_limits(doc, lite=lite)


def test_document_limits():
    _limits(Document("x" * 512, "é" * 32767))
    with pytest.raises(InputError, match="512 bytes"):
        _limits(Document("é" * 257, "t"))
    with pytest.raises(InputError, match="65536 UTF-8 bytes.*chunks"):
        _limits(Document("d", "é" * 32768))
    with pytest.raises(InputError, match="not JSON"):
        _limits(Document("d", "t", {"when": object()}))
    with pytest.raises(InputError, match="not JSON"):
        _limits(Document("d", "t", {"x": math.inf}))


def test_ids_milvus_cannot_address_are_refused():
    """Issue 26: Lite pastes ids between single quotes (SQL deletes, hybrid search requery);
    no Milvus expression reaches a control character."""
    for doc_id in ("it's", "back\\slash"):
        assert ms.id_problem(doc_id, lite=False) is None
        with pytest.raises(InputError, match="Milvus Lite refuses"):
            ms.check_document_limits(Document(doc_id, "t"), lite=True)
    for doc_id in ("new\nline", "tab\t", "esc\x1b"):
        for lite in (True, False):
            with pytest.raises(InputError, match="control character"):
                ms.check_document_limits(Document(doc_id, "t"), lite=lite)
    assert ms.id_problem('say "hi" [x] or 日本', lite=True) is None
    assert ms.ids_expression("id", ['a"b', "c\\d"]) == 'id in ["a\\"b", "c\\\\d"]'
    assert ms.after_id_expression("id", 'x" or id != "') == 'id > "x\\" or id != \\""'


# --------------------------------------------------------------------------- validator


def _lite_description(dense_dim: int = DIM, dense_type: str = "FLOAT_VECTOR") -> dict:
    """Shaped as Milvus Lite 2.5.1's describe_collection() (measured), types as names."""
    return {
        "collection_name": "c",
        "fields": [
            {"name": "id", "type": "VARCHAR", "params": {"max_length": 512}, "is_primary": True},
            {"name": "text", "type": "VARCHAR", "params": {"max_length": 65535}},
            {"name": "metadata", "type": "JSON", "params": {}},
            {"name": "dense", "type": dense_type, "params": {"dim": dense_dim}},
            {"name": "sparse", "type": "SPARSE_FLOAT_VECTOR", "params": {}},
            {"name": "colbert_version", "type": "VARCHAR", "params": {"max_length": 64}},
        ],
    }


_INDEXES = {
    "dense": {"index_type": "FLAT", "metric_type": "IP", "field_name": "dense"},
    "sparse": {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP"},
}


def _problems(description: dict, indexes: dict = _INDEXES, spec: IndexSpec = SPEC) -> list[str]:
    layout = ms.layout_of(description, spec)
    return ms.validate_collection(
        description,
        indexes,
        ms.main_fields(spec, layout),
        ms.main_indexes(spec, layout, LITE),
    )


def test_validator_accepts_a_matching_collection():
    assert ms.layout_of(_lite_description(), SPEC) == "companion"
    assert _problems(_lite_description()) == []


def test_validator_accepts_pymilvus_datatypes():
    pymilvus = pytest.importorskip("pymilvus")
    description = _lite_description()
    for f in description["fields"]:
        f["type"] = pymilvus.DataType[f["type"]]
    assert _problems(description) == []


def test_validator_reports_every_mismatch():
    description = _lite_description(dense_dim=16)
    del description["fields"][4]  # sparse
    description["fields"][1]["type"] = "JSON"  # text
    description["fields"][0]["is_primary"] = False
    indexes = {"dense": {"metric_type": "L2"}}
    problems = _problems(description, indexes)
    assert "field 'dense': dim is 16, expected 8" in problems
    assert "field 'dense': metric is L2, expected IP" in problems
    assert any(p.startswith("field 'sparse' is missing") for p in problems)
    assert "field 'text' has type JSON, expected VARCHAR" in problems
    assert "field 'id' is not the primary key" in problems
    assert any(p.startswith("field 'sparse' has no index") for p in problems)


def test_validator_reads_struct_array_fields():
    description = _lite_description()
    description["fields"].pop()  # no colbert_version: struct layout
    description["struct_array_fields"] = [
        {"name": "colbert", "type": "_ARRAY_OF_STRUCT", "params": {"max_capacity": 1024},
         "fields": [{"name": "vec", "type": "FLOAT_VECTOR", "params": {"dim": 4}}]}
    ]  # fmt: skip
    assert ms.layout_of(description, SPEC) == "struct"
    problems = ms.validate_collection(
        description,
        {**_INDEXES, "colbert[vec]": {"metric_type": "MAX_SIM_IP"}},
        ms.main_fields(SPEC, "struct"),
        ms.main_indexes(SPEC, "struct", SERVER_264),
    )
    assert problems == ["field 'colbert'[vec]: dim is 4, expected 8"]


# --------------------------------------------------------------------------- Milvus's scoring


def test_rrf_fusion_formula_and_ties():
    fused = oracles.rrf_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert fused[0] == ("a", pytest.approx(1 / 61 + 1 / 62))
    assert dict(fused)["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert dict(fused)["b"] == pytest.approx(1 / 62)
    # equal scores: ids ascending, as Milvus sorts them
    assert oracles.rrf_fusion([["y"], ["x"]], k=1) == [("x", 0.5), ("y", 0.5)]


def test_weighted_fusion_formula():
    fused = dict(
        oracles.milvus_weighted_fusion([{"a": 0.5, "b": 0.0}, {"a": 3.0}], [0.3, 0.7], ["IP"] * 2)
    )
    expected_a = 0.3 * (0.5 + math.atan(0.5) / math.pi) + 0.7 * (0.5 + math.atan(3.0) / math.pi)
    assert fused["a"] == pytest.approx(expected_a)
    assert fused["b"] == pytest.approx(0.3 * 0.5)  # the sparse list did not return b: adds 0
    assert oracles.milvus_normalize(0.2, "COSINE") == pytest.approx(0.6)
    assert oracles.milvus_normalize(0.0, "L2") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        oracles.milvus_weighted_fusion([{}], [0.5, 0.5], ["IP"])


def test_maxsim_is_the_sum_of_row_maxima():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.5, 0.5], [0.9, 0.1], [0.0, -1.0]])
    assert oracles.maxsim(q, d) == pytest.approx(0.9 + 0.5)


# --------------------------------------------------------------------------- ownership records


def test_the_main_collection_records_the_companion_it_owns():
    description = {**_lite_description(), "description": ms.main_description("companion", "c")}
    assert ms.owned_companion(description, SPEC) == "c__colbert"
    for layout in ("none", "struct"):
        recorded = {"collection_name": "c", "description": ms.main_description(layout, "c")}
        assert ms.owned_companion(recorded, SPEC) is None


def test_a_collection_created_before_the_record_owns_the_companion_its_versions_point_into():
    assert ms.owned_companion(_lite_description(), SPEC) == "c__colbert"
    without_colbert = _lite_description()
    without_colbert["fields"] = without_colbert["fields"][:-1]  # no colbert_version field
    assert ms.owned_companion(without_colbert, SPEC) is None
    # a user's own description is no record
    assert ms.owned_companion({**without_colbert, "description": "my users"}, SPEC) is None


def test_a_companion_records_its_main_collection():
    assert ms.is_companion_of({"description": ms.companion_description("c")}, "c")
    assert not ms.is_companion_of({"description": ms.companion_description("c")}, "d")
    assert not ms.is_companion_of({"description": "someone's vectors"}, "c")
    assert not ms.is_companion_of({"description": "m3vdb:not json"}, "c")
