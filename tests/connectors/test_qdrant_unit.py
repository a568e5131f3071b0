"""Qdrant pieces that need no collection: schema translation and its inverse, filter
compilation, error classification, targets, lazy import."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from qdrant_client import QdrantClient, models  # noqa: E402
from qdrant_client.http.exceptions import (  # noqa: E402
    ResponseHandlingException,
    UnexpectedResponse,
)

from m3vdb.connectors import connect  # noqa: E402
from m3vdb.connectors.qdrant.client import (  # noqa: E402
    client_from_target,
    client_options,
    is_transient,
    translate_error,
)
from m3vdb.errors import (  # noqa: E402
    BackendError,
    InputError,
    MissingDependencyError,
    SchemaMismatchError,
)
from m3vdb.schemas import qdrant as qs  # noqa: E402
from m3vdb.schemas.data import Document, M3Embedding  # noqa: E402
from m3vdb.schemas.filters import and_, eq, in_, matches, or_, parse_filter, range_  # noqa: E402
from m3vdb.schemas.qdrant import compile_filter  # noqa: E402
from m3vdb.schemas.spec import FieldNames, IndexSpec, MetadataField  # noqa: E402

SPEC = IndexSpec(
    dense_dim=4,
    colbert_dim=3,
    metadata_fields=(MetadataField("lang"), MetadataField("year", "int")),
)


def _emb() -> M3Embedding:
    return M3Embedding(
        dense=np.array([0.5, 0.5, 0.5, 0.5], np.float32),
        sparse={9: 0.25, 3: 0.5},
        colbert=np.eye(3, dtype=np.float32)[:2],
    )


def test_vectors_config_is_native() -> None:
    config = qs.vectors_config(SPEC)
    assert config["dense"] == models.VectorParams(size=4, distance=models.Distance.DOT)
    colbert = config["colbert"]
    assert colbert.size == 3 and colbert.distance == models.Distance.DOT
    assert colbert.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    assert colbert.hnsw_config.m == 0 and colbert.datatype is None
    indexed = IndexSpec(
        dense_dim=4,
        colbert_dim=3,
        colbert_index=True,
        colbert_precision="float16",
        dense_metric="cosine",
    )
    config = qs.vectors_config(indexed)
    assert config["dense"].distance == models.Distance.COSINE
    assert config["colbert"].hnsw_config is None
    assert config["colbert"].datatype == models.Datatype.FLOAT16
    assert qs.sparse_vectors_config(SPEC) == {"sparse": models.SparseVectorParams()}
    assert qs.sparse_vectors_config(IndexSpec(sparse=False)) == {}
    assert qs.payload_indexes(SPEC) == [
        ("metadata.lang", models.PayloadSchemaType.KEYWORD),
        ("metadata.year", models.PayloadSchemaType.INTEGER),
    ]


def test_point_round_trip_and_ids() -> None:
    doc = Document("doc/1 ü", "текст", {"lang": "ru", "year": 2001})
    point = qs.to_point(doc, _emb(), SPEC)
    assert point.id == str(uuid.uuid5(qs.M3VDB_NAMESPACE, "doc/1 ü")) == qs.point_id(doc.id)
    assert qs.point_id("a") != qs.point_id("b")
    assert point.vector["sparse"].indices == [3, 9]  # sorted
    assert qs.document_from_payload(point.payload, SPEC) == doc
    back = qs.embedding_from_vectors(point.vector, SPEC)
    np.testing.assert_array_equal(back.dense, _emb().dense)
    np.testing.assert_array_equal(back.colbert, _emb().colbert)
    assert back.sparse == {3: 0.5, 9: 0.25}


def test_custom_field_names() -> None:
    names = FieldNames(id="doc_id", text="body", dense="d", sparse="s", colbert="c", metadata="m")
    spec = IndexSpec(
        dense_dim=4, colbert_dim=3, fields=names, metadata_fields=(MetadataField("lang"),)
    )
    point = qs.to_point(Document("x", "y", {"lang": "en"}), _emb(), spec)
    assert set(point.vector) == {"d", "s", "c"}
    assert point.payload == {"doc_id": "x", "body": "y", "m": {"lang": "en"}}
    assert qs.payload_indexes(spec)[0][0] == "m.lang"


def test_validate_collection_lists_every_mismatch() -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "c",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
    )
    problems = qs.validate_collection(client.get_collection("c"), SPEC)
    text = "\n".join(problems)
    assert "size 8, expected 4" in text
    assert "Cosine" in text
    assert "'colbert': missing" in text
    assert "'sparse': missing" in text
    client.create_collection(
        "ok",
        vectors_config=qs.vectors_config(SPEC),
        sparse_vectors_config=qs.sparse_vectors_config(SPEC),
    )
    assert qs.validate_collection(client.get_collection("ok"), SPEC) == []


def test_compile_filter_structure() -> None:
    flt = compile_filter(
        and_(eq("lang", "en"), or_(range_("year", gte=2000), in_("n", [1, 2]))), SPEC
    )
    # always must at the top: the server merges filters field by field
    assert flt.should is None and len(flt.must) == 1
    (top,) = flt.must
    first, second = top.must
    assert first == models.FieldCondition(key="metadata.lang", match=models.MatchValue(value="en"))
    assert second.should[0].range == models.Range(gte=2000)
    assert second.should[1].match == models.MatchAny(any=[1, 2])
    mixed = compile_filter(in_("x", ["a", 1]), SPEC).must[0]
    assert len(mixed.should) == 2
    as_range = compile_filter(eq("rating", 2.5), SPEC).must[0]
    assert as_range.range == models.Range(gte=2.5, lte=2.5)
    assert compile_filter(None, SPEC) is None
    with pytest.raises(InputError):
        compile_filter(or_(), SPEC)


FILTER_METADATA = [
    {"tags": "a", "n": 1, "flag": True, "years": 2023},
    {"tags": ["a", "b"], "n": [1, 7], "flag": [False], "years": [1990, 2030]},
    {"tags": ["c"], "n": True, "flag": 1, "years": [2021]},
    {"tags": [], "n": [], "flag": [], "years": []},
    {},
]
AGREEMENT_FILTERS = [
    {"tags": "a"},
    {"tags": {"in": ["b", "c"]}},
    {"$or": [{"tags": "c"}, {"n": 7}]},
    {"n": 1},
    {"n": True},
    {"flag": 1},
    {"flag": {"in": [True, 7]}},
    {"years": {"gte": 2025}},
    {"years": {"gte": 2000, "lt": 2024}},  # [1990, 2030]: no ONE element in range
]


@pytest.mark.parametrize("flt", AGREEMENT_FILTERS, ids=[str(f) for f in AGREEMENT_FILTERS])
def test_compiled_filters_agree_with_matches_on_lists_and_bools(flt) -> None:
    """Local mode evaluates compiled filters as the server documents it: a list matches when
    any element does, and bool / int are distinct types."""
    client = QdrantClient(":memory:")
    client.create_collection(
        "f", vectors_config={"d": models.VectorParams(size=1, distance=models.Distance.DOT)}
    )
    client.upsert(
        "f",
        [
            models.PointStruct(id=i, vector={"d": [1.0]}, payload={"metadata": m})
            for i, m in enumerate(FILTER_METADATA)
        ],
    )
    parsed = parse_filter(flt)
    points, _ = client.scroll("f", scroll_filter=compile_filter(parsed, SPEC), limit=100)
    expected = {i for i, m in enumerate(FILTER_METADATA) if matches(parsed, m)}
    assert {p.id for p in points} == expected


def _unexpected(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", b'{"status": "boom"}', None)  # type: ignore[arg-type]


def test_transient_errors() -> None:
    import httpx

    assert is_transient(_unexpected(503))
    assert is_transient(_unexpected(429))
    assert not is_transient(_unexpected(400))
    assert is_transient(ResponseHandlingException(httpx.ConnectError("refused")))
    assert not is_transient(ResponseHandlingException(ValueError("bad json")))
    assert is_transient(httpx.ReadTimeout("slow"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(ValueError("wrong dimension"))


def test_translate_error() -> None:
    bad = translate_error(_unexpected(400), "upsert")
    assert isinstance(bad, InputError) and "HTTP 400" in str(bad)
    down = translate_error(_unexpected(503), "search")
    assert isinstance(down, BackendError) and down.retriable
    assert isinstance(translate_error(ValueError("wrong vector size"), "upsert"), InputError)
    missing = translate_error(ValueError("Collection x not found"), "count")
    assert isinstance(missing, BackendError) and not missing.retriable


def test_transient_failures_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    store = connect("qdrant+memory://", collection="c", spec=SPEC)
    client = store.client  # type: ignore[attr-defined]
    real = client.count
    failures = iter([_unexpected(503), _unexpected(502)])

    def flaky(*args, **kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "count", flaky)
    monkeypatch.setattr("m3vdb.connectors.common.time.sleep", lambda s: None)
    assert store.count() == 0
    monkeypatch.setattr(client, "count", lambda *a, **k: (_ for _ in ()).throw(_unexpected(400)))
    with pytest.raises(InputError):
        store.count()


def test_url_targets(tmp_path) -> None:
    # parsed without constructing remote clients (they contact the server at once)
    assert client_options("qdrant+memory://") == {"location": ":memory:"}
    assert client_options("qdrant+local:/data/q") == {"path": "/data/q"}
    assert client_options("qdrant+local:///data/q") == {"path": "/data/q"}
    assert client_options("qdrant://db.example:6333") == {"url": "http://db.example:6333"}
    assert client_options("qdrant+http://db:6333") == {"url": "http://db:6333"}
    assert client_options("qdrant+https://db:6333") == {"url": "https://db:6333"}
    assert client_from_target("qdrant+memory://").init_options["location"] == ":memory:"
    for bad in ("qdrant+local:", "qdrant://", "milvus://x", 42):
        with pytest.raises(InputError):
            client_from_target(bad)
    folder = tmp_path / "data"
    store = connect(f"qdrant+local:{folder}", collection="c", spec=SPEC)
    store.upsert([(Document("a", "x"), _emb())])
    store.client.close()  # type: ignore[attr-defined]
    reopened = connect(f"qdrant+local:{folder}", collection="c", spec=SPEC)
    assert reopened.get(["a"]) == [Document("a", "x")]
    reopened.client.close()  # type: ignore[attr-defined]


def test_encoder_dimensions_must_match_spec() -> None:
    class Encoder:
        dense_dim = 8
        colbert_dim = 8

    with pytest.raises(SchemaMismatchError, match="for_encoder"):
        connect("qdrant+memory://", collection="c", encoder=Encoder(), spec=SPEC)


def test_import_does_not_load_the_client() -> None:
    code = (
        "import sys, m3vdb.connectors, m3vdb.connectors.qdrant, m3vdb.schemas.qdrant; "
        "assert 'qdrant_client' not in sys.modules, 'imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(MissingDependencyError, match=r"m3vdb\[qdrant\]"):
        connect("qdrant+memory://", collection="c", spec=SPEC)
