"""The Elasticsearch mapping and request bodies, checked exactly, without a server.

These tests check what m3vdb SENDS (mapping, queries, retriever trees, the Basic-licence
_msearch) and how it reads ES-shaped responses (bulk items, errors, scores). They are not
evidence that the connector works against Elasticsearch: that is the contract suite's
``elasticsearch-container`` backend, which needs a real server (Docker or
``M3VDB_TEST_ELASTICSEARCH_URL``). :class:`RecordingClient` records requests and answers with
canned ES-shaped bodies; it is not an Elasticsearch.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("elasticsearch", reason="elasticsearch client not installed")

from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig  # noqa: E402
from elasticsearch import ApiError, ConnectionError  # noqa: E402

from m3vdb.connectors import Connector, HybridOptions, registry  # noqa: E402
from m3vdb.connectors.elasticsearch import (  # noqa: E402
    BulkFailedError,
    BulkRejectedError,
    raise_for_bulk_failures,
)
from m3vdb.connectors.elasticsearch import engine as conn  # noqa: E402
from m3vdb.connectors.elasticsearch import queries as esq
from m3vdb.errors import (  # noqa: E402
    BackendError,
    CollectionNotFoundError,
    InputError,
    SchemaMismatchError,
    UnsupportedCapabilityError,
)
from m3vdb.schemas import elasticsearch as es  # noqa: E402
from m3vdb.schemas import scoring  # noqa: E402
from m3vdb.schemas.data import Document, M3Embedding  # noqa: E402
from m3vdb.schemas.filters import and_, eq, in_, or_, parse_filter, range_  # noqa: E402
from m3vdb.schemas.muvera import fde_encoder  # noqa: E402
from m3vdb.schemas.spec import ColbertFde, IndexSpec, MetadataField  # noqa: E402

TRIAL = es.ElasticsearchCapabilities("9.4.3", "trial")


def _es(client: Any, *, encoder: Any = None, **engine: Any) -> conn.ElasticsearchCollection:
    """The Collection ``connect`` would return over an engine on ``client``."""
    return conn.ElasticsearchCollection(conn.ElasticsearchEngine(client, **engine), encoder=encoder)


BASIC = es.ElasticsearchCapabilities("9.4.3", "basic")
SPEC = IndexSpec(
    dense_dim=2,
    colbert_dim=2,
    metadata_fields=(
        MetadataField("lang"),
        MetadataField("year", "int"),
        MetadataField("rating", "float"),
        MetadataField("public", "bool"),
    ),
)
SCRIPT = "Math.exp(maxSimDotProduct(params.query_vector, 'colbert') / params.n)"
Q = M3Embedding(
    dense=np.array([0.6, 0.8], np.float32),
    sparse={7: 0.5, 9: 0.25},
    colbert=np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
)
QD = [float(np.float32(0.6)), float(np.float32(0.8))]
SOURCE = ["id", "text", "metadata"]


# ----------------------------------------------------------------------------- mapping


def test_mapping_exact() -> None:
    assert es.mapping(SPEC, es.ElasticsearchOptions(), TRIAL) == {
        "date_detection": False,
        "dynamic_templates": [
            {
                "m3vdb_metadata_strings": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword"},
                }
            },
            {
                "m3vdb_metadata_floats": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "double",
                    "mapping": {"type": "double"},
                }
            },
        ],
        "_source": {"excludes": ["dense", "sparse", "colbert"]},
        "_meta": {"m3vdb": {"colbert_precision": "float32"}},
        "properties": {
            "id": {"type": "keyword"},
            "text": {"type": "text"},
            "metadata": {
                "type": "object",
                "dynamic": True,
                "subobjects": False,
                "properties": {
                    "lang": {"type": "keyword"},
                    "year": {"type": "long"},
                    "rating": {"type": "double"},
                    "public": {"type": "boolean"},
                },
            },
            "dense": {
                "type": "dense_vector",
                "dims": 2,
                "similarity": "dot_product",
                "index": True,
                "index_options": {"type": "hnsw"},
            },
            "sparse": {"type": "sparse_vector", "index_options": {"prune": False}},
            "colbert": {"type": "rank_vectors", "dims": 2, "element_type": "float"},
        },
    }


def test_mapping_options_cosine_and_old_cluster() -> None:
    spec = IndexSpec(dense_dim=4, colbert=False, dense_metric="cosine")
    options = es.ElasticsearchOptions(
        dense_index_type="int8_hnsw",
        hnsw_m=32,
        hnsw_ef_construction=200,
        text_analyzer="icu_analyzer",
    )
    body = es.mapping(spec, options, es.ElasticsearchCapabilities("9.0.2", "basic"))
    props = body["properties"]
    assert props["dense"] == {
        "type": "dense_vector",
        "dims": 4,
        "similarity": "cosine",
        "index": True,
        "index_options": {"type": "int8_hnsw", "m": 32, "ef_construction": 200},
    }
    # 9.0 has no sparse_vector index_options (and does not prune by default)
    assert props["sparse"] == {"type": "sparse_vector"}
    assert props["text"] == {"type": "text", "analyzer": "icu_analyzer"}
    assert "colbert" not in props and body["_source"] == {"excludes": ["dense", "sparse"]}
    assert es.index_settings(es.ElasticsearchOptions(number_of_replicas=0)) == {
        "number_of_shards": 1,
        "number_of_replicas": 0,
    }


def test_validate_mapping_accepts_its_own_and_names_differences() -> None:
    options = es.ElasticsearchOptions()
    own = json.loads(json.dumps(es.mapping(SPEC, options, TRIAL)))
    assert es.validate_mapping(own, SPEC, options) == []
    other = IndexSpec(
        dense_dim=3,
        colbert_dim=2,
        dense_metric="cosine",
        colbert_precision="float16",
        metadata_fields=(MetadataField("year"),),
    )
    problems = es.validate_mapping(own, other, es.ElasticsearchOptions(dense_index_type="flat"))
    assert problems == [
        "dense field 'dense': dims 2, expected 3",
        "dense field 'dense': similarity 'dot_product', expected 'cosine'",
        "dense field 'dense': index_options 'hnsw', expected 'flat'",
        "ColBERT colbert_precision: 'float32', expected 'float16'",
        "metadata field 'year': type 'long', expected 'keyword'",
    ]
    no_sparse = es.mapping(IndexSpec(dense_dim=2, colbert_dim=2, sparse=False), options, TRIAL)
    assert es.validate_mapping(no_sparse, SPEC, options) == [
        "sparse field 'sparse': missing (fields found: "
        "['colbert', 'dense', 'id', 'metadata', 'text'])"
    ]


# ----------------------------------------------------------------------------- capabilities


def test_capabilities_from_responses() -> None:
    caps = es.ElasticsearchCapabilities.from_responses(
        {"version": {"number": "9.1.4"}},
        {"license": {"type": "trial", "status": "active"}},
    )
    assert caps == es.ElasticsearchCapabilities("9.1.4", "trial", True)
    assert caps.rank_vectors and caps.retrievers and caps.sparse_index_options
    assert caps.hybrid_method == "retrievers"
    assert BASIC.hybrid_method == "client_fusion" and not BASIC.rank_vectors
    expired = es.ElasticsearchCapabilities.from_responses(
        {"version": {"number": "9.1.4"}}, {"license": {"type": "enterprise", "status": "expired"}}
    )
    assert not expired.paid and expired.hybrid_method == "client_fusion"
    unknown = es.ElasticsearchCapabilities.from_responses({"version": {"number": "9.1.4"}}, None)
    assert unknown.licence == "unknown" and not unknown.paid
    old = es.ElasticsearchCapabilities("8.19.3", "trial")
    assert not old.rank_vectors and not old.retrievers and not old.sparse_index_options


@pytest.mark.parametrize(
    ("caps", "needs"),
    [
        (
            BASIC,
            "needs an active Enterprise or trial licence; this cluster is "
            "Elasticsearch 9.4.3 with a basic licence",
        ),
        (
            es.ElasticsearchCapabilities("8.19.3", "basic"),
            "needs Elasticsearch >= 9.0 and an active Enterprise or trial licence; this cluster "
            "is Elasticsearch 8.19.3 with a basic licence",
        ),
    ],
)
def test_rank_vectors_capability_error_names_version_and_licence(caps, needs) -> None:
    with pytest.raises(UnsupportedCapabilityError, match="colbert=False") as info:
        caps.require_rank_vectors()
    assert needs in str(info.value)
    # The connector refuses before any request when the spec stores ColBERT.
    with pytest.raises(UnsupportedCapabilityError):
        _es(RecordingClient(), collection="c", encoder=None, spec=SPEC, capabilities=caps)


# ----------------------------------------------------------------------------- filters


def test_filter_compilation() -> None:
    flt = and_(
        eq("lang", "de"),
        or_(in_("tag", ["a", "b"]), range_("year", gte=2000, lt=2010)),
        eq("public", True),
        eq("rating", 2.5),
    )
    assert es.compile_filter(flt, SPEC) == [
        {
            "bool": {
                "filter": [
                    {"term": {"metadata.lang": "de"}},
                    {
                        "bool": {
                            "should": [
                                {"terms": {"metadata.tag": ["a", "b"]}},
                                {"range": {"metadata.year": {"gte": 2000, "lt": 2010}}},
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                    {"term": {"metadata.public": True}},
                    {"term": {"metadata.rating": 2.5}},
                ]
            }
        }
    ]
    assert es.compile_filter(parse_filter({"lang": "en"}), SPEC) == [
        {"term": {"metadata.lang": "en"}}
    ]
    assert es.compile_filter(None, SPEC) == []
    with pytest.raises(InputError, match="declared 'keyword'"):
        es.compile_filter(range_("lang", gt=1), SPEC)


def test_filter_values_of_the_wrong_json_type_match_nothing() -> None:
    """True is not 1: on declared keys, values that cannot equal a stored value are dropped
    (Elasticsearch would refuse to parse 1 for a boolean, or coerce true for a number)."""
    assert es.compile_filter(eq("public", 1), SPEC) == [{"match_none": {}}]
    assert es.compile_filter(eq("year", True), SPEC) == [{"match_none": {}}]
    assert es.compile_filter(in_("public", [1, False]), SPEC) == [
        {"terms": {"metadata.public": [False]}}
    ]
    assert es.compile_filter(in_("rating", [True, 2, 2.5, "x"]), SPEC) == [
        {"terms": {"metadata.rating": [2, 2.5]}}
    ]
    # undeclared keys and keyword keys: as given (a list value matches any element)
    assert es.compile_filter(eq("tags", 1), SPEC) == [{"term": {"metadata.tags": 1}}]
    assert es.compile_filter(in_("lang", ["en", 1]), SPEC) == [
        {"terms": {"metadata.lang": ["en", 1]}}
    ]


# ----------------------------------------------------------------------------- queries


def test_single_signal_bodies() -> None:
    filters = [{"term": {"metadata.lang": "en"}}]
    options = es.ElasticsearchOptions()
    assert esq.knn_query(SPEC, QD, 10, options, filters) == {
        "knn": {
            "field": "dense",
            "query_vector": QD,
            "k": 10,
            "num_candidates": 100,
            "filter": filters,
        }
    }
    assert esq.knn_query(SPEC, QD, 80, es.ElasticsearchOptions(rescore_oversample=2.0), [])[
        "knn"
    ] == {
        "field": "dense",
        "query_vector": QD,
        "k": 80,
        "num_candidates": 160,
        "rescore_vector": {"oversample": 2.0},
    }
    assert esq.sparse_query(SPEC, {7: 0.5}, options, filters) == {
        "bool": {
            "must": [
                {"sparse_vector": {"field": "sparse", "query_vector": {"7": 0.5}, "prune": False}}
            ],
            "filter": filters,
        }
    }
    assert esq.colbert_query(SPEC, np.eye(2, dtype=np.float32), []) == {
        "script_score": {
            "query": {"match_all": {}},
            "script": {
                "source": SCRIPT,
                "params": {"query_vector": [[1.0, 0.0], [0.0, 1.0]], "n": 2},
            },
        }
    }
    assert esq.colbert_query(SPEC, np.eye(2, dtype=np.float32), filters)["script_score"][
        "query"
    ] == {"bool": {"filter": filters}}


def test_hybrid_retriever_rrf_with_rescorer_exact() -> None:
    knn = esq.knn_query(SPEC, QD, 50, es.ElasticsearchOptions(), [])
    sparse = esq.sparse_query(SPEC, {7: 0.5}, es.ElasticsearchOptions(), [])
    rescore = esq.rescore(SPEC, np.eye(2, dtype=np.float32), 50)
    tree = esq.hybrid_retriever(
        [esq.Signal("dense", knn, 0.5), esq.Signal("sparse", sparse, 0.5)],
        fusion="rrf",
        rrf_k=60,
        candidates=50,
        rerank=rescore,
    )
    assert tree == {
        "rescorer": {
            "retriever": {
                "rrf": {
                    "retrievers": [{"knn": knn["knn"]}, {"standard": {"query": sparse}}],
                    "rank_window_size": 50,
                    "rank_constant": 60,
                }
            },
            "rescore": {
                "window_size": 50,
                "query": {
                    "rescore_query": {
                        "script_score": {
                            "query": {"match_all": {}},
                            "script": {
                                "source": SCRIPT,
                                "params": {"query_vector": [[1.0, 0.0], [0.0, 1.0]], "n": 2},
                            },
                        }
                    },
                    "query_weight": 0.0,
                    "rescore_query_weight": 1.0,
                    "score_mode": "total",
                },
            },
        }
    }


def test_hybrid_retriever_linear_exact() -> None:
    knn = esq.knn_query(SPEC, QD, 20, es.ElasticsearchOptions(), [])
    sparse = esq.sparse_query(SPEC, {7: 0.5}, es.ElasticsearchOptions(), [])
    bm25 = esq.bm25_query(SPEC, "river", [])
    tree = esq.hybrid_retriever(
        [
            esq.Signal("dense", knn, 0.3),
            esq.Signal("sparse", sparse, 0.7),
            esq.Signal("bm25", bm25, 0.1),
        ],
        fusion="weighted",
        rrf_k=60,
        candidates=20,
        rerank=None,
    )
    assert tree == {
        "linear": {
            "retrievers": [
                {"retriever": {"knn": knn["knn"]}, "weight": 0.3, "normalizer": "none"},
                {"retriever": {"standard": {"query": sparse}}, "weight": 0.7, "normalizer": "none"},
                {
                    "retriever": {
                        "standard": {"query": {"bool": {"must": [{"match": {"text": "river"}}]}}}
                    },
                    "weight": 0.1,
                    "normalizer": "none",
                },
            ],
            "rank_window_size": 20,
        }
    }


def test_fusion_formulas() -> None:
    assert scoring.rrf([["a", "b"], ["b", "c"]], 60) == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62}
    )
    assert scoring.weighted_sum([{"a": 0.9, "b": 0.8}, {"b": 2.0}], [0.3, 0.7]) == pytest.approx(
        {"a": 0.27, "b": 0.24 + 1.4}
    )


def test_score_conversions_invert_elasticsearch() -> None:
    for dot in (-1.0, -0.3, 0.0, 0.42, 1.0):
        score = float(np.float32(es.dense_to_es(dot)))  # ES returns float32 scores
        assert abs(es.dense_from_es(score) - dot) < 2e-7
    for maxsim, n in ((3.7, 5), (-0.8, 2), (250.0, 512)):
        score = float(np.float32(math.exp(maxsim / n)))
        assert abs(es.colbert_from_es(score, n) - maxsim) < n * 1.2e-7


def test_stored_sparse_weight_keeps_nine_bits() -> None:
    assert es.stored_sparse_weight(0.3) == 0.2998046875
    assert es.stored_sparse_weight(1.0) == 1.0
    rng = np.random.default_rng(0)
    for w in rng.uniform(1e-3, 10, 200):
        kept = es.stored_sparse_weight(float(w))
        assert 0 <= float(np.float32(w)) - kept < float(np.float32(w)) * 2**-8  # truncation
        assert es.stored_sparse_weight(kept) == kept


# ----------------------------------------------------------------------------- documents


def test_document_source_and_checks() -> None:
    doc = Document("d1", "river bank", {"lang": "en"})
    source = es.document_source(doc, Q, SPEC)
    assert source == {
        "id": "d1",
        "text": "river bank",
        "metadata": {"lang": "en"},
        "dense": QD,
        "sparse": {"7": 0.5, "9": 0.25},
        "colbert": [[1.0, 0.0], [0.0, 1.0]],
    }
    es.check_document(doc, Q, SPEC)
    with pytest.raises(InputError, match="unit-length"):
        es.check_document(doc, M3Embedding(dense=np.array([1.0, 1.0], np.float32)), SPEC)
    cosine = IndexSpec(dense_dim=2, colbert_dim=2, dense_metric="cosine")
    es.check_document(doc, M3Embedding(dense=np.array([1.0, 1.0], np.float32)), cosine)
    with pytest.raises(InputError, match="512-byte"):
        es.check_document(Document("x" * 513, "t"), Q, SPEC)


def test_index_names_and_urls() -> None:
    assert es.check_index_name("m3vdb_test-1") == "m3vdb_test-1"
    for bad in ("Upper", "_x", "a b", "a*", ".", "", "x" * 256):
        with pytest.raises(InputError):
            es.check_index_name(bad)
    assert registry.module_for("elasticsearch://localhost:9200") == conn.__name__
    client = conn.client_from_url("elasticsearch+https://u%40x:p@h:9243")
    assert [n.base_url for n in client.transport.node_pool.all()] == ["https://h:9243"]
    with pytest.raises(InputError):
        conn.client_from_url("elastic://h")


# ----------------------------------------------------------------------------- bulk errors


def _item(op: str, doc_id: str, status: int, error: Any = None) -> tuple[bool, dict]:
    item: dict[str, Any] = {"_index": "c", "_id": doc_id, "status": status}
    if error is not None:
        item["error"] = error
    return 200 <= status < 300, {op: item}


MAPPER_ERROR = {
    "type": "document_parsing_exception",
    "reason": "[1:40] failed to parse field [metadata.year] of type [long]",
    "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "x"'},
}


def test_bulk_item_errors_are_reported_not_swallowed() -> None:
    """Calls the per-item error handling on ES-shaped bulk results (not a server test)."""
    results = [
        _item("index", "a", 201),
        _item("index", "b", 400, MAPPER_ERROR),
        _item("index", "c", 200),
        _item("index", "d", 400, MAPPER_ERROR),
    ]
    with pytest.raises(BulkRejectedError) as info:
        raise_for_bulk_failures(results)
    err = info.value
    assert isinstance(err, InputError) and err.caller_fault and not err.retriable
    assert [f.id for f in err.failures] == ["b", "d"] and err.written_ids == ["a", "c"]
    assert (
        "'b': HTTP 400 document_parsing_exception: [1:40] failed to parse field "
        "[metadata.year] of type [long] (caused by illegal_argument_exception: For input "
        'string: "x")' in str(err)
    )
    assert "refused 2 of 4 documents" in str(err)


def test_bulk_rejections_after_retries_are_retriable_backend_errors() -> None:
    rejected = {"type": "es_rejected_execution_exception", "reason": "queue full"}
    results = [_item("index", "a", 201), _item("index", "b", 429, rejected)]
    with pytest.raises(BulkFailedError) as info:
        raise_for_bulk_failures(results)
    assert isinstance(info.value, BackendError) and info.value.retriable
    assert not info.value.caller_fault
    mixed = [_item("index", "a", 400, MAPPER_ERROR), _item("index", "b", 503, rejected)]
    with pytest.raises(BulkFailedError) as info:
        raise_for_bulk_failures(mixed)
    assert not info.value.retriable


def test_bulk_delete_of_unknown_id_is_not_an_error() -> None:
    results = [_item("delete", "a", 200), _item("delete", "gone", 404)]
    assert raise_for_bulk_failures(results, what="delete") == ["a", "gone"]


# ----------------------------------------------------------------------------- errors


def _api_error(status: int, body: dict) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "h", 9200))
    return ApiError(str(body), meta=meta, body=body)


def test_error_translation() -> None:
    bad = _api_error(
        400,
        {
            "error": {
                "root_cause": [{"type": "parsing_exception", "reason": "unknown field [x]"}],
                "type": "parsing_exception",
                "reason": "unknown field [x]",
            },
            "status": 400,
        },
    )
    assert isinstance(conn.translate_error(bad, "search"), InputError)
    licence = _api_error(
        403,
        {
            "error": {
                "type": "security_exception",
                "reason": "current license is non-compliant for [rrf]",
            },
            "status": 403,
        },
    )
    err = conn.translate_error(licence, "hybrid search")
    assert isinstance(err, UnsupportedCapabilityError) and "start_trial" in str(err)
    busy = _api_error(503, {"error": {"type": "unavailable_shards_exception", "reason": "x"}})
    err = conn.translate_error(busy, "search")
    assert isinstance(err, BackendError) and err.retriable
    assert conn.is_transient(_api_error(429, {})) and not conn.is_transient(bad)
    assert conn.is_transient(ConnectionError("refused"))


# ----------------------------------------------------------------------------- the requests


class RecordingClient:
    """Records the requests the connector makes and answers with canned ES-shaped bodies.
    It is NOT an Elasticsearch: it checks request bodies and response handling only."""

    def __init__(self, responses: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses = responses or {}
        self.indices = _Namespace(self, "indices")
        self.license = _Namespace(self, "license")

    def record(self, name: str, **kwargs: Any) -> Any:
        self.calls.append((name, kwargs))
        return self.responses.get(name, {})

    def search(self, **kwargs: Any) -> Any:
        return self.record("search", **kwargs)

    def msearch(self, **kwargs: Any) -> Any:
        return self.record("msearch", **kwargs)


class _Namespace:
    def __init__(self, client: RecordingClient, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def __getattr__(self, name: str) -> Any:
        return lambda **kw: self._client.record(f"{self._prefix}.{name}", **kw)


def _connector(caps: es.ElasticsearchCapabilities, spec: IndexSpec, **responses: Any):
    client = RecordingClient({"indices.exists": False, **responses})
    store = _es(client, collection="c", encoder=None, spec=spec, capabilities=caps)
    return store, client


def test_new_index_is_created_with_the_mapping() -> None:
    store, client = _connector(TRIAL, SPEC)
    assert isinstance(store, Connector)
    assert client.calls == [
        ("indices.exists", {"index": "c"}),
        (
            "indices.create",
            {
                "index": "c",
                "mappings": _with_record(es.mapping(SPEC, store.options, TRIAL), SPEC),
                "settings": {"number_of_shards": 1},
            },
        ),
    ]


def _with_record(mapping: dict, spec: IndexSpec) -> dict:
    """The mapping with the spec m3vdb records in ``_meta``."""
    meta = {**mapping["_meta"], conn.RECORD_KEY: {"format": 1, "spec": spec.to_record()}}
    return {**mapping, "_meta": meta}


def test_missing_index_without_create_is_refused_and_nothing_is_created() -> None:
    client = RecordingClient({"indices.exists": False})
    with pytest.raises(CollectionNotFoundError, match="no index 'c' in Elasticsearch"):
        _es(client, collection="c", encoder=None, spec=SPEC, capabilities=TRIAL, create=False)
    assert client.calls == [("indices.exists", {"index": "c"})]


def test_existing_index_that_differs_is_a_schema_mismatch() -> None:
    other = es.mapping(IndexSpec(dense_dim=3, colbert_dim=2), es.ElasticsearchOptions(), TRIAL)
    with pytest.raises(SchemaMismatchError, match="dims 3, expected 2"):
        _connector(
            TRIAL,
            SPEC,
            **{"indices.exists": True, "indices.get_mapping": {"c": {"mappings": other}}},
        )


def _hits(*pairs: tuple[str, float]) -> dict:
    return {
        "hits": {
            "hits": [
                {"_id": i, "_score": s, "_source": {"id": i, "text": f"t {i}", "metadata": {}}}
                for i, s in pairs
            ]
        }
    }


def test_hybrid_on_trial_is_one_search_with_retrievers() -> None:
    store, client = _connector(TRIAL, SPEC, search=_hits(("a", math.exp(1.5 / 2))))
    hits = store.search(Q, 3, filter={"lang": "en"})
    name, request = client.calls[-1]
    flt = [{"term": {"metadata.lang": "en"}}]
    assert name == "search" and request["size"] == 3 and request["source"] == SOURCE
    assert request["retriever"] == esq.hybrid_retriever(
        [
            esq.Signal("dense", esq.knn_query(SPEC, QD, 50, store.options, flt), 0.5),
            esq.Signal(
                "sparse", esq.sparse_query(SPEC, {7: 0.5, 9: 0.25}, store.options, flt), 0.5
            ),
        ],
        fusion="rrf",
        rrf_k=60,
        candidates=50,
        rerank=esq.rescore(SPEC, np.asarray(Q.colbert), 50),
    )
    assert [h.id for h in hits] == ["a"]
    assert hits[0].score == pytest.approx(1.5) and hits[0].signal_scores == {
        "colbert": pytest.approx(1.5)
    }
    with pytest.raises(InputError, match="candidates"):
        store.search(Q, 30, hybrid=HybridOptions(candidates=10))


def test_single_modes_send_one_typed_query_and_convert_scores() -> None:
    store, client = _connector(TRIAL, SPEC, search=_hits(("a", 0.9), ("b", 0.75)))
    hits = store.search(Q, 2, mode="dense")
    assert client.calls[-1] == (
        "search",
        {
            "index": "c",
            "source": SOURCE,
            "size": 2,
            "query": esq.knn_query(SPEC, QD, 2, store.options, []),
        },
    )
    assert [h.score for h in hits] == [pytest.approx(0.8), pytest.approx(0.5)]
    hits = store.search(Q, 2, mode="colbert", filter=eq("year", 2001))
    assert client.calls[-1][1]["query"] == esq.colbert_query(
        SPEC, np.asarray(Q.colbert), [{"term": {"metadata.year": 2001}}]
    )
    assert hits[0].score == pytest.approx(2 * math.log(0.9))
    assert store.search(M3Embedding(sparse={}), 2, mode="sparse") == []


def test_basic_licence_fallback_is_one_msearch_fused_in_m3vdb(caplog) -> None:
    spec = IndexSpec(dense_dim=2, colbert=False)
    responses = {"responses": [_hits(("a", 0.9), ("b", 0.8)), _hits(("b", 1.2), ("c", 0.4))]}
    with caplog.at_level("WARNING", logger="m3vdb.connectors.elasticsearch"):
        store, client = _connector(BASIC, spec, msearch=responses)
    assert "client-side" in caplog.text or "in m3vdb" in caplog.text
    assert store.hybrid_method == "client_fusion"
    hits = store.search(Q, 3, filter={"lang": "en"}, hybrid=HybridOptions(candidates=20))
    flt = [{"term": {"metadata.lang": "en"}}]
    name, request = client.calls[-1]
    assert name == "msearch" and request["index"] == "c"
    assert request["searches"] == [
        {},
        {"query": esq.knn_query(spec, QD, 20, store.options, flt), "size": 20, "_source": SOURCE},
        {},
        {
            "query": esq.sparse_query(spec, {7: 0.5, 9: 0.25}, store.options, flt),
            "size": 20,
            "_source": SOURCE,
        },
    ]
    # RRF over Elasticsearch's own ranks, as the rrf retriever computes it
    assert [h.id for h in hits] == ["b", "a", "c"]
    assert hits[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert hits[0].signal_scores == {
        "dense": pytest.approx(0.6),
        "sparse": 1.2,
        "fusion": pytest.approx(1 / 62 + 1 / 61),
    }
    hits = store.search(Q, 3, hybrid=HybridOptions(fusion="weighted", weights=(0.3, 0.7)))
    assert {h.id: h.score for h in hits} == pytest.approx(
        {"a": 0.3 * 0.9, "b": 0.3 * 0.8 + 0.7 * 1.2, "c": 0.7 * 0.4}
    )


def test_bm25_signal_needs_text() -> None:
    store, _ = _connector(TRIAL, SPEC)
    with pytest.raises(InputError, match="text query"):
        store.search(Q, 3, bm25=True)


# ----------------------------------------------------------------------------- issue 14


def test_metadata_keys_are_literal_fields_and_never_dates() -> None:
    """``subobjects: false`` keeps ``a.b`` one field (not ``b`` inside ``a``), so the filter
    path ``metadata.a.b`` names exactly the literal key; ``date_detection: false`` keeps a
    first value "2024-05-01" from making the key a date field."""
    body = es.mapping(SPEC, es.ElasticsearchOptions(), TRIAL)
    assert body["date_detection"] is False
    assert body["properties"]["metadata"]["subobjects"] is False
    assert es.compile_filter(eq("a.b", "x"), SPEC) == [{"term": {"metadata.a.b": "x"}}]
    assert es.compile_filter(in_("k[0]", ["x"]), SPEC) == [{"terms": {"metadata.k[0]": ["x"]}}]


def test_validate_mapping_flags_an_index_with_path_keys_or_date_detection() -> None:
    options = es.ElasticsearchOptions()
    old = json.loads(json.dumps(es.mapping(SPEC, options, TRIAL)))
    del old["date_detection"]
    del old["properties"]["metadata"]["subobjects"]
    problems = es.validate_mapping(old, SPEC, options)
    assert len(problems) == 2
    assert problems[0].startswith("date_detection is on")
    assert problems[1].startswith("object field 'metadata': subobjects None, expected false")


@pytest.mark.parametrize("key", ["a..b", ".lead", "trail.", "   ", "a. .b", "."])
def test_keys_elasticsearch_cannot_name_are_refused_at_write_and_query(key: str) -> None:
    store, client = _connector(TRIAL, SPEC)
    sent = len(client.calls)
    doc = Document("odd", "text", {key: "x"})
    emb = M3Embedding(dense=np.array([0.6, 0.8], np.float32), sparse={3: 0.5}, colbert=Q.colbert)
    with pytest.raises(InputError, match=r"document 'odd': metadata key .* Elasticsearch field"):
        store.upsert([(doc, emb)])
    with pytest.raises(InputError, match="cannot be an Elasticsearch field name"):
        es.compile_filter(eq(key, "x"), SPEC)
    with pytest.raises(InputError, match="cannot be an Elasticsearch field name"):
        store.search(Q, 3, mode="dense", filter=eq(key, "x"))
    assert len(client.calls) == sent, "a request was sent"


def test_subnormal_sparse_weights_never_reach_elasticsearch() -> None:
    """Elasticsearch refuses a weight that is not a positive NORMAL float32 ("featureValue
    must be a positive normal float"): refused before the bulk request."""
    store, client = _connector(TRIAL, SPEC)
    sent = len(client.calls)
    tiny = float(np.finfo(np.float32).tiny)
    for weight in (tiny / 2, 1e-45, 1e-300):
        emb = M3Embedding(dense=Q.dense, sparse={3: 0.5, 4: weight}, colbert=Q.colbert)
        with pytest.raises(InputError, match="below the smallest normal float32"):
            store.upsert([(Document("d", "text"), emb)])
    assert len(client.calls) == sent, "a request was sent"
    # The smallest normal float32 itself is a valid weight.
    ok = M3Embedding(dense=Q.dense, sparse={3: tiny}, colbert=Q.colbert)
    assert es.document_source(Document("d", "text"), ok, SPEC)["sparse"] == {"3": tiny}


# ----------------------------------------------------------------------------- MUVERA (FDE)

FDE_SPEC = IndexSpec(
    dense_dim=2, colbert_dim=2, colbert_fde=ColbertFde(k_sim=1, d_proj=2, repetitions=2)
)


def test_fde_mapping_validation_and_source() -> None:
    """The FDE is a max_inner_product hnsw dense_vector, excluded from _source, validated on
    reopening, written with the document; more dimensions than ES indexes is an InputError."""
    mapping = es.mapping(FDE_SPEC, es.ElasticsearchOptions(), TRIAL)
    assert mapping["properties"]["colbert_fde"] == {
        "type": "dense_vector",
        "dims": 8,
        "similarity": "max_inner_product",
        "index": True,
        "index_options": {"type": "hnsw"},
    }
    assert "colbert_fde" in mapping["_source"]["excludes"]
    options = es.ElasticsearchOptions()
    assert es.validate_mapping(mapping, FDE_SPEC, options) == []
    assert es.validate_mapping(es.mapping(SPEC, options, TRIAL), FDE_SPEC, options) == [
        "ColBERT FDE field 'colbert_fde': missing (fields found: "
        "['colbert', 'dense', 'id', 'metadata', 'sparse', 'text'])"
    ]
    fde = np.arange(8, dtype=np.float32)
    source = es.document_source(Document("a", "t"), Q, FDE_SPEC, fde)
    assert source["colbert_fde"] == fde.tolist()
    with pytest.raises(InputError, match="MUVERA encoding"):
        es.document_source(Document("a", "t"), Q, FDE_SPEC, None)
    too_big = IndexSpec(colbert_fde=ColbertFde(k_sim=5, d_proj=16, repetitions=16))
    with pytest.raises(InputError, match="at most 4096"):
        es.mapping(too_big, options, TRIAL)


def test_fde_colbert_search_is_one_knn_with_a_maxsim_rescore() -> None:
    """mode='colbert' on an FDE index: ONE search, a knn query on the FDE field for the
    candidates (the filter inside it), rescored by the MaxSim script over that window."""
    store, client = _connector(TRIAL, FDE_SPEC, search=_hits(("a", math.exp(1.5 / 2))))
    hits = store.search(Q, 3, mode="colbert", filter={"lang": "en"})
    name, request = client.calls[-1]
    flt = [{"term": {"metadata.lang": "en"}}]
    fde = fde_encoder(FDE_SPEC.colbert_fde, 2).query(np.asarray(Q.colbert))  # type: ignore[arg-type]
    assert name == "search" and request["size"] == 3
    knn = request["query"]["knn"]
    assert knn["field"] == "colbert_fde" and knn["k"] == 1000 and knn["filter"] == flt
    assert knn["query_vector"] == pytest.approx(fde.tolist())
    assert request["rescore"] == esq.rescore(FDE_SPEC, np.asarray(Q.colbert), 1000)
    assert hits[0].score == pytest.approx(1.5) and hits[0].signal_scores == {
        "colbert": pytest.approx(1.5)
    }
    store.search(Q, 3, mode="colbert", hybrid=HybridOptions(candidates=20))
    assert client.calls[-1][1]["query"]["knn"]["k"] == 20
    assert client.calls[-1][1]["rescore"]["window_size"] == 20


def test_quantised_colbert_mapping_rows_and_script() -> None:
    """int8: rank_vectors byte, rows and query round(127 x), script divides by 127**2; binary:
    bit, one hex string of sign bits per row, float query with the +-1/sqrt(dim) map."""
    rows = np.array([[0.5, -0.5, 0.5, -0.5, 0.5, 0.5, -0.5, -0.5]], dtype=np.float32)
    int8 = IndexSpec(dense_dim=8, colbert_dim=8, colbert_precision="int8")
    binary = IndexSpec(dense_dim=8, colbert_dim=8, colbert_precision="binary")
    assert (
        es.mapping(int8, es.ElasticsearchOptions(), TRIAL)["properties"]["colbert"]["element_type"]
        == "byte"
    )
    assert (
        es.mapping(binary, es.ElasticsearchOptions(), TRIAL)["properties"]["colbert"][
            "element_type"
        ]
        == "bit"
    )
    assert es.colbert_source(int8, rows) == [[64, -64, 64, -64, 64, 64, -64, -64]]
    assert es.colbert_source(binary, rows) == ["ac"]  # bits 10101100
    script = esq.colbert_script(int8, rows)
    assert script["params"]["query_vector"] == [[64, -64, 64, -64, 64, 64, -64, -64]]
    assert script["params"]["scale"] == pytest.approx(1 / 127**2)
    # the bit script's value for the row itself: ES sums the query where a bit is set
    script = esq.colbert_script(binary, rows)
    p = script["params"]
    es_sum = float(rows[0][rows[0] > 0].sum())
    signs = np.where(rows[0] > 0, 1.0, -1.0) / np.sqrt(8)
    assert es_sum * p["scale"] + p["shift"] == pytest.approx(float(rows[0] @ signs))
